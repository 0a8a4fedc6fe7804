"""Appraisal policy: which TEEs, which measurements, which TCB states are acceptable.

Rules (a policy that breaks one is a :class:`~modellease.errors.PolicyError`, never a pass):

* ``allowed_tees`` is non-empty, and every allowed TEE has its reference-value section;
  a section for a TEE that is not allowed is a contradiction;
* ``simulated`` is allowed if and only if ``unsafe_allow_simulated = true``;
* SGX needs an MRENCLAVE allow-list, or (not and) MRSIGNER with ISV product id and minimum
  ISV SVN; TDX needs MRTD and RTMR0-2 allow-lists (firmware, boot configuration, kernel and
  command line: MRTD alone admits any OS on that firmware); SEV-SNP needs a measurement
  allow-list and a TCB floor (SNP has no TCB status); simulated a measurement allow-list;
  every allow-list is non-empty when given;
* advisories to deny are Intel advisory ids (``INTEL-SA-NNNNN``), so a typo cannot deny
  nothing; collateral sent inside the evidence is refused unless
  ``accept_evidence_collateral = true`` (it lets the attester pick the freshest-looking set);
* accepted TCB statuses are non-empty and from Intel's set; ``Revoked`` is never accepted;
* debug mode is always refused: there is no setting for it;
* unknown keys anywhere are refused, so a typo cannot silently weaken a policy.

Load one with :func:`load_policy` (``.toml`` or ``.json``) or build it from a mapping with
:func:`policy_from_mapping`.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modellease.attestation.evidence import TeeName
from modellease.errors import PolicyError

log = logging.getLogger("modellease.attestation")

TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
    }
)  # Intel PCS TCB statuses; "Revoked" is deliberately absent

_HEX32 = r"^[0-9a-f]{64}$"
_ADVISORY = re.compile(r"INTEL-SA-[0-9]{5}")
_HEX8 = r"^[0-9a-f]{16}$"
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


def _nonempty_if_given(name: str, values: list[str] | None) -> None:
    if values is not None and not values:
        raise ValueError(f"{name}: an empty allow-list admits nothing; omit it or list values")


class SgxReference(BaseModel):
    """SGX: MRENCLAVE allow-list, or MRSIGNER + ISV product id + minimum ISV SVN."""

    model_config = _STRICT

    mrenclave: list[str] | None = None
    mrsigner: str | None = Field(default=None, pattern=_HEX32)
    isv_prod_id: int | None = Field(default=None, ge=0, le=0xFFFF)
    min_isv_svn: int | None = Field(default=None, ge=0, le=0xFFFF)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        _nonempty_if_given("mrenclave", self.mrenclave)
        for value in self.mrenclave or []:
            _hex("mrenclave", value, 32)
        signer_parts = (self.mrsigner, self.isv_prod_id, self.min_isv_svn)
        if any(p is not None for p in signer_parts) and any(p is None for p in signer_parts):
            raise ValueError("mrsigner, isv_prod_id and min_isv_svn go together")
        if (self.mrenclave is None) == (self.mrsigner is None):
            raise ValueError(
                "give an mrenclave allow-list or mrsigner + isv_prod_id + min_isv_svn, not both"
            )
        return self


class TdxReference(BaseModel):
    """TDX: MRTD allow-list; optional RTMR allow-lists and exact attribute values."""

    model_config = _STRICT

    mrtd: list[str]
    rtmr0: list[str]
    rtmr1: list[str]
    rtmr2: list[str]
    rtmr3: list[str] | None = None
    mr_config_id: list[str] | None = None
    td_attributes: str | None = Field(default=None, pattern=_HEX8)
    xfam: str | None = Field(default=None, pattern=_HEX8)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        for name in ("mrtd", "rtmr0", "rtmr1", "rtmr2"):
            if not getattr(self, name):
                raise ValueError(f"{name}: an empty allow-list admits nothing")
        for name in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_config_id"):
            values = getattr(self, name)
            _nonempty_if_given(name, values)
            for value in values or []:
                _hex(name, value, 48)
        return self


class SnpMinTcb(BaseModel):
    """Minimum SEV-SNP reported TCB components (security patch levels)."""

    model_config = _STRICT

    boot_loader: int = Field(ge=0, le=255)
    tee: int = Field(ge=0, le=255)
    snp: int = Field(ge=0, le=255)
    microcode: int = Field(ge=0, le=255)
    fmc: int | None = Field(default=None, ge=0, le=255)  # Turin only


SnpKeyKind = Literal["vcek", "vlek"]


def _vcek_only() -> list[SnpKeyKind]:
    return ["vcek"]


class SnpReference(BaseModel):
    """SEV-SNP: launch measurement allow-list, guest policy bits, VMPL, TCB floor, key kind."""

    model_config = _STRICT

    measurement: list[str]
    host_data: list[str] | None = None
    allowed_vmpls: list[int] = Field(default_factory=lambda: [0])
    signing_keys: list[SnpKeyKind] = Field(default_factory=_vcek_only)
    min_tcb: SnpMinTcb
    allow_smt: bool = True
    allow_migration_agent: bool = False
    require_single_socket: bool = False

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if not self.measurement:
            raise ValueError("measurement: an empty allow-list admits nothing")
        for value in self.measurement:
            _hex("measurement", value, 48)
        _nonempty_if_given("host_data", self.host_data)
        for value in self.host_data or []:
            _hex("host_data", value, 32)
        if not self.allowed_vmpls or any(not 0 <= v <= 3 for v in self.allowed_vmpls):
            raise ValueError("allowed_vmpls: give VMPLs between 0 and 3")
        if not self.signing_keys:
            raise ValueError("signing_keys: give vcek, vlek or both")
        return self


class SimulatedReference(BaseModel):
    """The simulated backend: allow-list of runtime measurements (SHA-384 of code + config)."""

    model_config = _STRICT

    measurement: list[str]

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if not self.measurement:
            raise ValueError("measurement: an empty allow-list admits nothing")
        for value in self.measurement:
            _hex("measurement", value, 48)
        return self


_SECTIONS: dict[str, str] = {
    "sgx": "sgx",
    "tdx": "tdx",
    "sev-snp": "sev_snp",
    "simulated": "simulated",
}


class AppraisalPolicy(BaseModel):
    """A complete appraisal policy. Immutable; build with :func:`policy_from_mapping`."""

    model_config = _STRICT

    allowed_tees: list[TeeName]
    accepted_tcb_statuses: list[str] = Field(default_factory=lambda: ["UpToDate"])
    denied_advisories: list[str] = Field(default_factory=list)
    min_tcb_evaluation_data_number: int | None = Field(default=None, ge=0)
    accept_evidence_collateral: bool = False
    unsafe_allow_simulated: bool = False
    sgx: SgxReference | None = None
    tdx: TdxReference | None = None
    sev_snp: SnpReference | None = None
    simulated: SimulatedReference | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.allowed_tees:
            raise ValueError("allowed_tees is empty: the policy would admit nothing")
        if len(set(self.allowed_tees)) != len(self.allowed_tees):
            raise ValueError("allowed_tees lists a TEE twice")
        for tee, section in _SECTIONS.items():
            present = getattr(self, section) is not None
            if tee in self.allowed_tees and not present:
                raise ValueError(f"{tee} is allowed but the policy has no [{section}] section")
            if present and tee not in self.allowed_tees:
                raise ValueError(f"[{section}] is given but {tee} is not in allowed_tees")
        if ("simulated" in self.allowed_tees) != self.unsafe_allow_simulated:
            raise ValueError(
                "simulated evidence needs both 'simulated' in allowed_tees and "
                "unsafe_allow_simulated = true"
            )
        if not self.accepted_tcb_statuses:
            raise ValueError("accepted_tcb_statuses is empty")
        unknown = set(self.accepted_tcb_statuses) - TCB_STATUSES
        if unknown:
            raise ValueError(f"unknown or never-acceptable TCB statuses: {sorted(unknown)}")
        bad = [a for a in self.denied_advisories if _ADVISORY.fullmatch(a) is None]
        if bad:
            raise ValueError(
                f"denied_advisories must be Intel advisory ids (INTEL-SA-NNNNN): {bad}"
            )
        return self

    def reference(self, tee: str) -> BaseModel:
        """The reference-value section for an allowed TEE."""
        section: BaseModel | None = getattr(self, _SECTIONS[tee])
        if section is None:  # pragma: no cover - excluded by _consistent
            raise AssertionError("unreachable: policy validated without its section")
        return section


def _hex(name: str, value: str, size: int) -> None:
    if len(value) != 2 * size or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"{name}: {value!r} is not {size} bytes of lowercase hex")


def policy_from_mapping(document: dict[str, Any]) -> AppraisalPolicy:
    """Validate a policy document; any problem is a :class:`PolicyError`."""
    if not document:
        raise PolicyError("the policy is empty: it would admit nothing")
    try:
        policy = AppraisalPolicy.model_validate(document)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        raise PolicyError(f"invalid policy: {where + ': ' if where else ''}{message}") from None
    if policy.unsafe_allow_simulated:
        log.warning("INSECURE: this policy admits simulated TEE evidence, which proves nothing")
    return policy


def load_policy(path: Path) -> AppraisalPolicy:
    """Read a policy from a ``.toml`` or ``.json`` file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            document = tomllib.loads(text)
        elif path.suffix == ".json":
            document = json.loads(text)
        else:
            raise PolicyError(f"policy {path} must end in .toml or .json")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise PolicyError(f"cannot parse policy {path}: {exc}") from None
    if not isinstance(document, dict):
        raise PolicyError(f"policy {path} must be a table/object")
    return policy_from_mapping(document)
