"""The control plane's operations: one database transaction each, decisions by the kernels.

Rules:

* every operation runs in one transaction that locks the lease row first, so operations
  on one lease are serialised on every database; its audit entry commits with it;
* decisions are taken only by the pure kernels: ``appraise`` (attestation), the ledger
  (budget), the report chain (telemetry); key material leaves only through
  :func:`~modellease.custodian.key_release.release_data_key`;
* a refused request changes no state. What a refusal leaves behind is deliberate: an audit
  entry saying which step refused, and a used nonce (a nonce is single-use whatever happens);
* a report is stored durably before it is answered; the very same report sent again gets
  the stored answer (idempotent retry); any other report reusing a sequence number is
  refused;
* the clock is a parameter (``now``), never read here.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from modellease._hazmat import SigningKey
from modellease.attestation import Evidence, appraise, policy_from_mapping
from modellease.custodian import audit, auth, ledger
from modellease.custodian.key_release import release_data_key
from modellease.custodian.keystore import KeyStore
from modellease.custodian.records import (
    instance_state,
    lease_state,
    store_instance,
    store_lease,
)
from modellease.custodian.renewal import (
    Prepared,
    RenewalRequest,
    UnknownReporterError,
    grant_decision,
    grant_row,
    prepare,
    renew_batch,
    sign_grant,
)
from modellease.custodian.store import (
    ExtensionRequestRow,
    InstanceRow,
    LeaseRow,
    NonceRow,
    OrderRow,
    ReportRow,
    TokenRow,
)
from modellease.custodian.store.engine import engine_writer_lock
from modellease.custodian.store.writer_lock import WriterLock
from modellease.errors import AttestationError, InvalidInputError
from modellease.keys import CustodianPublicKey, InstanceSigningKey, Nonce, fingerprint
from modellease.protocol import (
    EnrolRequest,
    EnrolResponse,
    ExtensionRequest,
    NonceResponse,
    Order,
    OverseerPublicKey,
    RenewResponse,
    SignedDocument,
    format_timestamp,
    sign_message,
    verify_extension_request,
    verify_order,
)
from modellease.protocol.messages import GENESIS_REPORT_SHA256, OrderNotAllowedError
from modellease.protocol.signed import DocumentFormatError

AUTO_APPROVER = "auto-approval"  # decided_by of requests the lease's own rule approved
AUTO_APPROVAL_WINDOW = timedelta(days=1)  # the rule's "per day" is a rolling 24 hours
NONCE_TTL = timedelta(seconds=60)  # an enrolment must follow its nonce within this time
NONCE_SIZE = 32


class UnknownLeaseError(InvalidInputError):
    """No such lease."""

    reason = "unknown_lease"


class NonceRefusedError(InvalidInputError):
    """The nonce is unknown, for another lease, already used or expired."""

    reason = "nonce_refused"


def within_auto_approval(limit_per_day: int, approved_in_window: int, units: int) -> bool:
    """The auto-approval rule: approve while the rolling day's total stays within the limit."""
    return units > 0 and approved_in_window + units <= limit_per_day


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseSpec:
    """What an operator decides when creating a lease."""

    lease_id: str
    bundle_id: str
    unit: ledger.Unit
    budget: int
    slice_size: int
    heartbeat_ttl: timedelta
    hard_expiry: timedelta
    ends_at: datetime
    policy: dict[str, Any]
    overseers: tuple[str, ...] = ()
    auto_approve_per_day: int | None = None


class ControlPlane:
    """The custodian's operations over one database, with its signing key and key store."""

    def __init__(self, engine: Engine, *, signer: SigningKey, keys: KeyStore) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._signer = signer
        self._keys = keys
        self.actor = fingerprint(signer.public_bytes())

    @property
    def writer_lock(self) -> WriterLock | None:
        """This process's writer lock of the store (SQLite: one writer at a time), if any."""
        return engine_writer_lock(self._sessions.kw["bind"])

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _locked_lease(session: Session, lease_id: str) -> LeaseRow:
        row = session.execute(
            select(LeaseRow).where(LeaseRow.id == lease_id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise UnknownLeaseError(f"no lease {lease_id!r}")
        return row

    def _record_grant(
        self, session: Session, lease: LeaseRow, grant: ledger.Grant, now: datetime
    ) -> SignedDocument:
        """Sign a grant the ledger issued, store it, and audit it, in the caller's transaction."""
        decision = grant_decision(
            bundle_id=lease.bundle_id, lease=lease_state(lease), grant=grant, now=now
        )
        signed = sign_grant(self._signer, decision)
        session.add(grant_row(grant, signed, now))
        audit.append(
            session,
            kind="grant",
            actor=self.actor,
            lease_id=lease.id,
            detail={
                "instance_id": grant.instance_id,
                "seq": grant.seq,
                "allowance": str(grant.allowance),
            },
            now=now,
        )
        return signed

    @staticmethod
    def _instance_by_key_id(session: Session, key_id: str) -> InstanceRow:
        """The instance whose attested signing key has this fingerprint (never the payload)."""
        instance = session.scalars(
            select(InstanceRow).where(InstanceRow.signing_key_id == key_id)
        ).one_or_none()
        if instance is None:
            raise UnknownReporterError("the message is signed by no enrolled instance's key")
        return instance

    # ------------------------------------------------------------------ leases
    def create_lease(self, spec: LeaseSpec, *, now: datetime, actor: str | None = None) -> None:
        """Open a lease on a sealed bundle whose data key this custodian holds."""
        policy = policy_from_mapping(spec.policy)
        self._keys.get(spec.bundle_id)  # refuses a bundle this custodian cannot release
        terms = ledger.LeaseTerms(
            unit=spec.unit,
            slice_size=spec.slice_size,
            heartbeat_ttl=spec.heartbeat_ttl,
            hard_expiry=spec.hard_expiry,
            ends_at=spec.ends_at,
        )
        state = ledger.open_lease(lease_id=spec.lease_id, terms=terms, budget=spec.budget)
        with self._sessions.begin() as session:
            if session.get(LeaseRow, spec.lease_id) is not None:
                raise InvalidInputError(f"lease {spec.lease_id!r} already exists")
            row = LeaseRow(
                id=spec.lease_id,
                bundle_id=spec.bundle_id,
                unit=spec.unit.value,
                slice_size=spec.slice_size,
                heartbeat_ttl_s=int(spec.heartbeat_ttl.total_seconds()),
                hard_expiry_s=int(spec.hard_expiry.total_seconds()),
                ends_at=spec.ends_at,
                policy_json=policy.model_dump_json(),
                overseers_json=json.dumps(list(spec.overseers)),
                auto_approve_per_day=spec.auto_approve_per_day,
                created_at=now,
                budget=0,
                paused=False,
                killed=False,
                committed=0,
                settled=0,
                active_usage=0,
            )
            store_lease(row, state)
            session.add(row)
            audit.append(
                session,
                kind="lease_created",
                actor=actor or self.actor,
                lease_id=spec.lease_id,
                detail={
                    "bundle_id": spec.bundle_id,
                    "budget": str(spec.budget),
                    "unit": spec.unit.value,
                    "ends_at": format_timestamp(spec.ends_at),
                },
                now=now,
            )

    # ------------------------------------------------------------------ enrolment
    def issue_nonce(self, lease_id: str, *, now: datetime) -> NonceResponse:
        """A fresh single-use nonce for one enrolment on ``lease_id``."""
        with self._sessions.begin() as session:
            lease = self._locked_lease(session, lease_id)
            if lease.killed:
                raise ledger.LeaseKilledError(f"lease {lease_id!r} has been killed")
            value = os.urandom(NONCE_SIZE).hex()
            session.add(
                NonceRow(
                    value=value,
                    lease_id=lease_id,
                    issued_at=now,
                    expires_at=now + NONCE_TTL,
                    used_at=None,
                )
            )
        return NonceResponse(nonce=value, expires_at=format_timestamp(now + NONCE_TTL))

    def enrol(self, request: EnrolRequest, *, now: datetime) -> EnrolResponse:
        """Appraise, record the instance, grant its first slice and release the data key."""
        try:
            with self._sessions.begin() as session:
                return self._enrol(session, request, now)
        except InvalidInputError as exc:
            self._record_refusal(request, exc, now)
            raise

    def _enrol(self, session: Session, request: EnrolRequest, now: datetime) -> EnrolResponse:
        lease = self._locked_lease(session, request.lease_id)
        nonce = session.get(NonceRow, request.nonce, with_for_update=True)
        if (
            nonce is None
            or nonce.lease_id != lease.id
            or nonce.used_at is not None
            or now >= nonce.expires_at
        ):
            raise NonceRefusedError("the nonce is unknown, already used or expired")
        nonce.used_at = now
        evidence = Evidence.from_json(request.evidence_json())
        result = appraise(
            evidence,
            policy=policy_from_mapping(json.loads(lease.policy_json)),
            expected_nonce=Nonce(bytes.fromhex(request.nonce)),
            now=now,
        )
        instance_id = _new_id("inst")
        enrolment = ledger.enrol(lease_state(lease), instance_id=instance_id, now=now)
        wrapped = release_data_key(
            appraisal=result,
            data_key=self._keys.get(lease.bundle_id),
            bundle_id=lease.bundle_id,
            instance_id=instance_id,
            lease_id=lease.id,
        )
        row = InstanceRow(
            id=instance_id,
            lease_id=lease.id,
            tee=result.tee.value,
            insecure=result.insecure,
            measurements_json=json.dumps(dict(result.measurements), sort_keys=True),
            kem_key=result.kem_key.hex(),
            signing_key=result.signing_key.hex(),
            signing_key_id=fingerprint(result.signing_key),
            last_report_seq=0,
            last_report_digest=GENESIS_REPORT_SHA256,
            enrolled_at=now,
            status="",
            allowance=0,
            usage=0,
            grant_seq=0,
            valid_until=now,
            paused=False,
            ended_at=None,
        )
        store_instance(row, enrolment.instance)
        session.add(row)
        store_lease(lease, enrolment.lease)
        session.flush()
        audit.append(
            session,
            kind="enrolment_accepted",
            actor=self.actor,
            lease_id=lease.id,
            detail={
                "instance_id": instance_id,
                "tee": result.tee.value,
                "insecure": result.insecure,
                "measurements": {k: str(v) for k, v in result.measurements.items()},
            },
            now=now,
        )
        signed_grant = self._record_grant(session, lease, enrolment.grant, now)
        return EnrolResponse(
            instance_id=instance_id,
            grant=signed_grant,
            wrapped_data_key=wrapped.sealed,
            hpke_info=wrapped.info,
        )

    def _record_refusal(self, request: EnrolRequest, exc: InvalidInputError, now: datetime) -> None:
        """Audit a refused enrolment and burn its nonce, in a transaction of their own."""
        step = exc.step if isinstance(exc, AttestationError) else None
        with self._sessions.begin() as session:
            if session.get(LeaseRow, request.lease_id) is None:
                return
            nonce = session.get(NonceRow, request.nonce)
            if nonce is not None and nonce.lease_id == request.lease_id and nonce.used_at is None:
                nonce.used_at = now
            audit.append(
                session,
                kind="enrolment_refused",
                actor=self.actor,
                lease_id=request.lease_id,
                detail={"reason": exc.reason, "step": step},
                now=now,
            )

    # ------------------------------------------------------------------ renewal
    def renew(self, signed: SignedDocument, *, now: datetime) -> RenewResponse:
        """Verify and store one usage report, then answer with a grant and the orders."""
        outcome = self.renew_batch([RenewalRequest.of(signed, now)])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return RenewResponse.model_validate_json(outcome)

    def prepare_renewal(self, request: RenewalRequest) -> Prepared:
        """The work on one report that needs no lock (:func:`~.renewal.prepare`)."""
        return prepare(request, signer=self._signer)

    def renew_batch(
        self, requests: Sequence[RenewalRequest], prepared: Sequence[Prepared] | None = None
    ) -> list[str | Exception]:
        """Judge many reports in one transaction (:mod:`~modellease.custodian.renewal`).

        ``prepared``: :meth:`prepare_renewal`'s result for each request, if the caller already
        has it (else it is made here, before the transaction). One outcome per request, in
        order: the answer's JSON (:class:`RenewResponse`, as stored), or the error to raise
        for it. If the batch's transaction fails as a whole (a database error, a conflict
        with another writer), each report is retried alone, so one cannot fail the others.
        """
        if prepared is None:
            prepared = [self.prepare_renewal(r) for r in requests]
        try:
            with self._sessions.begin() as session:
                result = renew_batch(session, requests, signer=self._signer, prepared=prepared)
        except Exception as exc:
            if len(requests) == 1:
                return [exc]
            return [self.renew_batch([r], [p])[0] for r, p in zip(requests, prepared, strict=True)]
        result.committed()
        return list(result.outcomes)

    # ------------------------------------------------------------------ orders
    def order(
        self,
        *,
        lease_id: str,
        kind: str,
        instance_id: str | None,
        reason: str,
        now: datetime,
        actor: str | None = None,
    ) -> SignedDocument:
        """Sign, apply and record a kill, pause or resume order for a lease or one instance."""
        with self._sessions.begin() as session:
            lease = self._locked_lease(session, lease_id)
            seq = 1 + len(
                session.scalars(select(OrderRow.id).where(OrderRow.lease_id == lease_id)).all()
            )
            order = Order(
                order_id=_new_id("order"),
                lease_id=lease_id,
                seq=seq,
                kind=kind,  # type: ignore[arg-type]
                scope="instance" if instance_id else "lease",
                instance_id=instance_id,
                reason=reason,
                issued_at=format_timestamp(now),
            )
            signed = sign_message(order, signer=self._signer)
            self._record_order(session, lease, order, signed, now=now, actor=actor or self.actor)
            return signed

    def accept_overseer_order(self, signed: SignedDocument, *, now: datetime) -> Order:
        """Apply and record a kill order signed by one of the lease's overseers themselves.

        The lease is looked up from the unverified payload only to know whose keys to check;
        nothing else is read before :func:`verify_order` has checked the signature against
        the lease's overseer keys. Only ``kill`` is allowed. The very same order sent again
        is answered as before; the signed document is stored and delivered as received.
        """
        lease_id = _unverified_lease_id(signed)
        with self._sessions.begin() as session:
            lease = self._locked_lease(session, lease_id)
            overseers = [
                OverseerPublicKey(bytes.fromhex(k)) for k in json.loads(lease.overseers_json)
            ]
            verified = verify_order(
                signed,
                custodian_keys=[CustodianPublicKey(self._signer.public_bytes())],
                overseer_keys=overseers,
                lease_id=lease.id,
            )
            if verified.issuer != "overseer":
                raise OrderNotAllowedError(
                    "only overseers submit signed orders; operators use the admin API"
                )
            order = verified.order
            stored = session.get(OrderRow, order.order_id)
            if stored is not None:
                if stored.signed_json.encode() == signed.to_json():
                    return order  # a retry
                raise InvalidInputError(f"order id {order.order_id!r} is already used")
            self._record_order(session, lease, order, signed, now=now, actor=signed.key_id)
            return order

    def _record_order(
        self,
        session: Session,
        lease: LeaseRow,
        order: Order,
        signed: SignedDocument,
        *,
        now: datetime,
        actor: str,
    ) -> None:
        """Apply a verified order, store it for renewal answers, and audit it."""
        self._apply_order(session, lease, order, now)
        seq = 1 + len(
            session.scalars(select(OrderRow.id).where(OrderRow.lease_id == lease.id)).all()
        )
        session.add(
            OrderRow(
                id=order.order_id,
                lease_id=lease.id,
                seq=seq,
                instance_id=order.instance_id,
                kind=order.kind,
                signed_json=signed.to_json().decode(),
                issued_at=now,
            )
        )
        audit.append(
            session,
            kind=f"order_{order.kind}",
            actor=actor,
            lease_id=lease.id,
            detail={
                "order_id": order.order_id,
                "instance_id": order.instance_id,
                "reason": order.reason,
            },
            now=now,
        )

    def _apply_order(self, session: Session, lease: LeaseRow, order: Order, now: datetime) -> None:
        state = lease_state(lease)
        if order.instance_id is None:
            rows = list(
                session.scalars(
                    select(InstanceRow).where(
                        InstanceRow.lease_id == lease.id,
                        InstanceRow.status == ledger.InstanceStatus.ACTIVE.value,
                    )
                )
            )
            if order.kind == "kill":
                closure = ledger.kill_lease(state, [instance_state(r) for r in rows], now=now)
                _store_closure(lease, rows, closure)
            else:
                store_lease(lease, ledger.set_lease_paused(state, paused=order.kind == "pause"))
            return
        row = session.get(InstanceRow, order.instance_id, with_for_update=True)
        if row is None or row.lease_id != lease.id:
            raise ledger.UnknownInstanceError(f"no instance {order.instance_id!r} on this lease")
        if order.kind == "kill":
            _store_closure(lease, [row], ledger.kill_instance(state, instance_state(row), now=now))
        else:
            paused = ledger.set_instance_paused(
                state, instance_state(row), paused=order.kind == "pause"
            )
            store_instance(row, paused)

    # ------------------------------------------------------------------ budget
    def extend(self, lease_id: str, *, units: int, now: datetime, actor: str | None = None) -> None:
        """Raise a lease's budget (operator decision, or an approved extension request)."""
        with self._sessions.begin() as session:
            lease = self._locked_lease(session, lease_id)
            store_lease(lease, ledger.extend(lease_state(lease), units=units, now=now))
            audit.append(
                session,
                kind="lease_extended",
                actor=actor or self.actor,
                lease_id=lease_id,
                detail={"units": str(units)},
                now=now,
            )

    def request_extension(self, request: ExtensionRequest, *, now: datetime, actor: str) -> str:
        """Record a request for more budget; returns its id."""
        with self._sessions.begin() as session:
            self._locked_lease(session, request.lease_id)
            request_id = _new_id("ext")
            session.add(
                ExtensionRequestRow(
                    id=request_id,
                    lease_id=request.lease_id,
                    instance_id=request.instance_id,
                    units=request.units,
                    reason=request.reason,
                    status="pending",
                    requested_at=now,
                    decided_at=None,
                    decided_by=None,
                )
            )
            audit.append(
                session,
                kind="extension_requested",
                actor=actor,
                lease_id=request.lease_id,
                detail={"request_id": request_id, "units": str(request.units)},
                now=now,
            )
            self._auto_approve(session, request_id, now)
            return request_id

    def request_extension_signed(self, signed: SignedDocument, *, now: datetime) -> str:
        """A node's own extension request, signed by its attested instance key."""
        with self._sessions() as session:
            instance = self._instance_by_key_id(session, signed.key_id)
            key = InstanceSigningKey(bytes.fromhex(instance.signing_key))
            lease_id, instance_id, actor = instance.lease_id, instance.id, instance.signing_key_id
        request = verify_extension_request(
            signed, instance_key=key, lease_id=lease_id, instance_id=instance_id
        )
        return self.request_extension(request, now=now, actor=actor)

    def _auto_approve(self, session: Session, request_id: str, now: datetime) -> None:
        """Apply the lease's auto-approval rule (at most N units per rolling day), if any."""
        row = session.get(ExtensionRequestRow, request_id)
        assert row is not None
        lease = self._locked_lease(session, row.lease_id)
        if lease.auto_approve_per_day is None:
            return
        already = session.scalar(
            select(func.coalesce(func.sum(ExtensionRequestRow.units), 0)).where(
                ExtensionRequestRow.lease_id == lease.id,
                ExtensionRequestRow.decided_by == AUTO_APPROVER,
                ExtensionRequestRow.decided_at > now - AUTO_APPROVAL_WINDOW,
            )
        )
        if not within_auto_approval(lease.auto_approve_per_day, int(already or 0), row.units):
            return
        store_lease(lease, ledger.extend(lease_state(lease), units=row.units, now=now))
        row.status, row.decided_at, row.decided_by = "approved", now, AUTO_APPROVER
        audit.append(
            session,
            kind="extension_approved",
            actor=AUTO_APPROVER,
            lease_id=lease.id,
            detail={"request_id": request_id, "units": str(row.units), "auto": True},
            now=now,
        )

    def decide_extension(
        self, request_id: str, *, approve: bool, now: datetime, actor: str | None = None
    ) -> None:
        """Approve (and apply) or deny a pending extension request."""
        with self._sessions.begin() as session:
            row = session.get(ExtensionRequestRow, request_id, with_for_update=True)
            if row is None or row.status != "pending":
                raise InvalidInputError(f"no pending extension request {request_id!r}")
            lease = self._locked_lease(session, row.lease_id)
            if approve:
                store_lease(lease, ledger.extend(lease_state(lease), units=row.units, now=now))
            row.status = "approved" if approve else "denied"
            row.decided_at = now
            row.decided_by = actor or self.actor
            audit.append(
                session,
                kind=f"extension_{row.status}",
                actor=row.decided_by,
                lease_id=row.lease_id,
                detail={"request_id": request_id, "units": str(row.units)},
                now=now,
            )

    def expire(self, *, now: datetime) -> int:
        """The dead man's switch on the custodian side: close silent instances. Returns count."""
        closed = 0
        with self._sessions.begin() as session:
            lease_ids = list(session.scalars(select(LeaseRow.id)))
        for lease_id in lease_ids:
            with self._sessions.begin() as session:
                lease = self._locked_lease(session, lease_id)
                rows = list(
                    session.scalars(
                        select(InstanceRow).where(
                            InstanceRow.lease_id == lease_id,
                            InstanceRow.status == ledger.InstanceStatus.ACTIVE.value,
                        )
                    )
                )
                closure = ledger.expire(
                    lease_state(lease), [instance_state(r) for r in rows], now=now
                )
                _store_closure(lease, rows, closure)
                for ended in closure.ended:
                    audit.append(
                        session,
                        kind="instance_expired",
                        actor=self.actor,
                        lease_id=lease_id,
                        detail={"instance_id": ended.instance_id},
                        now=now,
                    )
                closed += len(closure.ended)
        return closed

    # ------------------------------------------------------------------ admin API: reads
    def authenticate(self, bearer: str | None, *, now: datetime) -> auth.Principal:
        """The principal holding the bearer token, or :class:`auth.AuthenticationError`."""
        with self._sessions() as session:
            return auth.authenticate(session, bearer, now=now)

    def signed_orders(self, lease_id: str) -> list[str]:
        """The canonical JSON of every order of a lease, in order (for the push channel)."""
        with self._sessions() as session:
            query = select(OrderRow.signed_json).where(OrderRow.lease_id == lease_id)
            return list(session.scalars(query.order_by(OrderRow.seq)))

    def lease_exists(self, lease_id: str) -> bool:
        with self._sessions() as session:
            return session.get(LeaseRow, lease_id) is not None

    def list_leases(self, *, only: str | None, after: str | None, limit: int) -> list[LeaseRow]:
        """Leases in id order: all of them, or ``only`` that one; keyset-paged by ``after``."""
        query = select(LeaseRow).order_by(LeaseRow.id).limit(limit)
        if only is not None:
            query = query.where(LeaseRow.id == only)
        if after is not None:
            query = query.where(LeaseRow.id > after)
        with self._sessions() as session:
            return list(session.scalars(query))

    def lease_status(self, lease_id: str) -> tuple[LeaseRow, list[InstanceRow]]:
        """A lease and all its instances, read under a share lock (one consistent state)."""
        with self._sessions.begin() as session:
            lease = self._shared_lease(session, lease_id)
            instances = session.scalars(
                select(InstanceRow)
                .where(InstanceRow.lease_id == lease_id)
                .order_by(InstanceRow.enrolled_at, InstanceRow.id)
            )
            return lease, list(instances)

    def usage(self, lease_id: str) -> tuple[LeaseRow, list[tuple[InstanceRow, ReportRow | None]]]:
        """A lease, its instances and each one's last accepted usage report (if any)."""
        with self._sessions.begin() as session:
            lease = self._shared_lease(session, lease_id)
            rows = session.execute(
                select(InstanceRow, ReportRow)
                .outerjoin(
                    ReportRow,
                    (ReportRow.instance_id == InstanceRow.id)
                    & (ReportRow.seq == InstanceRow.last_report_seq),
                )
                .where(InstanceRow.lease_id == lease_id)
                .order_by(InstanceRow.enrolled_at, InstanceRow.id)
            )
            return lease, [(instance, report) for instance, report in rows]

    def extension_request(self, request_id: str) -> ExtensionRequestRow | None:
        with self._sessions() as session:
            return session.get(ExtensionRequestRow, request_id)

    def audit_lines(self, *, lease_id: str | None) -> Iterator[str]:
        """The exported audit log (see :mod:`.audit`); with ``lease_id``, only its entries.

        A filtered export is not a chain: it cannot pass ``audit verify``.
        """
        engine: Engine = self._sessions.kw["bind"]
        for entry in audit.export_entries(engine):
            if lease_id is None or entry.lease_id == lease_id:
                yield entry.to_line()

    @staticmethod
    def _shared_lease(session: Session, lease_id: str) -> LeaseRow:
        row = session.execute(
            select(LeaseRow).where(LeaseRow.id == lease_id).with_for_update(read=True)
        ).scalar_one_or_none()
        if row is None:
            raise UnknownLeaseError(f"no lease {lease_id!r}")
        return row

    # ------------------------------------------------------------------ admin API: tokens
    def create_token(
        self, *, role: auth.Role, lease_id: str | None, now: datetime, actor: str | None = None
    ) -> tuple[str, TokenRow]:
        """A new bearer token (returned once, stored hashed), audited in the same transaction."""
        with self._sessions.begin() as session:
            token, row = auth.create_token(session, role=role, lease_id=lease_id, now=now)
            audit.append(
                session,
                kind="token_created",
                actor=actor or self.actor,
                lease_id=lease_id,
                detail={"token_id": row.id, "role": row.role},  # never the token itself
                now=now,
            )
            return token, row

    def revoke_token(self, token_id: str, *, now: datetime, actor: str | None = None) -> TokenRow:
        """Revoke a token for good; the first revocation is audited in its transaction."""
        with self._sessions.begin() as session:
            known = session.get(TokenRow, token_id, with_for_update=True)
            first = known is not None and known.revoked_at is None
            row = auth.revoke_token(session, token_id, now=now)
            if first:
                audit.append(
                    session,
                    kind="token_revoked",
                    actor=actor or self.actor,
                    lease_id=row.lease_id,
                    detail={"token_id": row.id, "role": row.role},
                    now=now,
                )
            return row


def _store_closure(lease: LeaseRow, rows: list[InstanceRow], closure: ledger.Closure) -> None:
    store_lease(lease, closure.lease)
    by_id = {r.id: r for r in rows}
    for ended in closure.ended:
        store_instance(by_id[ended.instance_id], ended)


def _unverified_lease_id(signed: SignedDocument) -> str:
    """The lease an order names, read before verification only to choose the keys to check."""
    try:
        claimed = json.loads(signed.payload).get("lease_id")
    except (ValueError, AttributeError):
        claimed = None
    if not isinstance(claimed, str):
        raise DocumentFormatError("the order names no lease")
    return claimed
