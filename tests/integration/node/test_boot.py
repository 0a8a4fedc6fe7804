"""Booting a node refuses, with its reason, every way the bundle, the key or the lease can
be wrong; nothing is served and no plaintext is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from modellease.custodian.home import CustodianHome
from modellease.custodian.sealing import seal_model_file
from modellease.custodian.store import InstanceRow, connect
from modellease.enclave.boot import BundleMismatchError
from modellease.enclave.wire import CustodianRefusedError
from modellease.errors import BundleIntegrityError, ModelFileError
from modellease.testing.digits import DigitsModel
from tests.integration.custodian_server import Custodian
from tests.integration.node_harness import (
    Sealed,
    boot_node,
    lease_for,
    node_config,
    seal,
)


def instances(custodian: Custodian) -> int:
    engine = connect(custodian.engine_url)
    with Session(engine) as s:
        count = s.scalar(sa.select(sa.func.count()).select_from(InstanceRow))
    engine.dispose()
    return int(count or 0)


def test_a_tampered_bundle_is_refused_after_decryption_and_nothing_serves(
    custodian: Custodian, sealed: Sealed
) -> None:
    config = node_config(custodian)
    lease = lease_for(custodian, sealed, config)
    raw = bytearray(sealed.path.read_bytes())
    raw[-20] ^= 0x01  # one bit in the last frame
    sealed.path.write_bytes(bytes(raw))
    with pytest.raises(BundleIntegrityError):
        boot_node(custodian, sealed, config, lease)


def test_a_bundle_from_another_custodian_is_refused_before_enrolling(
    custodian: Custodian, digits_model: DigitsModel, tmp_path: Path
) -> None:
    other = CustodianHome.init(tmp_path / "other")
    source = tmp_path / "digits.onnx"
    source.write_bytes(digits_model.onnx)
    made = seal_model_file(other.unlock(), source, tmp_path / "x.mlbundle", name="d", version="1")
    foreign = Sealed(path=tmp_path / "x.mlbundle", bundle_id=made.manifest.bundle_id)
    config = node_config(custodian)
    with pytest.raises(BundleIntegrityError):  # before any network call: no lease is needed
        boot_node(custodian, foreign, config, "no-such-lease")
    assert instances(custodian) == 0


def test_a_lease_for_another_bundle_is_refused_and_no_key_is_opened(
    custodian: Custodian, sealed: Sealed, digits_model: DigitsModel, tmp_path: Path
) -> None:
    other = seal(custodian, digits_model.onnx, tmp_path, name="other", suffix=".onnx")
    config = node_config(custodian)
    lease = lease_for(custodian, other, config)
    with pytest.raises(BundleMismatchError):
        boot_node(custodian, sealed, config, lease)


def test_a_wrong_data_key_is_refused(custodian: Custodian, sealed: Sealed) -> None:
    config = node_config(custodian)
    lease = lease_for(custodian, sealed, config)
    keys = custodian.home.unlock().keys
    keys._path(sealed.bundle_id).unlink()  # the custodian's store now holds a wrong key
    keys.put(sealed.bundle_id, b"\x05" * 32)  # type: ignore[arg-type]
    with pytest.raises(BundleIntegrityError):
        boot_node(custodian, sealed, config, lease)


def test_a_node_with_another_configuration_is_refused_at_enrolment(
    custodian: Custodian, sealed: Sealed
) -> None:
    measured = node_config(custodian)
    lease = lease_for(custodian, sealed, measured)
    other = node_config(custodian, overseers=(b"\x01" * 32,))  # another file, another measurement
    with pytest.raises(CustodianRefusedError) as refused:
        boot_node(custodian, sealed, other, lease)
    assert (refused.value.status, refused.value.refusal) == (403, "measurement_rejected")
    assert instances(custodian) == 0


def test_a_model_format_no_engine_serves_is_refused(custodian: Custodian, tmp_path: Path) -> None:
    header = b'{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    safetensors = len(header).to_bytes(8, "little") + header + b"\x00" * 4
    sealed = seal(custodian, safetensors, tmp_path, name="st", suffix=".safetensors")
    config = node_config(custodian)
    with pytest.raises(ModelFileError, match="no engine serves safetensors"):
        boot_node(custodian, sealed, config, lease_for(custodian, sealed, config))
