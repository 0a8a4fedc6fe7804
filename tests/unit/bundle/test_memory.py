"""Memory stays bounded: sealing uses a few buffers whatever the model size, and opening
allocates the model once plus a read buffer. Measured with tracemalloc (no timing)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from modellease.bundle import open_bundle
from modellease.custodian.home import CustodianHome
from modellease.custodian.sealing import seal_model_file

MIB = 1024 * 1024
MODEL_SIZE = 40 * MIB
SEAL_BUDGET = 12 * MIB  # 8 MiB read buffer + two 1 MiB frame buffers + small change
OPEN_OVERHEAD = 12 * MIB  # 8 MiB read buffer + small change, on top of the model itself


def traced_peak(run: object) -> int:
    tracemalloc.start()
    try:
        run()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_seal_and_open_memory_is_bounded(tmp_path: Path) -> None:
    model = tmp_path / "big.gguf"
    with model.open("wb") as f:
        f.write(b"GGUF")
        for i in range(MODEL_SIZE // MIB):
            f.write(bytes([i]) * MIB)
        f.write(b"tail")
    home = CustodianHome.init(tmp_path / "home")
    unlocked = home.unlock()
    bundle = tmp_path / "big.mlbundle"

    seal_peak = traced_peak(
        lambda: seal_model_file(unlocked, model, bundle, name="big", version="1")
    )
    assert seal_peak < SEAL_BUDGET

    key = unlocked.keys.get(home.unlock().keys.bundle_ids()[0])
    opened: list[object] = []
    open_peak = traced_peak(
        lambda: opened.append(
            open_bundle(bundle, data_key=key, trusted_custodians=[home.public_key])
        )
    )
    assert open_peak < model.stat().st_size + OPEN_OVERHEAD
