"""Canonical JSON and the DSSE-style signing envelope shared by every signed document."""

from modellease.protocol.envelope import canonical_json, pae, parse_canonical_json

__all__ = ["canonical_json", "pae", "parse_canonical_json"]
