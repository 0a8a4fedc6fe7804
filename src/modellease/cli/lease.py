"""``modellease lease ...``, ``modellease usage`` and ``modellease token ...``: the operator's
commands, run on the custodian's machine against its store (the admin API serves remote
operators). Orders given here reach a node at its next renewal; nodes connected to a
running ``custodian serve`` process get orders given through its admin API at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from modellease.attestation.policy import load_policy
from modellease.cli._common import (
    HomeOption,
    PassphraseOption,
    out,
    printable,
    reporting,
    unlock_home,
)
from modellease.custodian import auth
from modellease.custodian.ledger import Unit
from modellease.custodian.service import ControlPlane, LeaseSpec
from modellease.custodian.store import connect, default_url, migrate
from modellease.errors import InvalidInputError
from modellease.protocol import SignedDocument, UsageReport

lease_app = typer.Typer(help="Leases: create, inspect, extend, approve, and the off-switch.")
token_app = typer.Typer(help="Bearer tokens for the admin API.")

PAGE_SIZE = 50  # leases listed per page
_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: SQLite in the custodian home).")
]


def parse_duration(text: str) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``7d``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InvalidInputError(f"{text!r} is not a duration like 30s, 5m, 2h or 7d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_date(text: str) -> datetime:
    """An ISO 8601 date or date-time; a bare date means midnight UTC."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{text!r} is not an ISO 8601 date") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@contextmanager
def control_plane(
    home: Path | None, passphrase_file: Path | None, db: str | None
) -> Iterator[ControlPlane]:
    loaded, unlocked = unlock_home(home, passphrase_file)
    engine = connect(db or default_url(loaded.path))
    try:
        migrate(engine)
        yield ControlPlane(engine, signer=unlocked.signer, keys=unlocked.keys)
    finally:
        engine.dispose()


@lease_app.command("create")
def create(
    bundle: Annotated[str, typer.Option(help="Bundle id (from `modellease seal`).")],
    budget: Annotated[int, typer.Option(help="Total units the lease may ever grant.")],
    policy: Annotated[Path, typer.Option(help="Appraisal policy (.toml or .json).")],
    ends: Annotated[str, typer.Option(help="Lease end, ISO 8601 (e.g. 2027-01-01).")],
    unit: Annotated[Unit, typer.Option(help="What a unit is.")] = Unit.REQUESTS,
    slice_size: Annotated[int, typer.Option("--slice", help="Units per grant.")] = 100,
    ttl: Annotated[str, typer.Option(help="Grant validity (heartbeat TTL).")] = "30s",
    hard_expiry: Annotated[str, typer.Option(help="Silence after which a node is cut.")] = "2m",
    overseer: Annotated[
        list[str] | None, typer.Option(help="Overseer public key (hex); repeatable.")
    ] = None,
    lease_id: Annotated[str | None, typer.Option("--id", help="Lease id.")] = None,
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
    db: DbOption = None,
) -> None:
    """Create a lease on a sealed bundle."""
    with reporting(), control_plane(home, passphrase_file, db) as plane:
        loaded = load_policy(policy)
        name = lease_id or f"lease-{datetime.now(UTC):%Y%m%d%H%M%S}"
        plane.create_lease(
            LeaseSpec(
                lease_id=name,
                bundle_id=bundle,
                unit=unit,
                budget=budget,
                slice_size=slice_size,
                heartbeat_ttl=parse_duration(ttl),
                hard_expiry=parse_duration(hard_expiry),
                ends_at=parse_date(ends),
                policy=json.loads(loaded.model_dump_json()),
                overseers=tuple(overseer or ()),
            ),
            now=datetime.now(UTC),
        )
        out.print(f"created lease {name}: {budget} {unit.value} in slices of {slice_size}")


@lease_app.command("list")
def list_leases(
    after: Annotated[str | None, typer.Option(help="Start after this lease id.")] = None,
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
    db: DbOption = None,
) -> None:
    """List leases, a page at a time."""
    with reporting(), control_plane(home, passphrase_file, db) as plane:
        rows = plane.list_leases(only=None, after=after, limit=PAGE_SIZE)
        table = Table("lease", "bundle", "unit", "budget", "committed", "state")
        for row in rows:
            state = "killed" if row.killed else "paused" if row.paused else "active"
            table.add_row(
                Text(row.id), row.bundle_id, row.unit, str(row.budget), str(row.committed), state
            )
        out.print(table)
        if len(rows) == PAGE_SIZE:
            out.print(f"more: modellease lease list --after {rows[-1].id}")


@lease_app.command("show")
def show(
    lease: Annotated[str, typer.Argument(help="Lease id.")],
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
    db: DbOption = None,
) -> None:
    """A lease's budget and its instances."""
    with reporting(), control_plane(home, passphrase_file, db) as plane:
        row, instances = plane.lease_status(lease)
        out.print(
            f"lease {printable(row.id)} on bundle {row.bundle_id}, ends {row.ends_at:%Y-%m-%d}"
        )
        out.print(
            f"budget {row.budget} {row.unit}: committed {row.committed}, "
            f"consumed {row.settled + row.active_usage}, remaining {row.budget - row.committed}"
        )
        table = Table("instance", "tee", "status", "allowance", "usage", "grant", "valid until")
        for i in instances:
            tee = f"{i.tee} (INSECURE)" if i.insecure else i.tee
            table.add_row(
                i.id,
                tee,
                i.status + (" paused" if i.paused else ""),
                str(i.allowance),
                str(i.usage),
                str(i.grant_seq),
                f"{i.valid_until:%Y-%m-%d %H:%M:%S}",
            )
        out.print(table)


@lease_app.command("extend")
def extend(
    lease: Annotated[str, typer.Argument(help="Lease id.")],
    units: Annotated[int, typer.Option(help="Units to add to the budget.")],
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
    db: DbOption = None,
) -> None:
    """Add units to a lease's budget."""
    with reporting(), control_plane(home, passphrase_file, db) as plane:
        plane.extend(lease, units=units, now=datetime.now(UTC))
        out.print(f"extended {lease} by {units}")


def _decide(
    request: str, approve: bool, home: Path | None, pf: Path | None, db: str | None
) -> None:
    with reporting(), control_plane(home, pf, db) as plane:
        plane.decide_extension(request, approve=approve, now=datetime.now(UTC))
        out.print(f"{'approved' if approve else 'denied'} {request}")


@lease_app.command("approve")
def approve(
    request: Annotated[str, typer.Argument(help="Extension request id.")],
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
    db: DbOption = None,
) -> None:
    """Approve an extension request (and apply it)."""
    _decide(request, True, home, passphrase_file, db)


@lease_app.command("deny")
def deny(
    request: Annotated[str, typer.Argument(help="Extension request id.")],
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
    db: DbOption = None,
) -> None:
    """Deny an extension request."""
    _decide(request, False, home, passphrase_file, db)


def _order(
    kind: str,
    lease: str,
    instance: str | None,
    reason: str,
    home: Path | None,
    pf: Path | None,
    db: str | None,
) -> None:
    with reporting(), control_plane(home, pf, db) as plane:
        plane.order(
            lease_id=lease, kind=kind, instance_id=instance, reason=reason, now=datetime.now(UTC)
        )
        target = f"instance {instance}" if instance else f"lease {lease}"
        out.print(f"{kind} order signed and recorded for {target}")


InstanceOption = Annotated[str | None, typer.Option(help="One instance (default: the lease).")]
ReasonOption = Annotated[str, typer.Option(help="Why (recorded and signed).")]


def _order_command(kind: str, summary: str) -> None:
    def command(
        lease: Annotated[str, typer.Argument(help="Lease id.")],
        reason: ReasonOption,
        instance: InstanceOption = None,
        home: HomeOption = None,
        passphrase_file: PassphraseOption = None,
        db: DbOption = None,
    ) -> None:
        _order(kind, lease, instance, reason, home, passphrase_file, db)

    command.__doc__ = summary
    lease_app.command(kind)(command)


for _kind, _summary in (
    ("kill", "The off-switch: stop a lease or one instance for good."),
    ("pause", "Stop issuing grants to a lease or one instance until resumed."),
    ("resume", "Lift a pause."),
):
    _order_command(_kind, _summary)


def usage(
    lease: Annotated[str, typer.Argument(help="Lease id.")],
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
    db: DbOption = None,
) -> None:
    """Reported usage of each instance of a lease (counts only, never content)."""
    with reporting(), control_plane(home, passphrase_file, db) as plane:
        row, pairs = plane.usage(lease)
        table = Table(
            "instance",
            "status",
            "reports",
            "requests",
            "prompt tok",
            "completion tok",
            "est. FLOPs",
            "refusals",
        )
        for instance, report in pairs:
            values = ["-"] * 5
            if report is not None:
                parsed = UsageReport.model_validate_json(
                    SignedDocument.from_json(report.signed_json.encode()).payload
                )
                c = parsed.counters
                values = [
                    str(c.requests),
                    str(c.prompt_tokens),
                    str(c.completion_tokens),
                    str(c.estimated_flops),
                    str(c.refusals),
                ]
            table.add_row(instance.id, instance.status, str(instance.last_report_seq), *values)
        out.print(
            f"lease {printable(row.id)}: {row.settled + row.active_usage} of {row.budget} "
            f"{row.unit} consumed"
        )
        out.print(table)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="operator, overseer or borrower.")],
    lease: Annotated[str | None, typer.Option(help="Bind the token to this lease.")] = None,
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
    db: DbOption = None,
) -> None:
    """Create an admin API token; it is printed once and stored only hashed."""
    with reporting(), control_plane(home, passphrase_file, db) as plane:
        try:
            parsed = auth.Role(role)
        except ValueError:
            raise InvalidInputError(f"unknown role {role!r}") from None
        token, row = plane.create_token(role=parsed, lease_id=lease, now=datetime.now(UTC))
        out.print(f"token {row.id} ({row.role}{', lease ' + lease if lease else ''}):")
        out.print(token)
