"""Structured logs: one JSON object per line on standard error, and never a secret.

Rules:

* a line is ``{"time", "level", "logger", "message", ...}``: ``time`` is RFC 3339 UTC with
  milliseconds, ``message`` the formatted message; fields given with ``extra={...}`` follow
  when their values are JSON scalars; an exception adds ``"exception"`` (its type and text,
  no traceback: tracebacks print local values' reprs, and those may hold secrets);
* uvicorn's access lines become fields (``client``, ``method``, ``path``, ``status``):
  query strings are dropped, so nothing a client put in a URL is written;
* what may never be logged (keys, tokens, nonces, evidence, prompts, outputs) is kept out
  by the callers, who log identifiers and counts only; as a second line of defence, any
  ``extra`` field whose name says "secret" (see ``_SECRET_FIELD``) is replaced by
  ``"[withheld]"``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


_SECRET_FIELD: Final = re.compile(
    r"token|secret|pass(?:word|phrase)|key|nonce|authori[sz]ation|cookie|prompt|evidence",
    re.IGNORECASE,
)
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_ACCESS_FIELDS: Final = ("client", "method", "path", "http_version", "status")


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class JsonFormatter(logging.Formatter):
    """Formats each record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            line["message"] = "request"
            line |= dict(zip(_ACCESS_FIELDS, record.args, strict=False))
            line["path"] = str(line.get("path", "")).split("?", 1)[0]
        else:
            line["message"] = record.getMessage()
        for name, value in record.__dict__.items():
            if name in _STANDARD or name.startswith("_") or not _scalar(value):
                continue
            line[name] = "[withheld]" if _SECRET_FIELD.search(name) else value
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["exception"] = f"{type(error).__name__}: {error}"
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(
    *, level: int = logging.INFO, fmt: LogFormat = LogFormat.JSON, access_log: bool = True
) -> None:
    """Send every logger's records (uvicorn's included) to standard error in ``fmt``.

    ``access_log=False`` silences uvicorn's line per request (a few percent of a busy
    custodian's CPU: ``bench/README.md``); its errors still go through.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.setLevel(logging.NOTSET)  # the root's level decides
        logger.disabled = False
        logger.propagate = True
    if not access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
