"""Wire messages between a node and the custodian, and the usage-report chain rule.

Rules:

* every message is a strict, frozen pydantic model that forbids unknown fields; every
  string, count and list is bounded by a named constant;
* timestamps are RFC 3339 UTC to the second (``2026-11-28T12:00:00Z``), one spelling only,
  and must name a real instant;
* counts (allowances, usage counters, units requested) are non-negative integers below
  10^30 carried as decimal strings, as protobuf's JSON mapping carries 64-bit integers:
  FLOP counts pass 2^53 within seconds on one GPU, and JSON numbers beyond 2^53 are neither
  canonical (RFC 8785) nor safe in JavaScript; sequence numbers stay JSON integers ≤ 2^53-1;
* the signed kinds and their signers: :class:`Grant` (custodian key), :class:`UsageReport`
  (the instance signing key bound into the evidence), :class:`Order` (custodian key, or an
  overseer key for ``kill`` only), :class:`ExtensionRequest` (instance key); each kind has
  its own payload type, so a signature over one never verifies as another;
* ``verify_*`` functions take the keys trusted for that kind, typed by purpose, and the
  subject the caller expects; a validly signed document about another lease or instance
  is refused (:class:`WrongSubjectError`);
* :func:`check_report_chain` is the pure telemetry rule, checked on verified reports:

  1. ``seq`` is exactly last + 1 (1 for the first): a gap, a replay or a rollback is
     refused; the very same report again is :class:`DuplicateReportError`, so the caller
     can answer a retry as before without changing anything;
  2. ``previous_report_sha256`` is the SHA-256 of the previous signed report's PAE bytes
     (64 zeros for the first): anything else is a fork;
  3. no cumulative counter goes down.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Final, Literal, NewType, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from modellease._hazmat import HPKE_MAX_INFO_SIZE, HPKE_OVERHEAD, SigningKey, ct_equal
from modellease.errors import InvalidInputError
from modellease.keys import CustodianPublicKey, InstanceSigningKey, fingerprint
from modellease.protocol.envelope import canonical_json
from modellease.protocol.signed import (
    BASE64_SERIALIZER,
    SignedDocument,
    SignedDocumentError,
    base64_schema,
    base64_validator,
    open_document,
    sign_document,
)

OverseerPublicKey = NewType("OverseerPublicKey", bytes)
"""Raw 32-byte Ed25519 public key of a lease's overseer; may sign ``kill`` orders only."""

# --------------------------------------------------------------------------- limits
IDENTIFIER_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # lease, instance and order ids
BUNDLE_ID_PATTERN: Final = r"^[0-9a-f]{32}$"  # as in the bundle manifest
SHA256_HEX_PATTERN: Final = r"^[0-9a-f]{64}$"
NONCE_HEX_PATTERN: Final = r"^[0-9a-f]{64}$"  # 32 bytes, as the attestation claims carry it
MAX_SEQUENCE: Final = 2**53 - 1  # the largest integer RFC 8785 / JavaScript represent exactly
MAX_COUNT_DIGITS: Final = 30
MAX_COUNT: Final = 10**MAX_COUNT_DIGITS - 1  # ~2^100 FLOPs: far above any budget
MAX_REASON_LENGTH: Final = 1000  # characters of free text in orders and extension requests
# A transport cap at or above attestation.evidence.MAX_EVIDENCE_JSON_SIZE, which
# Evidence.from_json applies exactly; the HTTP layer caps request bodies before parsing.
MAX_EVIDENCE_SIZE: Final = 8 * 1024 * 1024
DATA_KEY_SIZE: Final = 32
WRAPPED_DATA_KEY_SIZE: Final = HPKE_OVERHEAD + DATA_KEY_SIZE
GENESIS_REPORT_SHA256: Final = "0" * 64  # "previous report" of an instance's first report

GRANT_PAYLOAD_TYPE: Final = "application/vnd.modellease.grant.v1+json"
USAGE_REPORT_PAYLOAD_TYPE: Final = "application/vnd.modellease.usage-report.v1+json"
ORDER_PAYLOAD_TYPE: Final = "application/vnd.modellease.order.v1+json"
EXTENSION_REQUEST_PAYLOAD_TYPE: Final = "application/vnd.modellease.extension-request.v1+json"

_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)
MAX_ORDERS_PER_RESPONSE = 256  # a lease's whole order history fits many times over
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_COUNT_TEXT = re.compile(rf"0|[1-9][0-9]{{0,{MAX_COUNT_DIGITS - 1}}}")
_NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]+$"


# --------------------------------------------------------------------------- errors
# Subclasses of modellease.errors classes; to be moved into errors.py.
class WrongSubjectError(SignedDocumentError):
    """A validly signed document is about another lease, instance or bundle than expected."""

    reason = "wrong_subject"


class OrderNotAllowedError(SignedDocumentError):
    """An overseer key signed an order other than ``kill``."""

    reason = "order_not_allowed"


class ReportChainError(InvalidInputError):
    """A verified usage report does not extend its instance's report chain."""

    reason = "report_chain"


class ReportSequenceError(ReportChainError):
    """The report's sequence number is not last + 1: a gap, a replay or a rollback."""

    reason = "report_sequence"

    def __init__(self, message: str, *, expected: int, received: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.received = received


class DuplicateReportError(ReportSequenceError):
    """Byte for byte the last accepted report again: a retry; answer as before, change nothing."""

    reason = "report_duplicate"


class ReportForkError(ReportChainError):
    """The report names another predecessor than the last accepted report."""

    reason = "report_fork"


class CounterDecreasedError(ReportChainError):
    """A cumulative usage counter is lower than in the previous report."""

    reason = "counter_decreased"

    def __init__(self, message: str, *, counters: tuple[str, ...]) -> None:
        super().__init__(message)
        self.counters = counters


# --------------------------------------------------------------------------- field types
def check_timestamp(value: str) -> str:
    """``value`` if it is a message timestamp (:data:`Timestamp`); else ``ValueError``."""
    if _TIMESTAMP.fullmatch(value) is None:
        raise ValueError("must be an RFC 3339 UTC time to the second, like 2026-11-28T12:00:00Z")
    try:
        datetime.fromisoformat(value)  # the pattern fixed the form; this checks the date is real
    except ValueError:
        raise ValueError(f"{value} is not a real RFC 3339 date and time") from None
    return value


def _to_count(value: object) -> int:
    if isinstance(value, str) and _COUNT_TEXT.fullmatch(value) is not None:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    raise ValueError(
        f"must be a non-negative integer of at most {MAX_COUNT_DIGITS} digits, "
        'written as a decimal string ("123")'
    )


Timestamp = Annotated[str, AfterValidator(check_timestamp)]
Count = Annotated[
    int,
    PlainValidator(_to_count),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": f"^(?:{_COUNT_TEXT.pattern})$"}),
]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
BundleId = Annotated[str, Field(pattern=BUNDLE_ID_PATTERN)]
Sha256Hex = Annotated[str, Field(pattern=SHA256_HEX_PATTERN)]
Sequence = Annotated[int, Field(ge=1, le=MAX_SEQUENCE)]
Reason = Annotated[
    str, Field(min_length=1, max_length=MAX_REASON_LENGTH, pattern=_NO_CONTROL_CHARACTERS)
]
Unit = Literal["requests", "tokens", "flops"]
WrappedDataKeyBytes = Annotated[
    bytes,
    base64_validator(WRAPPED_DATA_KEY_SIZE),
    BASE64_SERIALIZER,
    base64_schema(WRAPPED_DATA_KEY_SIZE),
]
HpkeInfoBytes = Annotated[
    bytes,
    base64_validator(HPKE_MAX_INFO_SIZE),
    BASE64_SERIALIZER,
    base64_schema(HPKE_MAX_INFO_SIZE),
]


def format_timestamp(when: datetime) -> str:
    """Render an aware datetime in the one timestamp form messages use (sub-seconds dropped)."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def parse_timestamp(text: str) -> datetime:
    """The aware UTC datetime of a message timestamp."""
    return datetime.fromisoformat(check_timestamp(text))  # "Z": already aware, UTC


# --------------------------------------------------------------------------- enrolment
class NonceResponse(BaseModel):
    """Custodian → node: a fresh, single-use nonce to bind into the evidence."""

    model_config = _STRICT

    nonce: str = Field(pattern=NONCE_HEX_PATTERN)
    expires_at: Timestamp


class EnrolRequest(BaseModel):
    """Node → custodian: evidence for a lease. Not signed: the evidence binds itself.

    The instance's public keys are not repeated here: they are the claims inside the
    evidence, and only appraisal makes them true. ``nonce`` says which issued nonce the
    node used, so the custodian can consume it before appraising; appraisal then checks
    that the claims carry that nonce.
    """

    model_config = _STRICT

    lease_id: Identifier
    nonce: str = Field(pattern=NONCE_HEX_PATTERN)
    evidence: dict[str, JsonValue]

    @model_validator(mode="after")
    def _evidence_size(self) -> Self:
        if len(self.evidence_json()) > MAX_EVIDENCE_SIZE:
            raise ValueError(f"evidence larger than {MAX_EVIDENCE_SIZE} bytes")
        return self

    def evidence_json(self) -> bytes:
        """The evidence as canonical JSON, for ``attestation.Evidence.from_json``."""
        return canonical_json(self.evidence)


class Grant(BaseModel):
    """Custodian → node, signed by the custodian key: how much an instance may use, until when.

    ``allowance`` is cumulative since enrolment (usage so far plus what is left), so a
    replayed old grant can never add budget; ``seq`` strictly increases per instance; after
    ``valid_until`` the node stops serving, after ``hard_expiry_at`` it forgets the key.
    """

    model_config = _STRICT
    PAYLOAD_TYPE: ClassVar[str] = GRANT_PAYLOAD_TYPE

    lease_id: Identifier
    instance_id: Identifier
    bundle_id: BundleId
    seq: Sequence
    allowance: Count
    unit: Unit
    issued_at: Timestamp
    valid_until: Timestamp
    hard_expiry_at: Timestamp

    @model_validator(mode="after")
    def _times_in_order(self) -> Self:
        # Timestamps have one fixed-width UTC form (Timestamp), so text order is time order.
        if not self.issued_at <= self.valid_until <= self.hard_expiry_at:
            raise ValueError("need issued_at <= valid_until <= hard_expiry_at")
        return self


class EnrolResponse(BaseModel):
    """Custodian → node: the instance id, its first grant, and the bundle's data key.

    ``wrapped_data_key`` is HPKE-sealed to the attested KEM key; ``hpke_info`` is the info
    used, for diagnosis only: the node recomputes it from the verified grant
    (``modellease.custodian.key_release.unwrap_data_key``) and never trusts this copy.
    """

    model_config = _STRICT

    instance_id: Identifier
    grant: SignedDocument
    wrapped_data_key: WrappedDataKeyBytes
    hpke_info: HpkeInfoBytes


# --------------------------------------------------------------------------- telemetry
class UsageCounters(BaseModel):
    """Cumulative counts since the instance enrolled; never prompt content."""

    model_config = _STRICT

    requests: Count
    prompt_tokens: Count
    completion_tokens: Count
    estimated_flops: Count
    refusals: Count

    def decreased_from(self, previous: UsageCounters) -> tuple[str, ...]:
        """Names of the counters that are lower here than in ``previous``."""
        return tuple(
            name
            for name in type(self).model_fields
            if getattr(self, name) < getattr(previous, name)
        )


class UsageReport(BaseModel):
    """Node → custodian, signed by the instance key: sequence-numbered, hash-chained usage."""

    model_config = _STRICT
    PAYLOAD_TYPE: ClassVar[str] = USAGE_REPORT_PAYLOAD_TYPE

    lease_id: Identifier
    instance_id: Identifier
    seq: Sequence
    previous_report_sha256: Sha256Hex
    counters: UsageCounters
    reported_at: Timestamp


# --------------------------------------------------------------------------- governance
class Order(BaseModel):
    """Custodian or overseer → node: stop, pause or resume one instance or a whole lease.

    ``seq`` strictly increases per lease among the custodian's orders, so an old ``resume``
    cannot be replayed after a ``pause``. Overseers may only ``kill``, which is terminal, so
    replaying an overseer's order changes nothing.
    """

    model_config = _STRICT
    PAYLOAD_TYPE: ClassVar[str] = ORDER_PAYLOAD_TYPE

    order_id: Identifier
    lease_id: Identifier
    seq: Sequence
    kind: Literal["kill", "pause", "resume"]
    scope: Literal["instance", "lease"]
    instance_id: Identifier | None = None
    reason: Reason
    issued_at: Timestamp

    @model_validator(mode="after")
    def _scope_names_instance(self) -> Self:
        if (self.scope == "instance") != (self.instance_id is not None):
            raise ValueError("an instance order names its instance_id; a lease order does not")
        return self

    def applies_to(self, instance_id: str) -> bool:
        """Whether this order binds the instance ``instance_id`` of its lease."""
        return self.scope == "lease" or self.instance_id == instance_id


class ExtensionRequest(BaseModel):
    """Node or borrower → custodian: a request for more budget, with a reason.

    Sent by a node, it is signed by the instance key; sent by the borrower's operator, it
    travels over the authenticated admin API and ``instance_id`` is absent.
    """

    model_config = _STRICT
    PAYLOAD_TYPE: ClassVar[str] = EXTENSION_REQUEST_PAYLOAD_TYPE

    lease_id: Identifier
    requester: Literal["instance", "borrower"]
    instance_id: Identifier | None = None
    units: Count
    reason: Reason
    requested_at: Timestamp

    @model_validator(mode="after")
    def _requester_consistent(self) -> Self:
        if (self.requester == "instance") != (self.instance_id is not None):
            raise ValueError("an instance's request names its instance_id; a borrower's does not")
        if self.units < 1:
            raise ValueError("units must be at least 1")
        return self


class RenewResponse(BaseModel):
    """The custodian's answer to a usage report: a new grant (or why none), and the orders
    that apply to the instance. A retry of the same report gets the same answer."""

    model_config = _STRICT

    grant: SignedDocument | None = None
    withheld: Literal["lease_ended", "lease_paused", "instance_paused", "instance_ended"] | None = (
        None
    )
    orders: list[SignedDocument] = Field(default_factory=list, max_length=MAX_ORDERS_PER_RESPONSE)


# --------------------------------------------------------------------------- sign / verify
SignedMessage = Grant | UsageReport | Order | ExtensionRequest


def sign_message(message: SignedMessage, *, signer: SigningKey) -> SignedDocument:
    """Sign ``message`` under its own kind's payload type."""
    return sign_document(message, payload_type=message.PAYLOAD_TYPE, signer=signer)


def expect_subject(kind: str, field: str, found: str | None, expected: str) -> None:
    """Raise :class:`WrongSubjectError` unless a message of ``kind`` names ``expected``."""
    if found != expected:
        raise WrongSubjectError(f"the {kind} is for {field} {found!r}, expected {expected!r}")


def verify_grant(
    signed: SignedDocument,
    *,
    custodian_keys: Collection[CustodianPublicKey],
    lease_id: str,
    instance_id: str,
) -> Grant:
    """The grant, only if a trusted custodian key signed it for this lease and instance."""
    grant = open_document(
        signed, model=Grant, payload_type=GRANT_PAYLOAD_TYPE, trusted_keys=custodian_keys
    )
    expect_subject("grant", "lease", grant.lease_id, lease_id)
    expect_subject("grant", "instance", grant.instance_id, instance_id)
    return grant


def verify_report(
    signed: SignedDocument,
    *,
    instance_key: InstanceSigningKey,
    lease_id: str,
    instance_id: str,
) -> UsageReport:
    """The report, only if this instance's attested signing key signed it for itself.

    The custodian finds ``instance_key`` from the envelope's ``key_id`` (the fingerprint of
    the key recorded at enrolment), never from the unverified payload.
    """
    report = open_document(
        signed,
        model=UsageReport,
        payload_type=USAGE_REPORT_PAYLOAD_TYPE,
        trusted_keys=(instance_key,),
    )
    expect_subject("usage report", "lease", report.lease_id, lease_id)
    expect_subject("usage report", "instance", report.instance_id, instance_id)
    return report


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedOrder:
    """An order whose signature verified, and who signed it."""

    order: Order
    issuer: Literal["custodian", "overseer"]
    key_id: str


def verify_order(
    signed: SignedDocument,
    *,
    custodian_keys: Collection[CustodianPublicKey],
    overseer_keys: Collection[OverseerPublicKey] = (),
    lease_id: str,
) -> VerifiedOrder:
    """The order, only if a custodian key (any kind) or an overseer key (kill) signed it."""
    custodian_ids = {fingerprint(k) for k in custodian_keys}
    if custodian_ids & {fingerprint(k) for k in overseer_keys}:
        raise ValueError("a key cannot be both a custodian key and an overseer key")
    order = open_document(
        signed,
        model=Order,
        payload_type=ORDER_PAYLOAD_TYPE,
        trusted_keys=[*custodian_keys, *overseer_keys],
    )
    issuer: Literal["custodian", "overseer"] = (
        "custodian" if signed.key_id in custodian_ids else "overseer"
    )
    if issuer == "overseer" and order.kind != "kill":
        raise OrderNotAllowedError(f"an overseer may only kill; this order would {order.kind}")
    expect_subject("order", "lease", order.lease_id, lease_id)
    return VerifiedOrder(order=order, issuer=issuer, key_id=signed.key_id)


def verify_extension_request(
    signed: SignedDocument,
    *,
    instance_key: InstanceSigningKey,
    lease_id: str,
    instance_id: str,
) -> ExtensionRequest:
    """An instance's extension request, only if its attested signing key signed it."""
    request = open_document(
        signed,
        model=ExtensionRequest,
        payload_type=EXTENSION_REQUEST_PAYLOAD_TYPE,
        trusted_keys=(instance_key,),
    )
    expect_subject("extension request", "lease", request.lease_id, lease_id)
    expect_subject("extension request", "instance", request.instance_id, instance_id)
    return request


# --------------------------------------------------------------------------- report chain
def check_report_chain(
    previous: SignedDocument | None,
    previous_report: UsageReport | None,
    new_signed: SignedDocument,
    new_report: UsageReport,
) -> None:
    """Refuse ``new_report`` unless it extends the chain ending at ``previous``.

    Both reports must already be verified (:func:`verify_report`) for the same instance;
    ``previous`` is ``None`` only for an instance's first report. Pure: no I/O, no clock.
    """
    if (previous is None) != (previous_report is None):
        raise ValueError("give both the previous signed report and its parsed report, or neither")
    if previous_report is not None and (
        previous_report.lease_id != new_report.lease_id
        or previous_report.instance_id != new_report.instance_id
    ):
        raise ValueError("the two reports belong to different instances")
    last = 0 if previous_report is None else previous_report.seq
    # 1. Sequence: exactly one more than the last accepted report.
    if new_report.seq != last + 1:
        if previous is not None and ct_equal(
            new_signed.digest().encode(), previous.digest().encode()
        ):
            raise DuplicateReportError(
                f"report {new_report.seq} was already accepted (a retry)",
                expected=last + 1,
                received=new_report.seq,
            )
        if new_report.seq == last + 2:
            what = f"report {last + 1} is missing (a gap)"
        elif new_report.seq > last + 2:
            what = f"reports {last + 1} to {new_report.seq - 1} are missing (a gap)"
        else:
            what = f"sequence {new_report.seq} was already used (a replay or rollback)"
        raise ReportSequenceError(
            f"expected report {last + 1}, got {new_report.seq}: {what}",
            expected=last + 1,
            received=new_report.seq,
        )
    # 2. Hash chain: the report names the last accepted report as its predecessor.
    expected_previous = GENESIS_REPORT_SHA256 if previous is None else previous.digest()
    if not ct_equal(new_report.previous_report_sha256.encode(), expected_previous.encode()):
        raise ReportForkError(
            f"report {new_report.seq} does not follow report {last} (a fork of the chain)"
        )
    # 3. Cumulative counters never go down.
    if previous_report is not None:
        down = new_report.counters.decreased_from(previous_report.counters)
        if down:
            raise CounterDecreasedError(
                f"counters went down since report {last}: {', '.join(down)}", counters=down
            )
