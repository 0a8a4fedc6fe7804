"""Talking to a verified node: connections that trust its one certificate, and the official
``openai`` client over them.

A pinned context trusts exactly the certificate :func:`~modellease.client.verify.verify_node`
checked against the evidence, and nothing else (no system CAs). A machine in the middle
cannot present it without the node's key, which never leaves the TEE, so its handshake
fails before the client sends a single byte of a request. Hostnames are not checked: the
node's identity is its attested key, not a name.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

import httpx

from modellease.client.verify import VerifiedNode, verify_node

if TYPE_CHECKING:
    import openai

API_KEY_UNUSED = "modellease"  # the node does not authenticate consumers by key


def pinned_context(node: VerifiedNode) -> ssl.SSLContext:
    """A client context trusting only ``node``'s certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=node.certificate_der)
    return context


def pinned_transport(node: VerifiedNode, **options: Any) -> httpx.HTTPTransport:  # noqa: ANN401
    """An ``httpx`` transport whose connections reach ``node`` only."""
    return httpx.HTTPTransport(verify=pinned_context(node), **options)


def pinned_client(node: VerifiedNode, **options: Any) -> httpx.Client:  # noqa: ANN401
    """An ``httpx.Client`` for ``node``'s URL over :func:`pinned_transport`."""
    return httpx.Client(base_url=node.url, transport=pinned_transport(node), **options)


def openai_client(
    url: str | None = None,
    *,
    node: VerifiedNode | None = None,
    **verify_args: Any,  # noqa: ANN401 - verify_node's keyword arguments
) -> openai.OpenAI:
    """The official ``openai`` client for a node, over connections pinned to its attested key.

    Verifies the node first (``verify_node(url, **verify_args)``), unless ``node`` is one
    already verified. The consumer's code stays plain ``openai`` code. Needs the ``openai``
    package (``pip install modellease[demo]``).
    """
    import openai  # noqa: PLC0415 - an optional dependency

    if node is None:
        if url is None:
            raise ValueError("give the node's URL, or a node already verified")
        node = verify_node(url, **verify_args)
    return openai.OpenAI(
        base_url=f"{node.url}/v1",
        api_key=API_KEY_UNUSED,
        # openai accepts an httpx client as well as its own httpx2 one (typed for the latter)
        http_client=httpx.Client(transport=pinned_transport(node)),  # type: ignore[arg-type]
    )
