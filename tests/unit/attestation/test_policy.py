"""Appraisal policy: complete, consistent, fail-closed; loaded from TOML or JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from modellease.attestation import load_policy, policy_from_mapping
from modellease.errors import PolicyError

MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
MRTD = (
    "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407"
    "de03ae6dc5f87f27428b2538873118b7"
)
M48 = "ab" * 48


FLOOR = {"min_tcb": {"boot_loader": 0, "tee": 0, "snp": 0, "microcode": 0}}


def sgx(**extra: Any) -> dict[str, Any]:
    return {"allowed_tees": ["sgx"], "sgx": {"mrenclave": [MRENCLAVE]}} | extra


def test_a_complete_policy_loads() -> None:
    policy = policy_from_mapping(
        {
            "allowed_tees": ["sgx", "tdx", "sev-snp"],
            "accepted_tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
            "denied_advisories": ["INTEL-SA-00615"],
            "sgx": {"mrsigner": "00" * 32, "isv_prod_id": 1, "min_isv_svn": 2},
            "tdx": {
                "mrtd": [MRTD],
                "rtmr0": [M48],
                "rtmr1": [M48],
                "rtmr2": [M48],
                "rtmr3": ["00" * 48],
                "td_attributes": "0000001000000000",
            },
            "sev_snp": {
                "measurement": [M48],
                "allowed_vmpls": [0, 1],
                "signing_keys": ["vcek", "vlek"],
                "min_tcb": {"boot_loader": 3, "tee": 0, "snp": 8, "microcode": 115},
            },
        }
    )
    assert policy.sev_snp is not None
    assert policy.sev_snp.min_tcb is not None
    assert policy.sev_snp.min_tcb.snp == 8
    assert policy.reference("tdx") == policy.tdx


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "the policy is empty"),
        ({"allowed_tees": []}, "allowed_tees is empty"),
        ({"allowed_tees": ["sgx", "sgx"], "sgx": {"mrenclave": [MRENCLAVE]}}, "twice"),
        ({"allowed_tees": ["sgx"]}, "sgx is allowed but the policy has no \\[sgx\\]"),
        (
            sgx(tdx={"mrtd": [MRTD], "rtmr0": [M48], "rtmr1": [M48], "rtmr2": [M48]}),
            "\\[tdx\\] is given but tdx is not in allowed_tees",
        ),
        (sgx(accepted_tcb_statuses=[]), "accepted_tcb_statuses is empty"),
        (sgx(accepted_tcb_statuses=["Revoked"]), "never-acceptable TCB statuses: \\['Revoked'\\]"),
        (sgx(denied_advisories=["intel-sa-00615"]), "Intel advisory ids"),
        (sgx(unsafe_allow_simulated=True), "unsafe_allow_simulated"),
        (
            {"allowed_tees": ["simulated"], "simulated": {"measurement": [M48]}},
            "unsafe_allow_simulated",
        ),
        (sgx(debug_allowed=True), "debug_allowed: Extra inputs are not permitted"),
        ({"allowed_tees": ["tpm"]}, "allowed_tees"),
        ({"allowed_tees": ["sgx"], "sgx": {}}, "give an mrenclave allow-list"),
        ({"allowed_tees": ["sgx"], "sgx": {"mrenclave": []}}, "empty allow-list"),
        ({"allowed_tees": ["sgx"], "sgx": {"mrenclave": ["XY"]}}, "not 32 bytes of lowercase hex"),
        ({"allowed_tees": ["sgx"], "sgx": {"mrsigner": "00" * 32}}, "go together"),
        (
            {"allowed_tees": ["sgx"], "sgx": {"mrenclave": [MRENCLAVE], "isv_prod_id": 1}},
            "go together",
        ),
        (
            {
                "allowed_tees": ["tdx"],
                "tdx": {"mrtd": [], "rtmr0": [M48], "rtmr1": [M48], "rtmr2": [M48]},
            },
            "mrtd: an empty allow-list",
        ),
        (
            {
                "allowed_tees": ["tdx"],
                "tdx": {
                    "mrtd": [MRTD],
                    "rtmr0": [M48],
                    "rtmr1": [M48],
                    "rtmr2": [M48],
                    "rtmr3": [],
                },
            },
            "rtmr3: an empty",
        ),
        (
            {
                "allowed_tees": ["tdx"],
                "tdx": {"mrtd": ["00"], "rtmr0": [M48], "rtmr1": [M48], "rtmr2": [M48]},
            },
            "mrtd: '00' is not 48 bytes",
        ),
        (
            {
                "allowed_tees": ["sev-snp"],
                "sev_snp": {
                    "measurement": [],
                    "min_tcb": {"boot_loader": 0, "tee": 0, "snp": 0, "microcode": 0},
                },
            },
            "measurement: an empty",
        ),
        (
            {
                "allowed_tees": ["sev-snp"],
                "sev_snp": {
                    "measurement": ["00"],
                    "min_tcb": {"boot_loader": 0, "tee": 0, "snp": 0, "microcode": 0},
                },
            },
            "not 48 bytes",
        ),
        (
            {
                "allowed_tees": ["sev-snp"],
                "sev_snp": {"measurement": [M48], "host_data": ["00"], **FLOOR},
            },
            "host_data",
        ),
        (
            {
                "allowed_tees": ["sev-snp"],
                "sev_snp": {"measurement": [M48], "allowed_vmpls": [4], **FLOOR},
            },
            "VMPLs between 0 and 3",
        ),
        (
            {
                "allowed_tees": ["sev-snp"],
                "sev_snp": {"measurement": [M48], "signing_keys": [], **FLOOR},
            },
            "vcek, vlek or both",
        ),
        (
            {
                "allowed_tees": ["simulated"],
                "unsafe_allow_simulated": True,
                "simulated": {"measurement": []},
            },
            "an empty allow-list",
        ),
        (
            {
                "allowed_tees": ["simulated"],
                "unsafe_allow_simulated": True,
                "simulated": {"measurement": ["0"]},
            },
            "not 48 bytes",
        ),
    ],
)
def test_empty_incomplete_or_contradictory_policies_are_errors(
    doc: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_mapping(doc)


def test_admitting_simulated_evidence_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modellease.attestation"):
        policy = policy_from_mapping(
            {
                "allowed_tees": ["simulated"],
                "unsafe_allow_simulated": True,
                "simulated": {"measurement": [M48]},
            }
        )
    assert policy.unsafe_allow_simulated
    assert "INSECURE" in caplog.text


def test_load_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text(f'allowed_tees = ["sgx"]\n[sgx]\nmrenclave = ["{MRENCLAVE}"]\n')
    assert load_policy(toml).sgx is not None
    as_json = tmp_path / "p.json"
    as_json.write_text(json.dumps(sgx()))
    assert load_policy(as_json) == load_policy(toml)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.yaml", "x", "must end in .toml or .json"),
        ("p.toml", "allowed_tees = [", "cannot parse policy"),
        ("p.json", "{", "cannot parse policy"),
        ("p.json", "[1]", "must be a table/object"),
        ("p.json", "[" * 100_000, "cannot parse policy"),
    ],
)
def test_unreadable_policies(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PolicyError, match=message):
        load_policy(path)
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "missing.toml")
