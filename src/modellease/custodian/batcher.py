"""Group commit for renewals: reports that arrive while a batch is being written go together.

Runs on the server's event loop, so it needs no lock of its own: a request prepares its
report (the work that needs no lock: :meth:`ControlPlane.prepare_renewal`), appends it to
the pending list and awaits its own answer; if no batch is being written, it starts one. A
batch takes everything pending (up to ``MAX_BATCH``) to :meth:`ControlPlane.renew_batch`,
then hands each request its outcome. Under light load a batch holds one report and nothing
waits; under heavy load one commit serves many reports. No request is answered before the
commit that stored its report.

Where the batch runs:

* on SQLite, whose writers take turns on the database's writer lock
  (:mod:`~modellease.custodian.store.writer_lock`): the lock is waited for on a worker
  thread, then the batch runs on the event loop. Holding the one lock every worker process
  needs, the batch should not share its process's interpreter with another thread:
  measured with ``bench/custodian.py`` (2 workers), a batch in a worker thread held the
  lock a third longer than its own CPU time, while the event loop's thread took turns;
* on PostgreSQL, whose waits are for row locks inside the transaction, in a worker thread,
  so that a wait never stalls the event loop.

Preparing on the event loop as reports arrive fills the time a batch waits for the lock
with work that would otherwise lengthen the next batch.
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from modellease.custodian.renewal import MAX_BATCH, Prepared, RenewalRequest
from modellease.custodian.service import ControlPlane

_Pending = tuple[RenewalRequest, Prepared, "asyncio.Future[str]"]


class RenewalBatcher:
    """Collects concurrent renewals of one event loop into batches (see the module doc)."""

    def __init__(self, plane: ControlPlane, *, max_batch: int = MAX_BATCH) -> None:
        self._plane = plane
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def renew(self, request: RenewalRequest) -> str:
        """Queue one report; return its answer's JSON once its batch has committed, or raise."""
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((request, self._plane.prepare_renewal(request), answer))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        return await answer

    async def _write_all(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[_Pending]) -> None:
        requests, prepared = [r for r, _, _ in batch], [p for _, p, _ in batch]
        lock = self._plane.writer_lock
        try:
            if lock is None:
                outcomes = await run_in_threadpool(self._plane.renew_batch, requests, prepared)
            else:
                async with lock.held():
                    outcomes = self._plane.renew_batch(requests, prepared)
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for (_, _, answer), outcome in zip(batch, outcomes, strict=True):
            if answer.done():  # the client went away; its report is stored all the same
                continue
            if isinstance(outcome, Exception):
                answer.set_exception(outcome)
            else:
                answer.set_result(outcome)
