"""A protocol-complete simulated node: simulated TEE, real keys, real crypto, real HTTP.

It does what the enclave node will do on the wire — fresh instance keys, a nonce, evidence
binding them, enrolment, unwrapping the data key, signed and hash-chained usage reports,
verifying every grant with the custodian's public key — so integration tests and the demo
drive the real custodian server. It is INSECURE by construction (simulated evidence) and
must never stand in for a node in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from modellease._hazmat import KemPrivateKey, SigningKey
from modellease.attestation import (
    InstanceClaims,
    SimulatedAttester,
    TeeKind,
    produce_evidence,
    runtime_measurement,
)
from modellease.custodian.key_release import unwrap_data_key
from modellease.enclave.wire import CustodianClient
from modellease.keys import CustodianPublicKey, DataKey, InstanceKemKey, InstanceSigningKey, Nonce
from modellease.protocol import (
    EnrolRequest,
    ExtensionRequest,
    Grant,
    RenewResponse,
    SignedDocument,
    UsageCounters,
    UsageReport,
    format_timestamp,
    sign_message,
    verify_grant,
)
from modellease.protocol.messages import GENESIS_REPORT_SHA256

DEFAULT_CONFIG = b"modellease simulated node v1"


@dataclass
class SimulatedNode:
    """One simulated instance of a lease, talking to a custodian at ``client.base_url``."""

    client: httpx.Client
    lease_id: str
    custodian_key: CustodianPublicKey
    config: bytes = DEFAULT_CONFIG
    signing_key: SigningKey = field(default_factory=SigningKey.generate)
    kem_key: KemPrivateKey = field(default_factory=KemPrivateKey.generate)
    instance_id: str | None = None
    bundle_id: str | None = None
    data_key: DataKey | None = None
    grant: Grant | None = None
    signed_grant: SignedDocument | None = None  # the latest grant as the custodian signed it
    seq: int = 0
    previous_digest: str = GENESIS_REPORT_SHA256
    counters: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("requests", "prompt_tokens", "completion_tokens", "estimated_flops", "refusals"), 0
        )
    )

    @property
    def measurement(self) -> bytes:
        return runtime_measurement(self.config)

    @property
    def wire(self) -> CustodianClient:
        return CustodianClient(self.client)

    def nonce(self) -> Nonce:
        return Nonce(bytes.fromhex(self.wire.nonce(self.lease_id).nonce))

    def evidence_json(self, nonce: Nonce) -> bytes:
        claims = InstanceClaims.new(
            tee=TeeKind.SIMULATED,
            nonce=nonce,
            kem_public_key=InstanceKemKey(self.kem_key.public_bytes()),
            signing_public_key=InstanceSigningKey(self.signing_key.public_bytes()),
        )
        return produce_evidence(SimulatedAttester(self.measurement), claims).to_json()

    def enrol(self, *, nonce: Nonce | None = None, evidence: bytes | None = None) -> Grant:
        """Attest and enrol; on success hold the verified grant and the unwrapped data key."""
        nonce = nonce if nonce is not None else self.nonce()
        request = EnrolRequest.model_validate_json(
            b'{"lease_id":"%s","nonce":"%s","evidence":%s}'
            % (self.lease_id.encode(), nonce.hex().encode(), evidence or self.evidence_json(nonce))
        )
        answer = self.wire.enrol(request)
        grant = verify_grant(
            answer.grant,
            custodian_keys=[self.custodian_key],
            lease_id=self.lease_id,
            instance_id=answer.instance_id,
        )
        self.instance_id, self.bundle_id, self.grant = answer.instance_id, grant.bundle_id, grant
        self.signed_grant = answer.grant
        self.data_key = unwrap_data_key(
            self.kem_key,
            answer.wrapped_data_key,
            bundle_id=grant.bundle_id,
            instance_id=answer.instance_id,
            lease_id=self.lease_id,
        )
        return grant

    def use(self, *, requests: int = 0, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Count work done (a real node does this in its meter)."""
        self.counters["requests"] += requests
        self.counters["prompt_tokens"] += prompt_tokens
        self.counters["completion_tokens"] += completion_tokens

    def signed_report(self, *, seq: int | None = None, now: datetime | None = None) -> bytes:
        """The next usage report, signed and chained (not sent). Advances the chain."""
        if self.instance_id is None:
            raise RuntimeError("enrol first")
        report = UsageReport(
            lease_id=self.lease_id,
            instance_id=self.instance_id,
            seq=self.seq + 1 if seq is None else seq,
            previous_report_sha256=self.previous_digest,
            counters=UsageCounters(**self.counters),
            reported_at=format_timestamp(now or datetime.now(UTC)),
        )
        signed = sign_message(report, signer=self.signing_key)
        self.seq, self.previous_digest = report.seq, signed.digest()
        return signed.to_json()

    def request_extension(self, units: int, reason: str) -> str:
        """Ask the custodian for more budget, signed with this instance's key."""
        if self.instance_id is None:
            raise RuntimeError("enrol first")
        request = ExtensionRequest(
            lease_id=self.lease_id,
            requester="instance",
            instance_id=self.instance_id,
            units=units,
            reason=reason,
            requested_at=format_timestamp(datetime.now(UTC)),
        )
        return self.wire.request_extension(sign_message(request, signer=self.signing_key).to_json())

    def renew(self, signed_report: bytes | None = None) -> RenewResponse:
        """Send a report (the next one by default); verify and keep any new grant."""
        answer = self.wire.renew(signed_report or self.signed_report())
        if answer.grant is not None:
            assert self.instance_id is not None
            self.signed_grant = answer.grant
            self.grant = verify_grant(
                answer.grant,
                custodian_keys=[self.custodian_key],
                lease_id=self.lease_id,
                instance_id=self.instance_id,
            )
        return answer
