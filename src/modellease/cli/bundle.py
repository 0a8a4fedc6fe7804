"""``modellease seal | inspect | unseal``: the sealed model bundle on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from modellease import __version__
from modellease.bundle import DEFAULT_FRAME_SIZE, BundleInspection, inspect_bundle
from modellease.cli._common import (
    EXIT_BAD_INPUT,
    HomeOption,
    PassphraseOption,
    out,
    printable,
    progress_bar,
    reporting,
    unlock_home,
)
from modellease.custodian.sealing import seal_model_file, unseal_bundle
from modellease.errors import InvalidInputError
from modellease.keys import fingerprint

BUNDLE_SUFFIX = ".mlbundle"


def _read_provenance(path: Path | None, model: Path) -> dict[str, Any]:
    base: dict[str, Any] = {"source_file": model.name, "sealed_with": f"modellease {__version__}"}
    if path is None:
        return base
    try:
        extra = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read provenance from {path}: {exc}") from None
    if not isinstance(extra, dict):
        raise InvalidInputError(f"provenance in {path} must be a JSON object")
    return base | extra


def seal(
    model: Annotated[Path, typer.Argument(help="Model file (ONNX, GGUF or safetensors).")],
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: file name).")] = None,
    model_version: Annotated[str, typer.Option("--model-version", help="Model version.")] = "1",
    model_format: Annotated[
        str, typer.Option("--format", help="auto, onnx, gguf or safetensors.")
    ] = "auto",
    out_path: Annotated[
        Path | None, typer.Option("--out", help=f"Bundle path (default: MODEL{BUNDLE_SUFFIX}).")
    ] = None,
    provenance: Annotated[
        Path | None, typer.Option(help="JSON object of provenance facts to sign in.")
    ] = None,
    frame_size: Annotated[
        int, typer.Option(help="Plaintext bytes per frame.")
    ] = DEFAULT_FRAME_SIZE,
) -> None:
    """Seal MODEL into a signed, encrypted bundle; its data key goes to the key store."""
    with reporting():
        _, unlocked = unlock_home(home, passphrase_file)
        target = out_path or model.with_name(model.name + BUNDLE_SUFFIX)
        size = model.stat().st_size if model.is_file() else 0
        with progress_bar("sealing", 2 * size) as progress:
            sealed = seal_model_file(
                unlocked,
                model,
                target,
                name=name or model.stem,
                version=model_version,
                model_format=model_format,
                provenance=_read_provenance(provenance, model),
                frame_size=frame_size,
                progress=progress,
            )
        m = sealed.manifest
        out.print(printable(f"sealed {model} -> {target}"))
        out.print(f"bundle id  {m.bundle_id}")
        described = f"{m.model.name} {m.model.version} ({m.model.format}, {m.model.size} bytes)"
        out.print(f"model      {printable(described)}")
        out.print(f"sha256     {m.model.sha256}")
        out.print("data key   stored in the custodian key store (not in the bundle)")


def _inspection_json(found: BundleInspection) -> dict[str, Any]:
    return {
        "header": {
            "format_version": int(found.header.version),
            "manifest_size": found.header.manifest_size,
        },
        "length": found.length,
        "length_matches": found.length_matches,
        "signature_valid": found.signature_valid,
        "custodian_fingerprint": found.manifest.custodian.fingerprint,
        "manifest": found.manifest.model_dump(mode="json"),
    }


def inspect(
    bundle: Annotated[Path, typer.Argument(help="Sealed bundle file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a bundle's header, manifest and signature validity (needs no key)."""
    with reporting():
        found = inspect_bundle(bundle)
        if as_json:
            typer.echo(json.dumps(_inspection_json(found), indent=2, sort_keys=True))
        else:
            m = found.manifest
            table = Table(show_header=False, box=None)
            table.add_column(no_wrap=True)
            table.add_column(overflow="fold")
            rows = [
                ("format version", str(int(found.header.version))),
                ("bundle id", m.bundle_id),
                ("model", f"{m.model.name} {m.model.version} ({m.model.format})"),
                ("size", f"{m.model.size} bytes"),
                ("sha256", m.model.sha256),
                ("cipher", f"{m.cipher}, {m.frame_size}-byte frames"),
                ("created", m.created_at),
                ("custodian", m.custodian.fingerprint),
                ("signature", "valid" if found.signature_valid else "INVALID"),
                (
                    "length",
                    "as declared" if found.length_matches else "WRONG (truncated or extended)",
                ),
                ("provenance", json.dumps(m.provenance, sort_keys=True)),
            ]
            for key, value in rows:
                table.add_row(key, Text(printable(value)))
            out.print(table)
            out.print("(unverified: trust depends on whether you trust the custodian key above)")
        if not found.intact:
            raise typer.Exit(EXIT_BAD_INPUT)


def unseal(
    bundle: Annotated[Path, typer.Argument(help="Sealed bundle file made by this custodian.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the model.")],
    home: HomeOption = None,
    passphrase_file: PassphraseOption = None,
) -> None:
    """Verify and decrypt a bundle of this custodian back to the model file."""
    with reporting():
        loaded, unlocked = unlock_home(home, passphrase_file)
        size = bundle.stat().st_size
        with progress_bar("unsealing", size) as progress:
            manifest = unseal_bundle(loaded, unlocked, bundle, out_path, progress=progress)
        out.print(f"unsealed {bundle} -> {out_path}")
        out.print(f"verified signature by {fingerprint(loaded.public_key)}")
        out.print(f"verified sha256 {manifest.model.sha256}")
