"""The one error every engine raises once it is closed (a kill, or the hard expiry)."""

from __future__ import annotations

from modellease.errors import StateError


class EngineStoppedError(StateError):
    """The engine was closed (kill or hard expiry) or the generation was cancelled."""

    reason = "engine_stopped"
