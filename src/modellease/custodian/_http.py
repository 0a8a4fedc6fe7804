"""What both custodian routers share: the HTTP status of each refusal.

The status comes from one table, most specific error first; anything unknown is a 500.
The problem+json plumbing itself is :mod:`modellease._http`, shared with the node.
"""

from __future__ import annotations

from modellease.custodian import ledger
from modellease.custodian.auth import AuthenticationError, PermissionDeniedError
from modellease.custodian.renewal import UnknownReporterError
from modellease.custodian.service import NonceRefusedError, UnknownLeaseError
from modellease.errors import (
    AttestationError,
    InvalidInputError,
    LimitExceededError,
    ModelleaseError,
    StateError,
)
from modellease.protocol.messages import OrderNotAllowedError
from modellease.protocol.signed import SignedDocumentError

STATUS: tuple[tuple[type[Exception], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (UnknownLeaseError, 404),
    (ledger.UnknownInstanceError, 404),
    (UnknownReporterError, 401),
    (OrderNotAllowedError, 403),
    (SignedDocumentError, 401),
    (NonceRefusedError, 403),
    (AttestationError, 403),
    (LimitExceededError, 413),
    (ledger.BudgetExhaustedError, 429),
    (ledger.UsageAboveAllowanceError, 409),
    (ledger.LedgerError, 409),
    (InvalidInputError, 400),
    (StateError, 409),
)


def status_for(exc: ModelleaseError) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
