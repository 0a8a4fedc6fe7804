"""Benchmark: custodian renewals per second over HTTP on loopback, SQLite and PostgreSQL.

For each store, a real custodian server runs in its own process (``--serve``, below: a fresh
custodian home, one lease, a dev policy admitting simulated evidence, and ``--workers``
uvicorn processes, each on its own listening socket in one ``SO_REUSEPORT`` group, as
``custodian serve --workers`` runs them), so the server never shares a GIL with the load
generator. ``--nodes`` simulated nodes
(:class:`SimulatedNode`: simulated TEE, real keys, real crypto) enrol on the lease. Then one
asyncio load generator keeps ``--concurrency`` keep-alive connections, each owning its share
of the nodes (so reports of one node are never sent concurrently), and renews as fast as the
server answers: one more request used, the next signed and chained usage report, a POST to
``/v1/renew``. The load generator is a minimal HTTP/1.1 writer and reader, and it signs each
phase's reports before the phase (``--max-rate`` per second of phase; unsent ones carry
over, so no chain has a gap). Every answer is checked after the phase, off the clock (HTTP
200, and either a grant whose custodian signature verifies, or a ``withheld`` reason);
anything else stops the run with the error.

Baseline in the same run, against the same server: ``GET /healthz`` under the same client
load, i.e. the HTTP stack alone. The two phases run interleaved in ``--rounds`` rounds
(healthz then renew, then renew then healthz, ...), each ``--duration / --rounds`` seconds,
after ``--warmup`` untimed seconds of each, so drift hits both alike. Reported: requests/s,
client-side latency p50/p90/p99, the ratio renewals/s / healthz req/s, and where the CPU
went, in cores busy on average: the server's processes, the load generator, the PostgreSQL
processes, everything else on the machine (``/proc/stat``), I/O wait and steal; inside the
server (counters shared by its workers), time in ``ControlPlane.renew_batch``, in SQL
statements and in the driver's ``COMMIT``, reports per batch and the share of the time a
batch was open. The machine's load from others is sampled for 3 s before and after each
store, while the benchmark is idle.

Stores: ``sqlite`` (the store's own engine: WAL, ``synchronous=FULL``, a file in a temporary
directory); ``postgresql`` (a throwaway cluster on loopback, durable defaults: fsync and
synchronous_commit on); ``postgresql-nofsync`` (the same with ``fsync=off``, as the test
suite's cluster; not durable, for reference only). PostgreSQL comes from Debian's package
(``scripts/ensure-postgres``).

Target (issue #4): >= 1,000 renewals/s on a 2-core machine (10,000 nodes at a 10 s heartbeat).

Usage: ``python bench/custodian.py [--nodes 256] [--duration 20] [--rounds 4] [--warmup 2]
[--concurrency 64] [--max-rate 4000] [--workers 2] [--stores sqlite,postgresql,...]``.
Results go to ``bench/results/custodian-<YYYYMMDD>-w<workers>.{json,md}`` with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import math
import multiprocessing
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, event

from _common import machine, save, tree_cpu_s
from modellease import logs
from modellease.attestation import runtime_measurement
from modellease.custodian import ledger
from modellease.custodian.app import create_app
from modellease.custodian.home import CustodianHome
from modellease.custodian.renewal import Prepared, RenewalRequest
from modellease.custodian.service import ControlPlane, LeaseSpec
from modellease.custodian.serving import listening_sockets, run_workers
from modellease.custodian.store import connect, migrate
from modellease.keys import CustodianPublicKey, DataKey
from modellease.protocol import RenewResponse, verify_grant
from modellease.testing.node import DEFAULT_CONFIG, SimulatedNode

HERE = Path(__file__).resolve().parent
TARGET_PER_S = 1000.0
BUNDLE_ID = "be" * 16
LEASE_ID = "bench-lease"
BUDGET = 10**15  # never the limit: a renewal uses one request, a slice is SLICE units
SLICE = 100
PG_USER = "postgres"
PG_DATABASE = "modellease_bench"
STARTUP_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 30.0
JSON_HEADERS = {"content-type": "application/json"}
STORES = ("sqlite", "postgresql", "postgresql-nofsync")
MIB = 1024 * 1024


class BenchError(SystemExit):
    """A request got an answer the benchmark does not accept: stop with this message."""


# ================================================================== the server (--serve)
METER_FIELDS = ("renew_calls", "batches", "renew_s", "statements", "sql_s", "commits", "commit_s")


class Meter:
    """Counters shared by the server's worker processes, read through ``GET /bench/stats``.

    Shared memory made before the workers are forked, so each adds to the same totals.
    """

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self._values = context.RawArray("d", len(METER_FIELDS))
        self._lock = context.Lock()
        self._server_pid = os.getpid()

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self._values[METER_FIELDS.index(name)] += amount

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            values = dict(zip(METER_FIELDS, self._values, strict=True))
        return values | {"cpu_s": tree_cpu_s(self._server_pid)}


@dataclass
class BenchNode(SimulatedNode):
    """A simulated node whose measurement is computed once, by the parent, for the whole run.

    ``runtime_measurement`` hashes every source file of the package: recomputed at each
    enrolment it costs the client time, and it changes if someone edits a source file
    during the run, which the policy (fixed at server start) would then refuse.
    """

    fixed_measurement: bytes = b""

    @property
    def measurement(self) -> bytes:
        return self.fixed_measurement


def bench_lease(measurement: bytes) -> LeaseSpec:
    return LeaseSpec(
        lease_id=LEASE_ID,
        bundle_id=BUNDLE_ID,
        unit=ledger.Unit.REQUESTS,
        budget=BUDGET,
        slice_size=SLICE,
        heartbeat_ttl=timedelta(hours=1),  # no instance lapses during a run
        hard_expiry=timedelta(hours=1),
        ends_at=datetime(2099, 1, 1, tzinfo=UTC),
        policy={
            "allowed_tees": ["simulated"],
            "unsafe_allow_simulated": True,
            "simulated": {"measurement": [measurement.hex()]},
        },
    )


def instrument(engine: Engine, meter: Meter) -> None:
    """Time every SQL statement and every COMMIT (the driver's, i.e. the fsync)."""
    started: dict[int, float] = {}

    @event.listens_for(engine, "before_cursor_execute")
    def _before(_conn: Any, cursor: Any, *_args: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(_conn: Any, cursor: Any, *_args: Any) -> None:
        elapsed = time.perf_counter() - started.pop(id(cursor), time.perf_counter())
        meter.add(sql_s=elapsed, statements=1)

    commit = engine.dialect.do_commit

    def timed_commit(dbapi_connection: Any) -> None:
        start = time.perf_counter()
        try:
            commit(dbapi_connection)
        finally:
            meter.add(commit_s=time.perf_counter() - start, commits=1)

    engine.dialect.do_commit = timed_commit  # type: ignore[method-assign]


def serve(
    db_url: str, port: int, home_dir: Path, measurement: bytes, workers: int, access_log: bool
) -> None:
    """The custodian server for one run: fresh home, one lease, ``workers`` processes.

    ``access_log``: log as ``modellease custodian serve`` does (JSON lines on standard error,
    uvicorn's access log included); else uvicorn's loggers have no handler and stay silent.
    """
    if access_log:
        logs.configure()
    home = CustodianHome.init(home_dir)
    unlocked = home.unlock()
    unlocked.keys.put(BUNDLE_ID, DataKey(os.urandom(32)))
    engine = connect(db_url)
    migrate(engine)
    ControlPlane(engine, signer=unlocked.signer, keys=unlocked.keys).create_lease(
        bench_lease(measurement), now=datetime.now(UTC)
    )
    engine.dispose()  # nothing shared with the workers
    meter = Meter()

    class MeteredPlane(ControlPlane):
        def renew_batch(
            self,
            requests: Sequence[RenewalRequest],
            prepared: Sequence[Prepared] | None = None,
        ) -> list[str | Exception]:
            start = time.perf_counter()
            try:
                return super().renew_batch(requests, prepared)
            finally:
                meter.add(renew_s=time.perf_counter() - start, renew_calls=len(requests), batches=1)

    def make_app() -> Any:
        worker_engine = connect(db_url)
        instrument(worker_engine, meter)
        app = create_app(MeteredPlane(worker_engine, signer=unlocked.signer, keys=unlocked.keys))

        @app.get("/bench/stats")
        async def stats() -> dict[str, float]:
            return meter.snapshot()

        return app

    sockets = listening_sockets("127.0.0.1", port, workers)
    ready = {
        "ready": True,
        "pid": os.getpid(),
        "workers": workers,
        "access_log": access_log,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
    }
    print(json.dumps(ready), flush=True)
    run_workers(make_app, sockets)


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    info: dict[str, Any]
    custodian_key: CustodianPublicKey
    log: Path

    def stats(self, client: httpx.Client) -> dict[str, float]:
        return dict(client.get(f"{self.url}/bench/stats").json())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    db_url: str, workdir: Path, measurement: bytes, workers: int, access_log: bool
) -> Iterator[Server]:
    """``python bench/custodian.py --serve ...`` in its own process; stopped with SIGINT."""
    port, home, log = free_port(), workdir / "home", workdir / "server.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--serve"]
    command += ["--db", db_url, "--port", str(port), "--home", str(home)]
    command += ["--measurement", measurement.hex(), "--workers", str(workers)]
    command += ["--access-log"] if access_log else []
    with log.open("wb") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints one line when it is about to listen
        if not line:
            raise BenchError(f"the server did not start:\n{log.read_text()[-4000:]}")
        info = json.loads(line)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == httpx.codes.OK:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise BenchError(f"the server did not answer:\n{log.read_text()[-4000:]}")
            time.sleep(0.05)
        key = CustodianPublicKey(CustodianHome.load(home).public_key)
        yield Server(url=url, process=process, info=info, custodian_key=key, log=log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ================================================================== PostgreSQL
def pg_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise BenchError("PostgreSQL is not installed: run scripts/ensure-postgres")
    return found[-1].parent


def _as_postgres(args: list[str]) -> None:
    prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)


@contextmanager
def postgres_cluster(workdir: Path, *, fsync: bool) -> Iterator[tuple[str, Path]]:
    """A throwaway cluster on loopback (as ``tests/pgcluster.py``, but fsync on by default)."""
    bindir, root = pg_bindir(), workdir / "pg"
    root.mkdir()
    if os.geteuid() == 0:
        pw = pwd.getpwnam(PG_USER)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, port = root / "data", free_port()
    _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust"])
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
        f"-c fsync={'on' if fsync else 'off'}"
    )
    pg_ctl = str(bindir / "pg_ctl")
    _as_postgres([pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"])
    try:
        createdb = [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER]
        _as_postgres([*createdb, PG_DATABASE])
        yield f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{PG_DATABASE}", data
    finally:
        _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"])


def pg_version() -> str:
    try:
        out = subprocess.run(
            [str(pg_bindir() / "postgres"), "--version"],
            check=False,
            capture_output=True,
            text=True,
        )
    except (BenchError, OSError):
        return "not installed"
    found = re.search(r"\d+(\.\d+)+", out.stdout)
    return found[0] if found else out.stdout.strip()


# ================================================================== load
@dataclass
class Tally:
    """What one phase (or several rounds of it) measured."""

    latencies_ns: list[int] = field(default_factory=list)
    seconds: float = 0.0
    grants: int = 0
    withheld: int = 0
    client_cpu_s: float = 0.0
    system: dict[str, float] = field(default_factory=dict)  # /proc/stat deltas, seconds
    server: dict[str, float] = field(default_factory=dict)  # /bench/stats deltas
    exhausted: bool = False  # a connection ran out of pre-signed reports before the end
    answers: list[tuple[SimulatedNode, int, bytes]] = field(default_factory=list, repr=False)

    def add(self, other: Tally) -> None:
        self.latencies_ns += other.latencies_ns
        self.seconds += other.seconds
        self.grants += other.grants
        self.withheld += other.withheld
        self.client_cpu_s += other.client_cpu_s
        self.exhausted |= other.exhausted
        for mine, theirs in ((self.system, other.system), (self.server, other.server)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0.0) + value


RENEW_HEAD = (
    b"POST /v1/renew HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n"
)
HEALTHZ_REQUEST = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *([0-9]+)", re.IGNORECASE)


@dataclass
class Share:
    """One connection's nodes, and the reports signed for them but not yet sent, in order."""

    nodes: list[SimulatedNode]
    queue: deque[tuple[SimulatedNode, bytes]] = field(default_factory=deque)
    turn: int = 0

    def top_up(self, count: int) -> None:
        """Sign reports (one more request used each) until ``count`` are waiting."""
        while len(self.queue) < count:
            node = self.nodes[self.turn % len(self.nodes)]
            self.turn += 1
            node.use(requests=1)
            self.queue.append((node, node.signed_report()))


def check_renewal(node: SimulatedNode, status: int, body: bytes, tally: Tally) -> None:
    """HTTP 200 and a grant signed by the custodian for this instance, or a withheld answer."""
    if status != httpx.codes.OK:
        raise BenchError(f"renewal of {node.instance_id}: HTTP {status} {body[:500]!r}")
    answer = RenewResponse.model_validate_json(body)
    if answer.grant is not None:
        assert node.instance_id is not None
        node.grant = verify_grant(
            answer.grant,
            custodian_keys=[node.custodian_key],
            lease_id=node.lease_id,
            instance_id=node.instance_id,
        )
        tally.grants += 1
    elif answer.withheld is not None:
        tally.withheld += 1
    else:
        raise BenchError(f"renewal of {node.instance_id}: neither a grant nor a withheld reason")


def check_healthz(status: int, body: bytes) -> None:
    if status != httpx.codes.OK or json.loads(body) != {"status": "ok"}:
        raise BenchError(f"/healthz: HTTP {status} {body[:200]!r}")


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a keep-alive connection; the status and the body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = CONTENT_LENGTH.search(head)
    if not head.startswith(b"HTTP/1.1 ") or length is None:
        raise BenchError(f"unexpected response head {head[:200]!r}")
    return int(head[9:12]), await reader.readexactly(int(length[1]))


def run_phase(kind: str, url: str, shares: list[Share], seconds: float) -> Tally:
    """One connection per share, all on one event loop, for ``seconds``.

    The client is a minimal HTTP/1.1 writer and reader over asyncio streams, and the reports
    were signed before the phase (``Share.top_up``), so the load generator spends its CPU on
    little but the sockets: on this 2-core VM an ``httpx`` client, at about 1.3 ms of CPU
    per request, was the limit before the server was.
    """
    host, port = url.removeprefix("http://").split(":")

    async def main() -> Tally:
        connections = [await asyncio.open_connection(host, int(port)) for _ in shares]
        tally, answers = Tally(), []  # answers are checked by the caller, off the clock
        deadline = time.perf_counter() + seconds

        async def work(share: Share, reader: Any, writer: Any) -> None:
            while time.perf_counter() < deadline:
                if kind == "healthz":
                    start = time.perf_counter_ns()
                    status, body = await exchange(reader, writer, HEALTHZ_REQUEST)
                    tally.latencies_ns.append(time.perf_counter_ns() - start)
                    check_healthz(status, body)
                    continue
                if not share.queue:
                    tally.exhausted = True
                    return
                node, report = share.queue.popleft()
                start = time.perf_counter_ns()
                status, body = await exchange(reader, writer, RENEW_HEAD % len(report) + report)
                tally.latencies_ns.append(time.perf_counter_ns() - start)
                answers.append((node, status, body))

        start = time.perf_counter()
        try:
            await asyncio.gather(
                *(work(s, r, w) for s, (r, w) in zip(shares, connections, strict=True))
            )
        finally:
            tally.seconds = time.perf_counter() - start
            for _, writer in connections:
                writer.close()
        tally.answers = answers
        return tally

    return asyncio.run(main())


def proc_stat() -> dict[str, float]:
    """Machine-wide CPU time so far, in seconds, from the first line of /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "busy_s": (user + nice + system + irq + softirq) / tick,
        "iowait_s": iowait / tick,
        "steal_s": steal / tick,
    }


def postgres_cpu(data: Path | None) -> float:
    """CPU seconds used so far by our cluster's live processes: its postmaster and children.

    Only ours: other PostgreSQL clusters (a test suite running beside us) count as "other".
    """
    if data is None:
        return 0.0
    postmaster = (data / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    total, tick = 0, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if postmaster in (entry.name, fields[1]):  # itself, or a child (fields[1] is the ppid)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def background_load(seconds: float = 3.0) -> float:
    """Cores busy while this benchmark does nothing: other work sharing the machine."""
    before = proc_stat()
    time.sleep(seconds)
    return (proc_stat()["busy_s"] - before["busy_s"]) / seconds


def client_cpu() -> float:
    times = os.times()
    return times.user + times.system


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in after}


def measured(
    server: Server, probe: httpx.Client, pg_data: Path | None, run: Callable[[], Tally]
) -> Tally:
    """Run one phase with the machine's, the client's and the server's CPU counted around it."""
    server_before, system_before, cpu_before = server.stats(probe), proc_stat(), client_cpu()
    pg_before = postgres_cpu(pg_data)
    tally = run()
    tally.client_cpu_s = client_cpu() - cpu_before
    pg = postgres_cpu(pg_data) - pg_before
    tally.system = delta(proc_stat(), system_before) | {"postgres_s": pg}
    tally.server = delta(server.stats(probe), server_before)
    for node, status, body in tally.answers:  # every renewal checked, off the clock
        check_renewal(node, status, body, tally)
    tally.answers = []
    return tally


def enrol_all(server: Server, count: int, measurement: bytes) -> tuple[list[SimulatedNode], float]:
    client = httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_S)
    nodes: list[SimulatedNode] = [
        BenchNode(client, LEASE_ID, server.custodian_key, fixed_measurement=measurement)
        for _ in range(count)
    ]
    start = time.perf_counter()
    for node in nodes:
        node.enrol()  # nonce, evidence, enrolment; verifies the grant and unwraps the data key
    return nodes, time.perf_counter() - start


def bench_store(
    store: str, db_url: str, workdir: Path, args: argparse.Namespace, pg_data: Path | None = None
) -> dict[str, Any]:
    measurement = runtime_measurement(DEFAULT_CONFIG)  # once per store, parent and server alike
    with (
        running_server(db_url, workdir, measurement, args.workers, args.access_log) as server,
        httpx.Client() as probe,
    ):
        idle = background_load()
        print(f"  {store}: background load before the run {idle:.2f} cores", flush=True)
        nodes, enrol_s = enrol_all(server, args.nodes, measurement)
        print(f"  {store}: {len(nodes)} nodes enrolled in {enrol_s:.1f} s", flush=True)
        shares = [Share(nodes[w :: args.concurrency]) for w in range(args.concurrency)]

        def phase(kind: str, seconds: float) -> Tally:
            if kind == "renew":  # sign enough reports for the phase first, off the clock
                for share in shares:
                    share.top_up(math.ceil(args.max_rate * seconds / len(shares)))
            return measured(
                server, probe, pg_data, partial(run_phase, kind, server.url, shares, seconds)
            )

        for kind in ("healthz", "renew"):
            phase(kind, args.warmup)
        totals = {"healthz": Tally(), "renew": Tally()}
        per_round = args.duration / args.rounds
        for number in range(args.rounds):
            order = ("healthz", "renew") if number % 2 == 0 else ("renew", "healthz")
            for kind in order:
                tally = phase(kind, per_round)
                totals[kind].add(tally)
                rate = len(tally.latencies_ns) / tally.seconds
                print(f"    round {number + 1} {kind:8} {rate:8.0f} /s", flush=True)
        if totals["renew"].exhausted:
            print("  warning: the pre-signed reports ran out; raise --max-rate", flush=True)
        phases = {kind: summarise(kind, tally) for kind, tally in totals.items()}
        renew, healthz = phases["renew"], phases["healthz"]
        idle_after = background_load()
        print(f"  {store}: background load after the run {idle_after:.2f} cores", flush=True)
        return {
            "store": store,
            "server": server.info,
            "background_cores": {"before": idle, "after": idle_after},
            "source_measurement": measurement.hex()[:16],  # which package sources ran
            "enrolment": {
                "nodes": len(nodes),
                "seconds": enrol_s,
                "per_second": len(nodes) / enrol_s,
            },
            "phases": phases,
            "ratio_renew_over_healthz": renew["per_second"] / healthz["per_second"],
            "target_met": renew["per_second"] >= TARGET_PER_S,
        }


def summarise(kind: str, tally: Tally) -> dict[str, Any]:
    ms = [t / 1e6 for t in tally.latencies_ns]
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    n, wall = len(ms), tally.seconds
    server = tally.server
    out: dict[str, Any] = {
        "requests": n,
        "seconds": wall,
        "per_second": n / wall,
        "p50_ms": cuts[49],
        "p90_ms": cuts[89],
        "p99_ms": cuts[98],
        "max_ms": max(ms),
        # CPU in cores busy on average over the phase (1.0 = one core all the time)
        "cpu_cores": {
            "server": server["cpu_s"] / wall,
            "client": tally.client_cpu_s / wall,
            "postgres": tally.system["postgres_s"] / wall,
            "other": (
                tally.system["busy_s"]
                - server["cpu_s"]
                - tally.client_cpu_s
                - tally.system["postgres_s"]
            )
            / wall,
            "machine": tally.system["busy_s"] / wall,
            "iowait": tally.system["iowait_s"] / wall,
            "steal": tally.system["steal_s"] / wall,
        },
        "server_cpu_us_per_request": 1e6 * server["cpu_s"] / n,
        "client_cpu_us_per_request": 1e6 * tally.client_cpu_s / n,
    }
    if kind == "renew":
        calls = server["renew_calls"] or 1
        out |= {
            "grants": tally.grants,
            "withheld": tally.withheld,
            "server_renew_calls": server["renew_calls"],
            "plane_renew_ms": 1e3 * server["renew_s"] / calls,
            "sql_ms": 1e3 * server["sql_s"] / calls,
            "commit_ms": 1e3 * server["commit_s"] / calls,
            "statements_per_renewal": server["statements"] / calls,
            "mean_batch": server["renew_calls"] / (server["batches"] or 1),
            "writer_busy": server["renew_s"] / wall,  # fraction of the time a batch was open
        }
    return out


# ================================================================== report
def fsync_probe(directory: Path, count: int = 200) -> float:
    """p50 of write(4 KiB) + fsync in ``directory``, in ms: what a durable commit waits for."""
    path, times = directory / "fsync-probe", []
    with path.open("wb") as f:
        for _ in range(count):
            f.write(os.urandom(4096))
            f.flush()
            start = time.perf_counter()
            os.fsync(f.fileno())
            times.append(time.perf_counter() - start)
    path.unlink()
    return 1e3 * statistics.median(times)


def bench_machine(workdir: Path) -> dict[str, object]:
    versions = {
        name: importlib.metadata.version(name)
        for name in ("uvicorn", "fastapi", "httpx", "sqlalchemy", "psycopg", "cryptography")
    }
    return machine(
        **versions,
        sqlite=sqlite3.sqlite_version,
        postgresql=pg_version(),
        fsync_p50_ms=round(fsync_probe(workdir), 3),
    )


def table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| store | phase | req/s | p50 ms | p90 ms | p99 ms | server CPU µs/req "
        "| cores: server / client / postgres / other / iowait / steal "
        "| renew / healthz | ≥ 1,000/s |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|:---:|",
    ]
    for result in report["stores"]:
        for kind in ("healthz", "renew"):
            p = result["phases"][kind]
            c = p["cpu_cores"]
            ratio = f"{result['ratio_renew_over_healthz']:.3f}" if kind == "renew" else ""
            target = ("yes" if result["target_met"] else "**no**") if kind == "renew" else ""
            lines.append(
                f"| {result['store']} | {kind} | {p['per_second']:.0f} | {p['p50_ms']:.2f} "
                f"| {p['p90_ms']:.2f} | {p['p99_ms']:.2f} | {p['server_cpu_us_per_request']:.0f} "
                f"| {c['server']:.2f} / {c['client']:.2f} / {c['postgres']:.2f} "
                f"/ {c['other']:.2f} / {c['iowait']:.2f} / {c['steal']:.2f} | {ratio} | {target} |"
            )
    return lines


def breakdown(report: dict[str, Any]) -> list[str]:
    lines = [
        "| store | in renew_batch ms | SQL ms, incl. lock waits (statements) | COMMIT ms "
        "| reports per batch (mean) | batch writer busy | grants / withheld | enrolments/s "
        "| others' load before / after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in report["stores"]:
        p = result["phases"]["renew"]
        lines.append(
            f"| {result['store']} | {p['plane_renew_ms']:.3f} | {p['sql_ms']:.3f} "
            f"({p['statements_per_renewal']:.1f}) | {p['commit_ms']:.3f} "
            f"| {p['mean_batch']:.1f} | {p['writer_busy']:.2f} "
            f"| {p['grants']} / {p['withheld']} "
            f"| {result['enrolment']['per_second']:.0f} "
            f"| {result['background_cores']['before']:.2f} / "
            f"{result['background_cores']['after']:.2f} |"
        )
    return lines


def markdown(report: dict[str, Any]) -> str:
    first = report["stores"][0]["server"]
    lines = [
        f"# Custodian renewal benchmark, {report['date']}",
        "",
        f"{report['nodes']} simulated nodes on one lease; {report['concurrency']} keep-alive "
        "connections on loopback from one asyncio load generator (minimal HTTP/1.1, reports "
        f"signed before each phase, answers checked after it); per store, {report['rounds']} "
        f"interleaved rounds of `/healthz` (baseline) and `/v1/renew`, "
        f"{report['duration'] / report['rounds']:g} s each, after {report['warmup']:g} s "
        "warm-up of each. Every renewal checked (HTTP 200, and a grant whose signature "
        "verifies, or a withheld reason). The server runs in its own process "
        f"(uvicorn, loop `{first['loop']}`, HTTP `{first['http']}`, {first['workers']} worker "
        "process(es), each with its own listening socket in one `SO_REUSEPORT` group "
        f"(`custodian/serving.py`), access log {'on' if first['access_log'] else 'off'}); "
        "the load generator shares the cores with it. Latency is seen by the client. "
        "CPU columns are cores busy on average over the phase; *other* is everything else "
        "on the machine (other work sharing the VM, kernel); *steal* is time the hypervisor "
        "gave to other guests.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()),
        "",
        *table(report),
        "",
        "Inside the server, per renewal (mean; a batch's time is shared by its reports):",
        "",
        *breakdown(report),
        "",
        f"Target (issue #4): ≥ {TARGET_PER_S:,.0f} renewals/s. "
        + "; ".join(
            f"{r['store']}: {r['phases']['renew']['per_second']:.0f}/s, "
            + ("met" if r["target_met"] else "**not met**")
            for r in report["stores"]
        )
        + ".",
        "",
        "Command: `" + str(report["command"]) + "`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=256, help="simulated nodes (default 256)")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of renewals per store (default 20)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="untimed seconds of each phase (default 2)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="connections, each with its nodes (default 64)"
    )
    parser.add_argument(
        "--max-rate",
        type=float,
        default=4000.0,
        help="reports signed ahead per second of phase (default 4000)",
    )
    parser.add_argument(
        "--stores", default=",".join(STORES), help=f"comma-separated, of {', '.join(STORES)}"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="temporary files go here")
    parser.add_argument("--no-save", action="store_true", help="print only, write no results")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measurement", type=bytes.fromhex, help=argparse.SUPPRESS)
    parser.add_argument(
        "--workers", type=int, default=2, help="server processes (default 2: one per core)"
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="the server logs as `custodian serve` does, access log included (default: off)",
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.db, args.port, args.home, args.measurement, args.workers, args.access_log)
        return
    stores = [s for s in args.stores.split(",") if s]
    if unknown := set(stores) - set(STORES):
        parser.error(f"unknown store(s): {', '.join(sorted(unknown))}")
    if not 1 <= args.concurrency <= args.nodes:
        parser.error("--concurrency must be between 1 and --nodes (a worker owns its nodes)")
    if args.rounds < 1 or args.duration <= 0:
        parser.error("--rounds and --duration must be positive")

    root = Path(tempfile.mkdtemp(prefix="modellease-bench-", dir=args.workdir))
    try:
        if args.workdir is None and os.geteuid() == 0:
            root.chmod(0o755)  # PostgreSQL runs as its own user below this directory
        info = bench_machine(root)
        print(
            f"{info['cores']} cores, {args.nodes} nodes, {args.concurrency} connections, "
            f"{args.rounds} x ({args.duration / args.rounds:g} s healthz + "
            f"{args.duration / args.rounds:g} s renew) per store",
            flush=True,
        )
        results = []
        for store in stores:
            workdir = root / store
            workdir.mkdir()
            if store == "sqlite":
                url = f"sqlite+pysqlite:///{workdir / 'custodian.sqlite3'}"
                results.append(bench_store(store, url, workdir, args))
            else:
                workdir.chmod(0o755)
                with postgres_cluster(workdir, fsync=store == "postgresql") as (url, data):
                    results.append(bench_store(store, url, workdir, args, data))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    command = (
        f"python bench/custodian.py --nodes {args.nodes} --duration {args.duration:g} "
        f"--rounds {args.rounds} --warmup {args.warmup:g} --concurrency {args.concurrency} "
        f"--workers {args.workers} "
        f"--max-rate {args.max_rate:g} --stores {','.join(stores)}"
    )
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nodes": args.nodes,
        "duration": args.duration,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "max_rate": args.max_rate,
        "target_per_second": TARGET_PER_S,
        "machine": info,
        "stores": results,
        "command": command,
    }
    print()
    for line in [*table(report), "", *breakdown(report)]:
        print(line)
    if args.no_save:
        return
    save("custodian", report, markdown(report), variant=f"w{args.workers}")


if __name__ == "__main__":
    main()
