"""The consumer's side: verify a node before sending it anything, then talk to it only
over connections pinned to its attested TLS key (:mod:`.verify`, :mod:`.pinned`)."""

from modellease.client.pinned import openai_client, pinned_client, pinned_context, pinned_transport
from modellease.client.verify import (
    ModelMismatchError,
    NodeResponseError,
    NodeVerificationError,
    NotHttpsError,
    TlsKeyMismatchError,
    UntrustedManifestError,
    VerifiedNode,
    verify_node,
)

__all__ = [
    "ModelMismatchError",
    "NodeResponseError",
    "NodeVerificationError",
    "NotHttpsError",
    "TlsKeyMismatchError",
    "UntrustedManifestError",
    "VerifiedNode",
    "openai_client",
    "pinned_client",
    "pinned_context",
    "pinned_transport",
    "verify_node",
]
