"""The ``modellease`` command. Each command group lives in its own small module."""

from modellease.cli._app import app, main

__all__ = ["app", "main"]
