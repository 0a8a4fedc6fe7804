"""What every command shares: error reporting with stable exit codes, and progress bars.

Exit codes: 0 success, 1 other failure, 2 usage error (typer/click), 3 bad or tampered
input (any :class:`~modellease.errors.InvalidInputError`).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from modellease.custodian.home import (
    CustodianHome,
    UnlockedHome,
    read_passphrase_file,
    resolve_home,
)
from modellease.errors import InvalidInputError, ModelleaseError

EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3

PROGRESS_THRESHOLD = 4 * 1024 * 1024  # show a progress bar for work over 4 MiB

# No console markup: text from bundles, evidence and the command line is printed as is,
# so it can never be read as rich markup. Styles go through Text objects.
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)

_UNPRINTABLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def printable(text: str) -> str:
    """Escape control, format (bidi) and unassigned characters of untrusted text."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in _UNPRINTABLE_CATEGORIES
        else ch
        for ch in text
    )


HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Custodian home (default: $MODELLEASE_HOME, else ~/.modellease)."),
]
PassphraseOption = Annotated[
    Path | None,
    typer.Option("--passphrase-file", help="File holding the home's passphrase, if it has one."),
]


def _fail(reason: str, message: str, code: int) -> typer.Exit:
    err.print(Text.assemble(("error", "bold red"), f" ({reason}): {printable(message)}"))
    return typer.Exit(code)


@contextmanager
def reporting() -> Iterator[None]:
    """Turn modellease errors into one line on stderr and the documented exit code."""
    try:
        yield
    except InvalidInputError as exc:
        raise _fail(exc.reason, str(exc), EXIT_BAD_INPUT) from None
    except ModelleaseError as exc:
        raise _fail(exc.reason, str(exc), EXIT_OTHER) from None
    except (OSError, ValueError) as exc:
        raise _fail(type(exc).__name__, str(exc), EXIT_OTHER) from None


def refused(exc: InvalidInputError, *, as_json: bool) -> typer.Exit:
    """Report a verification that refused (with its step, if it has one); exit 3.

    JSON on stdout (``{"verified": false, "step", "reason", "message"}``), or one red line
    on stderr: ``refused at step <step> (<reason>): <message>``.
    """
    step = getattr(exc, "step", None)
    if as_json:
        doc = {"verified": False, "step": step, "reason": exc.reason, "message": str(exc)}
        typer.echo(json.dumps(doc, indent=2))
    else:
        where = f" at step {step}" if step else ""
        err.print(
            Text.assemble(("refused", "red"), f"{where} ({exc.reason}): {printable(str(exc))}")
        )
    return typer.Exit(EXIT_BAD_INPUT)


def unlock_home(
    home: Path | None, passphrase_file: Path | None
) -> tuple[CustodianHome, UnlockedHome]:
    """Load the custodian home and unlock it with its key file or passphrase."""
    loaded = CustodianHome.load(resolve_home(home))
    passphrase = read_passphrase_file(passphrase_file) if passphrase_file else None
    return loaded, loaded.unlock(passphrase)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """Yield a progress callback (bytes done), or ``None`` when the work is small."""
    if total < PROGRESS_THRESHOLD:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
