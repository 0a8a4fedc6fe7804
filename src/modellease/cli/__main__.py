"""``python -m modellease.cli``: the same as the ``modellease`` command."""

from modellease.cli._app import main

main()
