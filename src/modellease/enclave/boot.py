"""Boot: from a sealed bundle and a lease to a node ready to serve.

In order, each step refusing with a typed error before the next one starts:

1. the bundle's header and manifest signature are checked against the custodian key of the
   measured configuration (a bundle from anyone else is refused before enrolling);
2. the instance keys (Ed25519 for reports, X25519 for the data key, P-256 for TLS) are
   generated here, inside the TEE, and never leave it;
3. a nonce from the custodian, evidence from the TEE binding the nonce, both public keys
   and the hash of the TLS key (:mod:`modellease.attestation.tls`);
4. enrolment: the first grant is verified by the lease keeper (pinned custodian key) and must
   name the bundle being opened;
5. the data key is unwrapped (HPKE, bound to bundle, instance and lease) and the KEM private
   key dropped;
6. the bundle is decrypted into memory (for a language model, a memory file allocated while
   steps 2-5 ran) and checked against the manifest's hash while the
   engine loads it (:func:`~modellease.enclave.loading.load_engine`); our buffers are wiped.

The data key is not kept: once the engine holds the model, nothing needs it. (It is an
immutable ``bytes``: dropped, not wiped; see docs/threat-model.md.)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from modellease._hazmat import KemPrivateKey, SigningKey, TlsPrivateKey
from modellease.attestation import Attester, InstanceClaims, produce_evidence
from modellease.bundle import BundleReader, Manifest
from modellease.bundle.manifest import SignedManifest
from modellease.custodian.key_release import unwrap_data_key
from modellease.enclave.config import NodeConfig
from modellease.enclave.keeper import LeaseKeeper
from modellease.enclave.loading import Engine, load_engine, reserved_memory
from modellease.enclave.runtime import NodeRuntime
from modellease.enclave.tls import NodeCertificate
from modellease.enclave.wire import CustodianClient
from modellease.errors import InvalidInputError
from modellease.keys import InstanceKemKey, InstanceSigningKey, Nonce
from modellease.protocol import EnrolRequest

log = logging.getLogger("modellease.node")

Clock = Callable[[], datetime]


class BundleMismatchError(InvalidInputError):
    """The lease's grant names another bundle than the one this node was given."""

    reason = "bundle_mismatch"


@dataclass(frozen=True, slots=True)
class BootedNode:
    """An enrolled instance with its model loaded, and what it shows consumers."""

    runtime: NodeRuntime
    engine: Engine
    manifest: Manifest
    signed_manifest: SignedManifest
    attester: Attester
    kem_public_key: InstanceKemKey
    signing_public_key: InstanceSigningKey
    enrolment_evidence: bytes  # the evidence the custodian appraised (JSON)
    tls: NodeCertificate  # the HTTPS identity, bound in every evidence this node produces

    def evidence(self, nonce: Nonce) -> bytes:
        """Fresh evidence binding a consumer's ``nonce`` and this instance's public keys."""
        claims = InstanceClaims.new(
            tee=self.attester.tee,
            nonce=nonce,
            kem_public_key=self.kem_public_key,
            signing_public_key=self.signing_public_key,
            tls_public_key_sha256=self.tls.key.public_key_sha256(),
        )
        return produce_evidence(self.attester, claims).to_json()


def boot(
    config: NodeConfig,
    *,
    lease_id: str,
    bundle: Path,
    attester: Attester,
    custodian: CustodianClient,
    clock: Clock,
    threads: int | None = None,
) -> BootedNode:
    """Run the steps of the module docstring; on any refusal nothing is served."""
    started = time.perf_counter()
    with (
        BundleReader.open(bundle, trusted_custodians=[config.custodian_key]) as reader,
        reserved_memory(reader.manifest.model) as memory,  # allocated while we enrol
    ):
        manifest = reader.manifest
        signer, kem, tls_key = (
            SigningKey.generate(),
            KemPrivateKey.generate(),
            TlsPrivateKey.generate(),
        )
        signing_public = InstanceSigningKey(signer.public_bytes())
        kem_public = InstanceKemKey(kem.public_bytes())
        nonce = Nonce(bytes.fromhex(custodian.nonce(lease_id).nonce))
        claims = InstanceClaims.new(
            tee=attester.tee,
            nonce=nonce,
            kem_public_key=kem_public,
            signing_public_key=signing_public,
            tls_public_key_sha256=tls_key.public_key_sha256(),
        )
        evidence = produce_evidence(attester, claims).to_json()
        answer = custodian.enrol(
            EnrolRequest(lease_id=lease_id, nonce=nonce.hex(), evidence=json.loads(evidence))
        )
        keeper = LeaseKeeper(
            lease_id=lease_id,
            instance_id=answer.instance_id,
            custodian_key=config.custodian_key,
            overseer_keys=config.overseer_keys,
        )
        grant = keeper.accept_grant(answer.grant, now=clock())
        if grant.bundle_id != manifest.bundle_id:
            raise BundleMismatchError(
                f"the lease grants bundle {grant.bundle_id}, this node holds {manifest.bundle_id}"
            )
        data_key = unwrap_data_key(
            kem,
            answer.wrapped_data_key,
            bundle_id=grant.bundle_id,
            instance_id=answer.instance_id,
            lease_id=lease_id,
        )
        del kem
        log.info(
            "enrolled",
            extra={
                "instance_id": answer.instance_id,
                "grant_seq": grant.seq,
                "allowance": grant.allowance,
                "unit": grant.unit,
            },
        )
        engine = load_engine(reader, data_key=data_key, memory=memory, threads=threads)
        del data_key
        signed_manifest = reader.signed_manifest
    log.info(
        "model loaded",
        extra={
            "model": manifest.model.name,
            "format": manifest.model.format,
            "boot_seconds": round(time.perf_counter() - started, 3),
        },
    )
    return BootedNode(
        runtime=NodeRuntime(keeper=keeper, signer=signer, engine=engine),
        engine=engine,
        manifest=manifest,
        signed_manifest=signed_manifest,
        attester=attester,
        kem_public_key=kem_public,
        signing_public_key=signing_public,
        enrolment_evidence=evidence,
        tls=NodeCertificate.issue(
            tls_key, evidence=evidence, name=f"modellease node {answer.instance_id}"
        ),
    )
