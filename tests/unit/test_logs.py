"""Structured logs: one JSON object per line, access lines as fields, secrets withheld."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from modellease.logs import JsonFormatter, LogFormat, configure


def record(name: str, msg: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args or None, None)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_line_of_json_with_its_extra_fields() -> None:
    line = JsonFormatter().format(
        record("modellease.custodian", "lease %s created", "lease-1", lease_id="lease-1", n=3)
    )
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "warning"
    assert parsed["logger"] == "modellease.custodian"
    assert parsed["message"] == "lease lease-1 created"
    assert (parsed["lease_id"], parsed["n"]) == ("lease-1", 3)
    assert parsed["time"].endswith("+00:00")


@pytest.mark.parametrize(
    "field", ["token", "bearer_token", "data_key", "passphrase", "nonce", "Authorization", "prompt"]
)
def test_fields_named_like_secrets_are_withheld(field: str) -> None:
    parsed = json.loads(JsonFormatter().format(record("x", "m", **{field: "mlt_s3cr3t"})))
    assert parsed[field] == "[withheld]"
    assert "s3cr3t" not in json.dumps(parsed)


def test_access_lines_become_fields_without_the_query_string() -> None:
    access = record(
        "uvicorn.access",
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/v1/leases/l1/orders?token=mlt_s3cr3t",
        "1.1",
        200,
    )
    parsed = json.loads(JsonFormatter().format(access))
    assert parsed["message"] == "request"
    assert (parsed["method"], parsed["path"], parsed["status"]) == (
        "GET",
        "/v1/leases/l1/orders",
        200,
    )
    assert "s3cr3t" not in json.dumps(parsed)


def test_an_exception_is_its_type_and_text_without_a_traceback() -> None:
    try:
        raise ValueError("bad input")  # noqa: TRY301 - raised to be logged
    except ValueError:
        failed = record("x", "failed")
        failed.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(failed))
    assert parsed["exception"] == "ValueError: bad input"
    assert "Traceback" not in json.dumps(parsed)


def test_configure_routes_every_logger_through_one_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure(fmt=LogFormat.JSON)
        logging.getLogger("uvicorn.error").info("Started server process")
        err = capsys.readouterr().err.strip().splitlines()
        assert [json.loads(line)["message"] for line in err] == ["Started server process"]
    finally:
        root.handlers[:], root.level = saved


@pytest.mark.parametrize("access_log", [True, False])
def test_the_access_log_can_be_silenced_and_errors_still_go_through(
    capsys: pytest.CaptureFixture[str], access_log: bool
) -> None:
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, access.level)
    try:
        configure(fmt=LogFormat.JSON, access_log=access_log)
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "POST", "/v1/renew", "1.1", 200)
        logging.getLogger("uvicorn.error").error("Exception in ASGI application")
        access.error("refused")
        lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
        logged = [(line["logger"], line["level"]) for line in lines]
        request = [("uvicorn.access", "info")] if access_log else []
        assert logged == [*request, ("uvicorn.error", "error"), ("uvicorn.access", "error")]
        assert ("/v1/renew" in lines[0].values()) is access_log
    finally:
        root.handlers[:], root.level = saved[:2]
        access.setLevel(saved[2])
