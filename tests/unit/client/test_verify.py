"""verify_node against a fake node: each malformed or lying answer ends in its own typed
error. The fake is built from the simulated attester, so its evidence is as good as a real
simulated node's: which is also why a policy must never admit simulated evidence outside
development (an impostor passes steps 1-3 with it, as the happy path here shows)."""

from __future__ import annotations

import base64
import io
import json
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from modellease._hazmat import KemPrivateKey, SigningKey, TlsPrivateKey
from modellease.attestation import (
    InstanceClaims,
    SimulatedAttester,
    policy_from_mapping,
    produce_evidence,
)
from modellease.attestation.tls import certificate_key_sha256, evidence_in_certificate
from modellease.bundle import BundleReader
from modellease.client import (
    NodeResponseError,
    NotHttpsError,
    TlsKeyMismatchError,
    openai_client,
    verify_node,
)
from modellease.client.verify import MAX_ATTESTATION_BYTES
from modellease.enclave.tls import NodeCertificate
from modellease.errors import EvidenceFormatError, TransportError
from modellease.keys import InstanceKemKey, InstanceSigningKey, Nonce
from modellease.testing.server import free_port, serving
from tests.conftest import seal_bytes

MEASUREMENT = bytes(range(48))
POLICY = policy_from_mapping(
    {
        "allowed_tees": ["simulated"],
        "unsafe_allow_simulated": True,
        "simulated": {"measurement": [MEASUREMENT.hex()]},
    }
)
SEALED = seal_bytes(b"a model" * 100)
TRUSTED = [SEALED.custodian]


def signed_manifest() -> tuple[str, str]:
    reader = BundleReader.open(io.BytesIO(SEALED.blob), trusted_custodians=TRUSTED)
    return base64.b64encode(
        reader.signed_manifest.raw
    ).decode(), reader.signed_manifest.signature.hex()


Answer = Callable[[str, bytes], Any]  # (nonce hex, TLS key hash) -> body or Response


def honest(nonce: str, tls_sha256: bytes | None) -> dict[str, Any]:
    claims = InstanceClaims.new(
        tee=SimulatedAttester.tee,
        nonce=Nonce(bytes.fromhex(nonce)),
        kem_public_key=InstanceKemKey(KemPrivateKey.generate().public_bytes()),
        signing_public_key=InstanceSigningKey(SigningKey.generate().public_bytes()),
        tls_public_key_sha256=tls_sha256,
    )
    manifest, signature = signed_manifest()
    return {
        "evidence": json.loads(produce_evidence(SimulatedAttester(MEASUREMENT), claims).to_json()),
        "manifest": manifest,
        "manifest_signature": signature,
        "lease_id": "lease-1",
        "instance_id": "inst-1",
        "status": "serving",
    }


@contextmanager
def fake_node(answer: Callable[[str, bytes], Any]) -> Iterator[str]:
    key = TlsPrivateKey.generate()
    certificate = NodeCertificate.issue(key, evidence=b"{}", name="fake")
    app = FastAPI()

    @app.get("/attestation")
    async def attestation(request: Request) -> Response:
        body = answer(request.query_params["nonce"], key.public_key_sha256())
        return body if isinstance(body, Response) else JSONResponse(body)

    with serving(app, tls=certificate.server_context) as url:
        yield url


def test_a_fake_with_simulated_evidence_passes_a_simulated_policy() -> None:
    with fake_node(honest) as url:
        node = verify_node(url, policy=POLICY, trusted_custodians=TRUSTED)
    assert (node.insecure, node.lease_id, node.status) == (True, "lease-1", "serving")
    assert certificate_key_sha256(node.certificate_der).hex() == node.tls_public_key_sha256
    assert evidence_in_certificate(node.certificate_der) == b"{}"
    certificate = x509.load_der_x509_certificate(node.certificate_der)
    assert certificate.not_valid_after_utc.year == 9999  # no client clock makes it expire
    assert certificate.not_valid_before_utc < datetime.now(UTC)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda n, k: Response(status_code=503), "answered HTTP 503"),
        (lambda n, k: Response(b"<html>", media_type="text/html"), "is not JSON"),
        (lambda n, k: [1, 2], "is not a JSON object"),
        (lambda n, k: {"status": "serving"}, "has no evidence object"),
        (lambda n, k: {"evidence": {"tee": 2**60}}, "the evidence cannot be read"),
        (lambda n, k: Response(b" " * (MAX_ATTESTATION_BYTES + 1)), "bytes"),
        (lambda n, k: honest(n, k) | {"manifest": "not base64!"}, "manifest cannot be read"),
        (lambda n, k: honest(n, k) | {"manifest_signature": "zz"}, "manifest cannot be read"),
        (lambda n, k: honest(n, k) | {"lease_id": 7}, "no 'lease_id' string"),
    ],
)
def test_a_malformed_answer_is_refused(answer: Answer, message: str) -> None:
    with fake_node(answer) as url, pytest.raises(NodeResponseError, match=message):
        verify_node(url, policy=POLICY, trusted_custodians=TRUSTED)


def test_evidence_of_the_wrong_shape_is_an_attestation_error() -> None:
    with (
        fake_node(lambda n, k: {"evidence": {"tee": "simulated"}}) as url,
        pytest.raises(EvidenceFormatError, match="exactly tee, quote, claims"),
    ):
        verify_node(url, policy=POLICY, trusted_custodians=TRUSTED)


def test_evidence_binding_no_tls_key_is_refused() -> None:
    with (
        fake_node(lambda n, _k: honest(n, None)) as url,
        pytest.raises(TlsKeyMismatchError, match="binds no TLS key"),
    ):
        verify_node(url, policy=POLICY, trusted_custodians=TRUSTED)


def test_no_node_there_is_a_transport_error() -> None:
    with pytest.raises(TransportError, match="cannot fetch"):
        verify_node(f"https://127.0.0.1:{free_port()}", policy=POLICY, trusted_custodians=TRUSTED)


def test_caller_errors() -> None:
    with pytest.raises(NotHttpsError):
        verify_node("http://example.org", policy=POLICY, trusted_custodians=TRUSTED)
    with pytest.raises(ValueError, match="no trusted custodian keys"):
        verify_node("https://example.org", policy=POLICY, trusted_custodians=[])
    with pytest.raises(ValueError, match="give the node's URL"):
        openai_client()


def test_the_tls_key_is_never_shown() -> None:
    assert repr(TlsPrivateKey.generate()) == "TlsPrivateKey(<secret>)"


def test_a_certificate_without_our_extension_carries_no_evidence() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")])
    now = datetime.now(UTC)
    der = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    assert evidence_in_certificate(der) is None


def test_the_tls_key_reaches_openssl_through_a_memory_file_closed_after_loading() -> None:
    before = set(Path("/proc/self/fd").iterdir())
    certificate = NodeCertificate.issue(TlsPrivateKey.generate(), evidence=b"{}", name="n")
    context = certificate.server_context()
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert set(Path("/proc/self/fd").iterdir()) <= before
    assert "modellease-tls" not in Path("/proc/self/maps").read_text()
