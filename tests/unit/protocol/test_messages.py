"""Wire messages: strict shapes, bounded fields, and who may sign what."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from modellease.attestation import SimulatedAttester, TeeKind, produce_evidence
from modellease.attestation.evidence import MAX_EVIDENCE_JSON_SIZE, Evidence
from modellease.keys import CustodianPublicKey, InstanceSigningKey
from modellease.protocol import (
    EXTENSION_REQUEST_PAYLOAD_TYPE,
    GRANT_PAYLOAD_TYPE,
    ORDER_PAYLOAD_TYPE,
    USAGE_REPORT_PAYLOAD_TYPE,
    BadSignatureError,
    EnrolRequest,
    EnrolResponse,
    ExtensionRequest,
    Grant,
    NonceResponse,
    Order,
    OrderNotAllowedError,
    OverseerPublicKey,
    SignedDocument,
    UnknownSignerError,
    UsageCounters,
    UsageReport,
    WrongPayloadTypeError,
    WrongSubjectError,
    canonical_json,
    format_timestamp,
    parse_canonical_json,
    parse_timestamp,
    sign_message,
    verify_extension_request,
    verify_grant,
    verify_order,
    verify_report,
)
from modellease.protocol.messages import (
    MAX_COUNT,
    MAX_EVIDENCE_SIZE,
    MAX_REASON_LENGTH,
    MAX_SEQUENCE,
)
from tests.unit.attestation.support import claims_for
from tests.unit.protocol.support import (
    CUSTODIAN,
    CUSTODIAN_PUB,
    INSTANCE,
    INSTANCE_KEY,
    INSTANCE_PUB,
    LEASE,
    OTHER_CUSTODIAN,
    OTHER_INSTANCE_KEY,
    OVERSEER,
    OVERSEER_PUB,
    T0,
    T1,
    T2,
    counters,
    extension,
    grant,
    order,
    report,
)


def wire_round_trip(message: BaseModel) -> Any:
    """Through the canonical wire form and back, as a receiver sees it."""
    raw = canonical_json(message.model_dump(mode="json"))
    return type(message).model_validate(parse_canonical_json(raw))


# --------------------------------------------------------------------------- field rules
@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T12:00:00+00:00",
        "2026-11-28 12:00:00Z",
        "2026-11-28t12:00:00z",
        "2026-11-28T12:00:00.5Z",
        "2026-11-28T12:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-28T24:00:00Z",
        "2026-11-28T12:00:60Z",
        "2026-11-28T12:00:00Z\n",
        "",
    ],
)
def test_timestamps_are_strict_rfc3339_utc(text: str) -> None:
    with pytest.raises(ValidationError, match="issued_at"):
        grant(issued_at=text)
    with pytest.raises(ValueError, match=r"RFC 3339"):
        parse_timestamp(text)


def test_timestamps_format_and_parse() -> None:
    cet = timezone(timedelta(hours=1))
    assert format_timestamp(datetime(2026, 11, 28, 13, 0, 0, 999, tzinfo=cet)) == T0
    assert parse_timestamp(T0) == datetime(2026, 11, 28, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2026, 11, 28))


def test_counts_travel_as_decimal_strings_and_read_back_as_ints() -> None:
    big = 10**25  # FLOPs pass 2^53 quickly; JSON numbers cannot carry them canonically
    c = counters(estimated_flops=big, requests=3)
    dumped = c.model_dump(mode="json")
    assert dumped["estimated_flops"] == str(big)
    assert dumped["requests"] == "3"
    assert wire_round_trip(c) == c
    assert UsageCounters.model_validate(dumped | {"requests": 3}).requests == 3
    assert counters(estimated_flops=MAX_COUNT).estimated_flops == MAX_COUNT
    assert "pattern" in UsageCounters.model_json_schema()["properties"]["requests"]


@pytest.mark.parametrize(
    "value", [-1, MAX_COUNT + 1, True, 1.0, "01", "-1", "1e3", " 1", "1" * 31, "", None]
)
def test_malformed_counts_are_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="non-negative integer"):
        UsageCounters.model_validate(counters().model_dump(mode="json") | {"refusals": value})


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": 0},
        {"seq": MAX_SEQUENCE + 1},
        {"seq": True},
        {"seq": "1"},
        {"unit": "watts"},
        {"bundle_id": "0123456789ABCDEF0123456789ABCDEF"},
        {"lease_id": "Lease 1"},
        {"lease_id": "x" * 65},
        {"instance_id": ""},
        {"valid_until": "2026-11-28T11:59:59Z"},  # before issued_at
        {"hard_expiry_at": "2026-11-28T12:04:59Z"},  # before valid_until
        {"surplus": 1},
    ],
)
def test_malformed_grants_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        grant(**changes)


def test_a_grant_may_be_valid_exactly_until_its_hard_expiry() -> None:
    g = grant(valid_until=T2, hard_expiry_at=T2, seq=MAX_SEQUENCE)
    assert wire_round_trip(g) == g


def test_messages_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        grant().seq = 2


@pytest.mark.parametrize(
    "reason", ["", "x" * (MAX_REASON_LENGTH + 1), "line\nbreak", "bell\x07", "del\x7f"]
)
def test_free_text_is_bounded_and_inert(reason: str) -> None:
    with pytest.raises(ValidationError, match="reason"):
        order(reason=reason)
    with pytest.raises(ValidationError, match="reason"):
        extension(reason=reason)


def test_free_text_may_be_any_printable_unicode() -> None:
    assert order(reason="Überprüfung durch die Aufsicht — §7").reason.startswith("Über")
    assert len(order(reason="x" * MAX_REASON_LENGTH).reason) == MAX_REASON_LENGTH


def test_order_scope_names_an_instance_exactly_when_it_should() -> None:
    lease_wide = order()
    assert lease_wide.applies_to(INSTANCE)
    assert lease_wide.applies_to("another")
    one = order(scope="instance", instance_id=INSTANCE)
    assert one.applies_to(INSTANCE)
    assert not one.applies_to("another")
    with pytest.raises(ValidationError, match="instance_id"):
        order(scope="instance")
    with pytest.raises(ValidationError, match="instance_id"):
        order(scope="lease", instance_id=INSTANCE)
    with pytest.raises(ValidationError):
        order(kind="reboot")


def test_extension_requests_name_their_requester() -> None:
    assert extension(requester="borrower", instance_id=None).instance_id is None
    with pytest.raises(ValidationError, match="instance_id"):
        extension(requester="borrower")
    with pytest.raises(ValidationError, match="instance_id"):
        extension(instance_id=None)
    with pytest.raises(ValidationError, match="at least 1"):
        extension(units=0)


def test_nonce_response() -> None:
    response = NonceResponse(nonce="ab" * 32, expires_at=T1)
    assert wire_round_trip(response) == response
    with pytest.raises(ValidationError, match="nonce"):
        NonceResponse(nonce="AB" * 32, expires_at=T1)


# --------------------------------------------------------------------------- enrolment
def simulated_evidence() -> Evidence:
    return produce_evidence(SimulatedAttester(b"\x33" * 48), claims_for(TeeKind.SIMULATED))


def test_enrol_request_carries_the_evidence_bytes_intact() -> None:
    evidence = simulated_evidence()
    request = EnrolRequest(lease_id=LEASE, nonce="00" * 32, evidence=json.loads(evidence.to_json()))
    received = wire_round_trip(request)
    assert received.evidence_json() == evidence.to_json()
    assert Evidence.from_json(received.evidence_json()) == evidence


def test_enrol_request_bounds_the_evidence() -> None:
    assert MAX_EVIDENCE_SIZE >= MAX_EVIDENCE_JSON_SIZE
    with pytest.raises(ValidationError, match="evidence larger"):
        EnrolRequest(lease_id=LEASE, nonce="00" * 32, evidence={"x": "y" * MAX_EVIDENCE_SIZE})
    with pytest.raises(ValidationError):
        EnrolRequest(lease_id=LEASE, nonce="00" * 32, evidence={"n": 2**60})  # not JCS-safe


def test_enrol_response_round_trips_and_bounds_the_wrapped_key() -> None:
    signed = sign_message(grant(), signer=CUSTODIAN)
    response = EnrolResponse(
        instance_id=INSTANCE, grant=signed, wrapped_data_key=b"w" * 80, hpke_info=b"info"
    )
    dumped = response.model_dump(mode="json")
    assert isinstance(dumped["wrapped_data_key"], str)
    assert isinstance(dumped["grant"]["payload"], str)
    assert wire_round_trip(response) == response
    assert EnrolResponse.model_validate_json(json.dumps(dumped)) == response
    with pytest.raises(ValidationError, match="wrapped_data_key"):
        EnrolResponse(
            instance_id=INSTANCE, grant=signed, wrapped_data_key=b"w" * 81, hpke_info=b"i"
        )


@pytest.mark.parametrize(
    "model",
    [NonceResponse, EnrolRequest, EnrolResponse, Grant, UsageReport, Order, ExtensionRequest],
)
def test_every_message_has_a_json_schema_for_openapi(model: type[BaseModel]) -> None:
    assert model.model_json_schema()["type"] == "object"


# --------------------------------------------------------------------------- who signs what
def test_each_kind_has_its_own_payload_type() -> None:
    kinds = {
        GRANT_PAYLOAD_TYPE: sign_message(grant(), signer=CUSTODIAN),
        USAGE_REPORT_PAYLOAD_TYPE: sign_message(report(), signer=INSTANCE_KEY),
        ORDER_PAYLOAD_TYPE: sign_message(order(), signer=CUSTODIAN),
        EXTENSION_REQUEST_PAYLOAD_TYPE: sign_message(extension(), signer=INSTANCE_KEY),
    }
    assert len(kinds) == 4
    for payload_type, signed in kinds.items():
        assert signed.payload_type == payload_type


def test_grant_signed_by_the_custodian_verifies() -> None:
    signed = SignedDocument.from_json(sign_message(grant(), signer=CUSTODIAN).to_json())
    assert (
        verify_grant(signed, custodian_keys=[CUSTODIAN_PUB], lease_id=LEASE, instance_id=INSTANCE)
        == grant()
    )


def test_grant_signed_by_wrong_key_is_refused() -> None:
    for wrong in (OTHER_CUSTODIAN, INSTANCE_KEY, OVERSEER):
        with pytest.raises(UnknownSignerError):
            verify_grant(
                sign_message(grant(), signer=wrong),
                custodian_keys=[CUSTODIAN_PUB],
                lease_id=LEASE,
                instance_id=INSTANCE,
            )


def test_grant_for_another_instance_or_lease_is_refused() -> None:
    signed = sign_message(grant(), signer=CUSTODIAN)
    with pytest.raises(WrongSubjectError, match="instance 'inst-7f3a', expected 'inst-other'"):
        verify_grant(
            signed, custodian_keys=[CUSTODIAN_PUB], lease_id=LEASE, instance_id="inst-other"
        )
    with pytest.raises(WrongSubjectError, match="lease"):
        verify_grant(
            signed, custodian_keys=[CUSTODIAN_PUB], lease_id="lease-2", instance_id=INSTANCE
        )


def test_report_signature_does_not_verify_as_grant() -> None:
    """An instance key is (wrongly) trusted as a custodian key: the kind still differs."""
    signed = sign_message(report(), signer=INSTANCE_KEY)
    trusted = [CustodianPublicKey(INSTANCE_KEY.public_bytes())]
    with pytest.raises(WrongPayloadTypeError):
        verify_grant(signed, custodian_keys=trusted, lease_id=LEASE, instance_id=INSTANCE)
    relabelled = signed.model_copy(update={"payload_type": GRANT_PAYLOAD_TYPE})
    with pytest.raises(BadSignatureError):
        verify_grant(relabelled, custodian_keys=trusted, lease_id=LEASE, instance_id=INSTANCE)


def test_report_signed_by_its_instance_verifies() -> None:
    signed = sign_message(report(), signer=INSTANCE_KEY)
    assert (
        verify_report(signed, instance_key=INSTANCE_PUB, lease_id=LEASE, instance_id=INSTANCE)
        == report()
    )


def test_report_signed_by_another_instance_is_refused() -> None:
    signed = sign_message(report(), signer=OTHER_INSTANCE_KEY)
    with pytest.raises(UnknownSignerError):
        verify_report(signed, instance_key=INSTANCE_PUB, lease_id=LEASE, instance_id=INSTANCE)


def test_report_about_another_instance_is_refused() -> None:
    signed = sign_message(report(instance_id="inst-other"), signer=INSTANCE_KEY)
    with pytest.raises(WrongSubjectError, match="usage report"):
        verify_report(signed, instance_key=INSTANCE_PUB, lease_id=LEASE, instance_id=INSTANCE)
    signed = sign_message(report(lease_id="lease-2"), signer=INSTANCE_KEY)
    with pytest.raises(WrongSubjectError, match="lease"):
        verify_report(signed, instance_key=INSTANCE_PUB, lease_id=LEASE, instance_id=INSTANCE)


def test_grant_signature_does_not_verify_as_report() -> None:
    signed = sign_message(grant(), signer=INSTANCE_KEY)  # even with the instance's own key
    with pytest.raises(WrongPayloadTypeError):
        verify_report(signed, instance_key=INSTANCE_PUB, lease_id=LEASE, instance_id=INSTANCE)


@pytest.mark.parametrize("kind", ["kill", "pause", "resume"])
def test_custodian_orders_of_every_kind_verify(kind: str) -> None:
    verified = verify_order(
        sign_message(order(kind=kind), signer=CUSTODIAN),
        custodian_keys=[CUSTODIAN_PUB],
        overseer_keys=[OVERSEER_PUB],
        lease_id=LEASE,
    )
    assert verified.order.kind == kind
    assert verified.issuer == "custodian"


def test_overseer_kill_verifies() -> None:
    verified = verify_order(
        sign_message(order(), signer=OVERSEER),
        custodian_keys=[CUSTODIAN_PUB],
        overseer_keys=[OVERSEER_PUB],
        lease_id=LEASE,
    )
    assert verified.issuer == "overseer"
    assert verified.key_id == sign_message(order(), signer=OVERSEER).key_id


@pytest.mark.parametrize("kind", ["pause", "resume"])
def test_overseer_cannot_pause_or_resume(kind: str) -> None:
    with pytest.raises(OrderNotAllowedError, match="may only kill"):
        verify_order(
            sign_message(order(kind=kind), signer=OVERSEER),
            custodian_keys=[CUSTODIAN_PUB],
            overseer_keys=[OVERSEER_PUB],
            lease_id=LEASE,
        )


def test_order_signed_by_unknown_key_is_refused() -> None:
    for stranger in (OTHER_CUSTODIAN, INSTANCE_KEY):
        with pytest.raises(UnknownSignerError):
            verify_order(
                sign_message(order(), signer=stranger),
                custodian_keys=[CUSTODIAN_PUB],
                overseer_keys=[OVERSEER_PUB],
                lease_id=LEASE,
            )


def test_order_for_another_lease_is_refused() -> None:
    with pytest.raises(WrongSubjectError, match="order"):
        verify_order(
            sign_message(order(lease_id="lease-2"), signer=CUSTODIAN),
            custodian_keys=[CUSTODIAN_PUB],
            lease_id=LEASE,
        )


def test_a_key_cannot_be_custodian_and_overseer_at_once() -> None:
    with pytest.raises(ValueError, match="both"):
        verify_order(
            sign_message(order(), signer=CUSTODIAN),
            custodian_keys=[CUSTODIAN_PUB],
            overseer_keys=[OverseerPublicKey(CUSTODIAN.public_bytes())],
            lease_id=LEASE,
        )


def test_extension_request_signed_by_its_instance_verifies() -> None:
    signed = sign_message(extension(), signer=INSTANCE_KEY)
    assert (
        verify_extension_request(
            signed, instance_key=INSTANCE_PUB, lease_id=LEASE, instance_id=INSTANCE
        )
        == extension()
    )
    with pytest.raises(UnknownSignerError):
        verify_extension_request(
            signed,
            instance_key=InstanceSigningKey(OTHER_INSTANCE_KEY.public_bytes()),
            lease_id=LEASE,
            instance_id=INSTANCE,
        )
    with pytest.raises(WrongSubjectError, match="extension request"):
        verify_extension_request(
            signed, instance_key=INSTANCE_PUB, lease_id=LEASE, instance_id="inst-other"
        )
    with pytest.raises(WrongSubjectError, match="lease"):
        verify_extension_request(
            signed, instance_key=INSTANCE_PUB, lease_id="lease-2", instance_id=INSTANCE
        )


def test_times_used_in_fixtures_are_in_order() -> None:
    assert parse_timestamp(T0) < parse_timestamp(T1) < parse_timestamp(T2)
