"""Regenerate run-summary.schema.json from the pydantic model."""

from __future__ import annotations

from pathlib import Path

from threshold_probe.render.json import SCHEMA_RESOURCE, schema_text
from threshold_probe.store import atomic_write

if __name__ == "__main__":
    atomic_write(Path(__file__).with_name(SCHEMA_RESOURCE), schema_text())
