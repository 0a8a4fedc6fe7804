"""Verifying a node before sending it anything: attestation, TLS key, model, custodian.

:func:`verify_node` runs these checks in order; the first that fails raises its own typed
error, and nothing is returned (so nothing can be sent to an unverified node):

1. ``https`` only: over plain HTTP nothing ties the answer to the node
   (:class:`NotHttpsError`);
2. ``GET /attestation?nonce=<fresh 32 bytes>`` over TLS; the certificate the handshake
   presented is kept, not trusted (it is self-signed; step 4 proves it);
3. the evidence is appraised with the consumer's policy and nonce: TEE kind, vendor
   signature, TCB, measurement, binding (:class:`~modellease.errors.AttestationError`,
   with its step);
4. the claims bind a TLS key, and it is the key of this handshake (:class:`TlsKeyMismatchError`);
5. the manifest is signed by a custodian the consumer trusts (:class:`UntrustedManifestError`);
6. the model is the one expected, if the consumer named one (:class:`ModelMismatchError`).

Why what the node says is believed: steps 3 and 4 prove that the TLS connection ends
inside a TEE running code the consumer's policy accepts; that code serves only the model
of the manifest it shows, under the lease it names. So the manifest, the lease id and the
status are as trustworthy as the measured code. What the result does not say: whether the
custodian still allows the lease a minute from now (a node refuses work itself when its
grant lapses), and anything at all if ``insecure`` is true (simulated TEE).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from modellease.attestation import AppraisalPolicy, Evidence, TeeKind, appraise
from modellease.attestation.tls import certificate_key_sha256
from modellease.attestation.verified import Measurements
from modellease.bundle.format import BundleVersion
from modellease.bundle.manifest import Manifest, SignedManifest, verify_manifest
from modellease.errors import BundleIntegrityError, InvalidInputError, TransportError
from modellease.keys import CustodianPublicKey, InstanceSigningKey, Nonce
from modellease.protocol.envelope import canonical_json

NONCE_SIZE = 32
TIMEOUT_S = 10.0
MAX_ATTESTATION_BYTES = 1024 * 1024


class NodeVerificationError(InvalidInputError):
    """The node could not be verified; nothing was sent to it but a nonce."""

    reason = "node_unverified"


class NotHttpsError(NodeVerificationError):
    """The URL is not ``https``: no answer over plain HTTP can be tied to the node."""

    reason = "not_https"


class NodeResponseError(NodeVerificationError):
    """The node's ``/attestation`` answer is not the document it should be."""

    reason = "attestation_response_malformed"


class TlsKeyMismatchError(NodeVerificationError):
    """The TLS key of the connection is not the one the evidence binds (a machine in the
    middle, or evidence relayed from another node)."""

    reason = "tls_key_mismatch"


class UntrustedManifestError(NodeVerificationError):
    """The node's model manifest is not signed by any custodian the consumer trusts."""

    reason = "manifest_untrusted"


class ModelMismatchError(NodeVerificationError):
    """The node serves another model than the one the consumer expects."""

    reason = "model_mismatch"


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedNode:
    """What a node proved, with the certificate to pin. Only :func:`verify_node` makes these."""

    url: str
    tee: TeeKind
    insecure: bool  # simulated TEE: proves nothing
    measurements: Measurements
    tcb_status: str | None
    model_name: str
    model_version: str
    model_sha256: str
    bundle_id: str
    custodian_public_key: str  # hex, the key that signed the manifest
    lease_id: str
    instance_id: str
    status: str  # "serving", or why the node does not serve right now
    signing_public_key: InstanceSigningKey  # verifies the node's receipts
    tls_public_key_sha256: str  # hex
    certificate_der: bytes  # the node's self-signed certificate: pin it
    verified_at: datetime

    def summary(self) -> dict[str, object]:
        """A JSON-ready description (for ``modellease verify --json``)."""
        return {
            "url": self.url,
            "tee": self.tee.value,
            "insecure": self.insecure,
            "measurements": dict(self.measurements),
            "tcb_status": self.tcb_status,
            "model": {
                "name": self.model_name,
                "version": self.model_version,
                "sha256": self.model_sha256,
                "bundle_id": self.bundle_id,
                "custodian_public_key": self.custodian_public_key,
            },
            "lease_id": self.lease_id,
            "instance_id": self.instance_id,
            "status": self.status,
            "signing_public_key": self.signing_public_key.hex(),
            "tls_public_key_sha256": self.tls_public_key_sha256,
            "verified_at": self.verified_at.isoformat(),
        }


def unpinned_context() -> ssl.SSLContext:
    """A client context that accepts any certificate: only to *fetch* evidence, whose
    TLS key binding is then checked (step 4) before anything else is sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def verify_node(
    url: str,
    *,
    policy: AppraisalPolicy,
    trusted_custodians: list[CustodianPublicKey],
    expect_model_sha256: str | None = None,
    nonce: Nonce | None = None,
    now: datetime | None = None,
    timeout: float = TIMEOUT_S,
) -> VerifiedNode:
    """Verify the node at ``url`` (see the module docstring); raise at the first failure."""
    url = url.rstrip("/")
    if not url.startswith("https://"):
        raise NotHttpsError(f"{url} is not an https:// URL")
    if not trusted_custodians:
        raise ValueError("no trusted custodian keys given: refusing to verify against nothing")
    nonce = nonce or Nonce(os.urandom(NONCE_SIZE))
    document, certificate = _fetch_attestation(url, nonce, timeout)
    evidence = _evidence_of(document)
    result = appraise(evidence, policy=policy, expected_nonce=nonce, now=now or datetime.now(UTC))
    presented = certificate_key_sha256(certificate)
    if result.tls_key_sha256 is None:
        raise TlsKeyMismatchError("the evidence binds no TLS key: the connection is not attested")
    if result.tls_key_sha256 != presented:
        raise TlsKeyMismatchError(
            f"the connection's TLS key (sha256 {presented.hex()}) is not the one the evidence "
            f"binds ({result.tls_key_sha256.hex()})"
        )
    manifest = _manifest_of(document, trusted_custodians)
    if expect_model_sha256 is not None and manifest.model.sha256 != expect_model_sha256.lower():
        raise ModelMismatchError(
            f"the node serves model sha256 {manifest.model.sha256}, "
            f"expected {expect_model_sha256.lower()}"
        )
    return VerifiedNode(
        url=url,
        tee=result.tee,
        insecure=result.insecure,
        measurements=result.measurements,
        tcb_status=result.tcb_status,
        model_name=manifest.model.name,
        model_version=manifest.model.version,
        model_sha256=manifest.model.sha256,
        bundle_id=manifest.bundle_id,
        custodian_public_key=manifest.custodian.public_key,
        lease_id=_text(document, "lease_id"),
        instance_id=_text(document, "instance_id"),
        status=_text(document, "status"),
        signing_public_key=result.signing_key,
        tls_public_key_sha256=presented.hex(),
        certificate_der=certificate,
        verified_at=result.appraised_at,
    )


def _fetch_attestation(url: str, nonce: Nonce, timeout: float) -> tuple[dict[str, Any], bytes]:
    """The ``/attestation`` document for ``nonce``, and the certificate of its connection."""
    try:
        with (
            httpx.Client(verify=unpinned_context(), timeout=timeout) as http,
            http.stream("GET", f"{url}/attestation", params={"nonce": nonce.hex()}) as answer,
        ):
            ssl_object = answer.extensions["network_stream"].get_extra_info("ssl_object")
            certificate = ssl_object.getpeercert(True) if ssl_object else None
            body = b""
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > MAX_ATTESTATION_BYTES:
                    raise NodeResponseError(f"the answer is over {MAX_ATTESTATION_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot fetch {url}/attestation: {exc}") from None
    if certificate is None:  # pragma: no cover - https always has a peer certificate
        raise NodeResponseError("the connection presented no certificate")
    if answer.status_code != 200:
        raise NodeResponseError(f"GET /attestation answered HTTP {answer.status_code}")
    try:
        document = json.loads(body)
    except ValueError:
        raise NodeResponseError("the /attestation answer is not JSON") from None
    if not isinstance(document, dict):
        raise NodeResponseError("the /attestation answer is not a JSON object")
    return document, certificate


def _evidence_of(document: dict[str, Any]) -> Evidence:
    raw = document.get("evidence")
    if not isinstance(raw, dict):
        raise NodeResponseError("the /attestation answer has no evidence object")
    try:
        canonical = canonical_json(raw)
    except ValueError as exc:
        raise NodeResponseError(f"the evidence cannot be read: {exc}") from None
    return Evidence.from_json(canonical)  # a malformed one: EvidenceFormatError


def _manifest_of(document: dict[str, Any], trusted: list[CustodianPublicKey]) -> Manifest:
    try:
        signed = SignedManifest(
            raw=base64.b64decode(_text(document, "manifest"), validate=True),
            signature=bytes.fromhex(_text(document, "manifest_signature")),
        )
    except ValueError as exc:
        raise NodeResponseError(f"the manifest cannot be read: {exc}") from None
    try:
        return verify_manifest(signed, trusted_custodians=trusted, header_version=BundleVersion.V1)
    except BundleIntegrityError:
        raise UntrustedManifestError(
            "the node's model manifest is not signed by any custodian you trust"
        ) from None


def _text(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str):
        raise NodeResponseError(f"the /attestation answer has no {key!r} string")
    return value
