"""The node's measured configuration: which custodian it obeys, and which overseers.

The custodian's URL and public key are trust roots, so they are not command-line options:
they live in this file, whose exact bytes are part of the TEE measurement (the simulated
backend hashes them into its measurement, a Gramine manifest lists the file as trusted, a
confidential VM's image contains it). A node started with another file has another
measurement, and the lease's policy refuses it at enrolment. Rules:

* the file is JSON with exactly the fields of :class:`NodeConfig` (unknown ones refused);
* keys are 32-byte Ed25519 public keys in hex; a key cannot be both custodian and overseer;
* the bytes are kept as read (:attr:`NodeConfig.raw`): they are what is measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from modellease.errors import InvalidInputError
from modellease.keys import CustodianPublicKey
from modellease.protocol import OverseerPublicKey

_KEY_HEX = r"^[0-9a-f]{64}$"
KeyHex = Annotated[str, StringConstraints(pattern=_KEY_HEX)]


class NodeConfigError(InvalidInputError):
    """The node configuration file is not valid."""

    reason = "node_config_invalid"


class _ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format: str = Field(pattern=r"^modellease/node-config/v1$")
    custodian_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    custodian_public_key: str = Field(pattern=_KEY_HEX)
    overseer_public_keys: list[KeyHex] = Field(default_factory=list, max_length=64)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A parsed configuration, with the exact bytes the measurement covers."""

    raw: bytes
    custodian_url: str
    custodian_key: CustodianPublicKey
    overseer_keys: tuple[OverseerPublicKey, ...]

    @classmethod
    def from_bytes(cls, raw: bytes) -> NodeConfig:
        try:
            parsed = _ConfigFile.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "file"
            raise NodeConfigError(f"node configuration: {where}: {first['msg']}") from None
        if parsed.custodian_public_key in parsed.overseer_public_keys:
            raise NodeConfigError("node configuration: the custodian key is also an overseer key")
        return cls(
            raw=raw,
            custodian_url=parsed.custodian_url.rstrip("/"),
            custodian_key=CustodianPublicKey(bytes.fromhex(parsed.custodian_public_key)),
            overseer_keys=tuple(
                OverseerPublicKey(bytes.fromhex(k)) for k in parsed.overseer_public_keys
            ),
        )


def render_config(
    *, custodian_url: str, custodian_key: bytes, overseer_keys: tuple[bytes, ...] = ()
) -> bytes:
    """A configuration file's bytes (checked by parsing them back)."""
    document = {
        "format": "modellease/node-config/v1",
        "custodian_url": custodian_url,
        "custodian_public_key": custodian_key.hex(),
        "overseer_public_keys": [k.hex() for k in overseer_keys],
    }
    raw = (json.dumps(document, indent=2) + "\n").encode()
    NodeConfig.from_bytes(raw)
    return raw
