"""The node's side of the custodian's node API (``/v1``), over HTTP.

A thin transport: it sends what the node signed and parses what comes back with the strict
wire models; it decides nothing. Whether a grant or an order counts is the lease keeper's
decision (it verifies signatures and sequence numbers), never this module's. Rules:

* every request is JSON (``content-type: application/json``); an answer other than 200 is a
  :class:`CustodianRefusedError` carrying the HTTP status and the problem document's stable
  ``reason``;
* answers are parsed with the strict models (unknown fields refused); nothing in them is
  trusted until verified by the caller.
"""

from __future__ import annotations

import json

import httpx

from modellease.errors import TransportError
from modellease.protocol import EnrolRequest, EnrolResponse, NonceResponse, RenewResponse

JSON = {"content-type": "application/json"}


class CustodianRefusedError(TransportError):
    """The custodian answered with an error: ``status`` and the problem's ``reason``."""

    reason = "custodian_refused"

    def __init__(self, status: int, problem: dict[str, object]) -> None:
        super().__init__(f"{status} {problem.get('reason')}: {problem.get('detail')}")
        self.status = status
        self.problem = problem
        self.refusal = str(problem.get("reason"))


class CustodianClient:
    """Nonce, enrolment, renewal and extension requests to one custodian."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _post(self, path: str, content: bytes = b"") -> bytes:
        response = self.http.post(path, content=content, headers=JSON)
        if response.status_code != httpx.codes.OK:
            try:
                problem = response.json()
            except ValueError:
                problem = {"reason": "unreadable", "detail": response.text[:200]}
            raise CustodianRefusedError(response.status_code, problem)
        return response.content

    def nonce(self, lease_id: str) -> NonceResponse:
        return NonceResponse.model_validate_json(self._post(f"/v1/leases/{lease_id}/nonce"))

    def enrol(self, request: EnrolRequest) -> EnrolResponse:
        body = request.model_dump_json().encode()
        return EnrolResponse.model_validate_json(self._post("/v1/enrol", body))

    def renew(self, signed_report: bytes) -> RenewResponse:
        return RenewResponse.model_validate_json(self._post("/v1/renew", signed_report))

    def request_extension(self, signed_request: bytes) -> str:
        """File a signed extension request; the custodian's id for it."""
        answer = json.loads(self._post("/v1/extensions", signed_request))
        return str(answer["request_id"])
