"""What every node route needs: the booted node, its runtime, the clock, the lease's unit,
and a way to wake the renewer when a request leaves the slice low."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from fastapi.responses import Response

from modellease.enclave.boot import BootedNode
from modellease.enclave.meter import AllowanceExhaustedError, Reservation
from modellease.enclave.renewer import Renewer
from modellease.enclave.runtime import NodeRuntime
from modellease.protocol.receipts import RECEIPT_HEADER, body_sha256, receipt_header

Clock = Callable[[], datetime]


@dataclass
class ServingContext:
    node: BootedNode
    now: Clock
    renewers: list[Renewer] = field(default_factory=list)

    @property
    def runtime(self) -> NodeRuntime:
        return self.node.runtime

    @property
    def unit(self) -> str:
        grant = self.runtime.keeper.grant
        return str(grant.unit) if grant is not None else "requests"

    @property
    def model_name(self) -> str:
        return self.node.manifest.model.name

    def begin(self, units: int) -> Reservation:
        """Admit and reserve (see :meth:`NodeRuntime.begin`); a refusal for lack of
        allowance wakes the renewer: the next slice, or an extension, is asked for at once."""
        try:
            return self.runtime.begin(units, now=self.now())
        except AllowanceExhaustedError:
            self._wake()
            raise

    def receipt(self, *, request: bytes, response_sha256: str, units: int) -> str:
        """Issue the receipt of one answer (:mod:`modellease.protocol.receipts`): hashes of
        the exact request body and of the response, the model, the units charged, its
        index; its ``x-modellease-receipt`` value. It is signed in the next batch
        (:mod:`modellease.enclave.receipt_log`), not here."""
        manifest = self.node.manifest
        payload = self.runtime.receipts.issue(
            bundle_id=manifest.bundle_id,
            model_sha256=manifest.model.sha256,
            request_sha256=body_sha256(request),
            response_sha256=response_sha256,
            units=units,
            unit=self.unit,
            now=self.now(),
        )
        return receipt_header(payload)

    def stamp(self, response: Response, *, request: bytes, units: int) -> Response:
        """Attach the receipt of a whole answer, in the ``x-modellease-receipt`` header."""
        response.headers[RECEIPT_HEADER] = self.receipt(
            request=request, response_sha256=body_sha256(bytes(response.body)), units=units
        )
        return response

    def after_request(self) -> None:
        """Wake the renewer if the slice is low: the next slice is asked for at once."""
        if self.runtime.slice_low():
            self._wake()

    def _wake(self) -> None:
        for renewer in self.renewers:
            renewer.poke()
