"""Attested key release: the data key opens only in the appraised instance, for one binding."""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from modellease._hazmat import KemPrivateKey, SigningKey, hpke_seal
from modellease.attestation import (
    AppraisalResult,
    InstanceClaims,
    SimulatedAttester,
    TeeKind,
    appraise,
    policy_from_mapping,
    produce_evidence,
    runtime_measurement,
)
from modellease.custodian.key_release import (
    KEY_RELEASE_INFO_PREFIX,
    KeyUnwrapError,
    WrappedKey,
    key_release_info,
    release_data_key,
    unwrap_data_key,
)
from modellease.keys import CustodianPublicKey, InstanceKemKey, InstanceSigningKey, Nonce, data_key
from modellease.protocol import EnrolResponse, Grant, sign_message, verify_grant
from tests.conftest import FIXED_TIME, seal_bytes

NONCE = Nonce(bytes(range(32)))
MEASUREMENT = runtime_measurement(b"node config v1")
POLICY = policy_from_mapping(
    {
        "allowed_tees": ["simulated"],
        "unsafe_allow_simulated": True,
        "simulated": {"measurement": [MEASUREMENT.hex()]},
    }
)
DEK = data_key(b"\x42" * 32)
BUNDLE = "0123456789abcdef0123456789abcdef"
INSTANCE = "inst-1"
LEASE = "lease-1"
IDS = {"bundle_id": BUNDLE, "instance_id": INSTANCE, "lease_id": LEASE}
CUSTODIAN = SigningKey.from_seed(b"\x01" * 32)


@dataclasses.dataclass
class Node:
    """A simulated TEE instance: keys generated inside, evidence bound to them, appraised."""

    kem: KemPrivateKey
    signing: SigningKey
    appraisal: AppraisalResult


def enrol_node() -> Node:
    kem, signing = KemPrivateKey.generate(), SigningKey.generate()
    claims = InstanceClaims.new(
        tee=TeeKind.SIMULATED,
        nonce=NONCE,
        kem_public_key=InstanceKemKey(kem.public_bytes()),
        signing_public_key=InstanceSigningKey(signing.public_bytes()),
    )
    evidence = produce_evidence(SimulatedAttester(MEASUREMENT), claims)
    result = appraise(evidence, policy=POLICY, expected_nonce=NONCE, now=FIXED_TIME)
    return Node(kem=kem, signing=signing, appraisal=result)


@pytest.fixture(scope="module")
def node() -> Node:
    return enrol_node()


def test_info_is_exactly_the_documented_bytes() -> None:
    assert key_release_info(**IDS) == (
        b"modellease/key-release/v1\x00"
        b'{"bundle_id":"0123456789abcdef0123456789abcdef","instance_id":"inst-1","lease_id":"lease-1"}'
    )
    assert key_release_info(**IDS).startswith(KEY_RELEASE_INFO_PREFIX)


def test_released_key_unwraps_in_the_appraised_instance(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="modellease.custodian.key_release"):
        wrapped = release_data_key(appraisal=node.appraisal, data_key=DEK, **IDS)
    assert "INSECURE" in caplog.text  # simulated TEE: said every time
    assert wrapped.recipient == node.appraisal.kem_key == node.kem.public_bytes()
    assert wrapped.info == key_release_info(**IDS)
    assert len(wrapped.sealed) == 32 + 32 + 16
    assert DEK.hex() not in repr(wrapped)
    assert wrapped.sealed.hex() not in repr(wrapped)
    assert unwrap_data_key(node.kem, wrapped.sealed, **IDS) == DEK


def test_released_key_opens_the_sealed_bundle(node: Node) -> None:
    model = bytes(range(256)) * 5
    sealed = seal_bytes(model, key=DEK, bundle_id=BUNDLE)
    wrapped = release_data_key(appraisal=node.appraisal, data_key=sealed.key, **IDS)
    assert unwrap_data_key(node.kem, wrapped.sealed, **IDS) == sealed.key


def test_release_to_real_hardware_does_not_warn(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    hardware = dataclasses.replace(node.appraisal, tee=TeeKind.SEV_SNP, insecure=False)
    with caplog.at_level(logging.WARNING, logger="modellease.custodian.key_release"):
        wrapped = release_data_key(appraisal=hardware, data_key=DEK, **IDS)
    assert caplog.text == ""
    assert unwrap_data_key(node.kem, wrapped.sealed, **IDS) == DEK


def test_dek_unwrap_by_a_different_instance_key_is_refused(node: Node) -> None:
    wrapped = release_data_key(appraisal=node.appraisal, data_key=DEK, **IDS)
    other = enrol_node()  # another attested instance of the same lease
    with pytest.raises(KeyUnwrapError) as exc:
        unwrap_data_key(other.kem, wrapped.sealed, **IDS)
    assert exc.value.reason == "key_unwrap_failed"
    assert str(exc.value) == KeyUnwrapError.MESSAGE


@pytest.mark.parametrize(
    "changes",
    [
        {"bundle_id": "f" * 32},
        {"instance_id": "inst-2"},
        {"lease_id": "lease-2"},
    ],
)
def test_dek_unwrap_for_another_binding_is_refused(node: Node, changes: dict[str, str]) -> None:
    wrapped = release_data_key(appraisal=node.appraisal, data_key=DEK, **IDS)
    with pytest.raises(KeyUnwrapError):
        unwrap_data_key(node.kem, wrapped.sealed, **(IDS | changes))


def test_tampered_wrapped_key_is_refused(node: Node) -> None:
    sealed = release_data_key(appraisal=node.appraisal, data_key=DEK, **IDS).sealed
    for i in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[i] ^= 0x80
        with pytest.raises(KeyUnwrapError):
            unwrap_data_key(node.kem, bytes(tampered), **IDS)
    for cut in (0, 31, 32, 48, len(sealed) - 1):
        with pytest.raises(KeyUnwrapError):
            unwrap_data_key(node.kem, sealed[:cut], **IDS)
    with pytest.raises(KeyUnwrapError):
        unwrap_data_key(node.kem, sealed + b"\x00", **IDS)


def test_a_sealed_value_that_is_not_a_data_key_is_refused(node: Node) -> None:
    """Base-mode HPKE does not authenticate the sender: anyone can seal to the KEM key."""
    forged = hpke_seal(node.kem.public_bytes(), b"\x00" * 16, info=key_release_info(**IDS))
    with pytest.raises(KeyUnwrapError):
        unwrap_data_key(node.kem, forged, **IDS)


@pytest.mark.parametrize(
    "fake",
    [
        SimpleNamespace(kem_key=b"\x11" * 32, insecure=False),
        {"kem_key": b"\x11" * 32},
        None,
    ],
)
def test_only_an_appraisal_result_releases_a_key(fake: Any) -> None:
    with pytest.raises(TypeError, match="AppraisalResult"):
        release_data_key(appraisal=fake, data_key=DEK, **IDS)


def test_a_subclass_of_appraisal_result_is_refused(node: Node) -> None:
    class Lookalike(AppraisalResult):
        __slots__ = ()

    fields = {f.name: getattr(node.appraisal, f.name) for f in dataclasses.fields(AppraisalResult)}
    with pytest.raises(TypeError, match="AppraisalResult"):
        release_data_key(appraisal=Lookalike(**fields), data_key=DEK, **IDS)


@pytest.mark.parametrize("bad", [b"\x42" * 16, b"\x42" * 33, "42" * 32])
def test_only_a_32_byte_data_key_is_released(node: Node, bad: Any) -> None:
    with pytest.raises(TypeError, match="32-byte"):
        release_data_key(appraisal=node.appraisal, data_key=bad, **IDS)


@pytest.mark.parametrize(
    "changes",
    [
        {"bundle_id": "0123"},
        {"bundle_id": "0123456789ABCDEF0123456789ABCDEF"},
        {"instance_id": "Inst 1"},
        {"lease_id": ""},
        {"lease_id": "x" * 65},
        {"lease_id": 7},
    ],
)
def test_malformed_ids_are_caller_bugs(node: Node, changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        release_data_key(appraisal=node.appraisal, data_key=DEK, **(IDS | changes))
    with pytest.raises(ValueError, match="must"):
        unwrap_data_key(node.kem, b"\x00" * 80, **(IDS | changes))


def test_enrolment_round_trip_binds_the_key_to_the_verified_grant(node: Node) -> None:
    """Custodian: appraise, grant, release. Node: verify the grant, unwrap with ITS ids."""
    grant = Grant(
        lease_id=LEASE,
        instance_id=INSTANCE,
        bundle_id=BUNDLE,
        seq=1,
        allowance=100,
        unit="requests",
        issued_at="2026-11-28T12:00:00Z",
        valid_until="2026-11-28T12:05:00Z",
        hard_expiry_at="2026-11-28T13:00:00Z",
    )
    wrapped = release_data_key(appraisal=node.appraisal, data_key=DEK, **IDS)
    response = EnrolResponse(
        instance_id=INSTANCE,
        grant=sign_message(grant, signer=CUSTODIAN),
        wrapped_data_key=wrapped.sealed,
        hpke_info=wrapped.info,
    )
    received = EnrolResponse.model_validate_json(response.model_dump_json())
    verified = verify_grant(
        received.grant,
        custodian_keys=[CustodianPublicKey(CUSTODIAN.public_bytes())],
        lease_id=LEASE,
        instance_id=received.instance_id,
    )
    key = unwrap_data_key(
        node.kem,
        received.wrapped_data_key,
        bundle_id=verified.bundle_id,
        instance_id=verified.instance_id,
        lease_id=verified.lease_id,
    )
    assert key == DEK


def test_wrapped_key_is_a_plain_value() -> None:
    wrapped = WrappedKey(sealed=b"s" * 80, info=b"i", recipient=InstanceKemKey(b"\x11" * 32))
    assert repr(wrapped) == f"WrappedKey(recipient={'11' * 32}, 80 bytes)"
