"""Where DCAP collateral comes from: files for offline use, never the network at verify time.

A :class:`CollateralSource` answers "the collateral for this TEE kind and FMSPC" (SGX and
TDX on one platform share an FMSPC but need different TCB info and QE identity). The only
source here reads a directory of dcap-qvl ``QuoteCollateralV3`` JSON files named
``<tee>/<FMSPC>.json`` (e.g. ``tdx/B0C06F000000.json``, FMSPC in upper-case hex).
Fetching from a PCCS or Intel PCS belongs to an operator's job that fills such a
directory; the verifier never fetches.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from modellease.errors import CollateralError

MAX_COLLATERAL_SIZE = 512 * 1024
_FMSPC = re.compile(r"[0-9A-F]{12}")


class CollateralSource(Protocol):
    def dcap_collateral(self, tee: str, fmspc: str) -> bytes:
        """Return collateral JSON for ``tee`` and ``fmspc`` or raise :class:`CollateralError`."""
        ...


class DirectoryCollateral:
    """Collateral files in one directory, named by FMSPC."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def dcap_collateral(self, tee: str, fmspc: str) -> bytes:
        if _FMSPC.fullmatch(fmspc) is None or tee not in ("sgx", "tdx"):
            raise CollateralError(f"malformed collateral key {tee!r}/{fmspc!r}")
        path = self._dir / tee / f"{fmspc}.json"
        try:
            with path.open("rb") as f:
                data = f.read(MAX_COLLATERAL_SIZE + 1)
        except FileNotFoundError:
            raise CollateralError(f"no {tee} collateral for FMSPC {fmspc} in {self._dir}") from None
        except OSError as exc:
            raise CollateralError(f"cannot read {path}: {exc.strerror}") from None
        if len(data) > MAX_COLLATERAL_SIZE:
            raise CollateralError(f"{path} is larger than {MAX_COLLATERAL_SIZE} bytes")
        return data
