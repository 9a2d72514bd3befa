"""The JSON report: the RunSummary itself, versioned by its schema_version field.

The JSON Schema of this shape ships in the package (threshold_probe/schema/) and is documented
in docs/report-schema.md. `class` is the field name on the wire (a Python keyword inside).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from threshold_probe.summary import RunSummary

SCHEMA_RESOURCE = "run-summary.schema.json"


def to_json(summary: RunSummary) -> str:
    """The run summary as indented JSON, with the documented field names."""
    return summary.model_dump_json(indent=2, by_alias=True) + "\n"


def generate_schema() -> dict[str, Any]:
    """The JSON Schema of the run summary, generated from the pydantic model."""
    schema = RunSummary.model_json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://threshold-probe.invalid/schema/run-summary.schema.json"
    return schema


def schema_text() -> str:
    """The schema as the shipped file holds it: sorted keys, two-space indent, final newline."""
    return json.dumps(generate_schema(), indent=2, sort_keys=True) + "\n"


def shipped_schema() -> dict[str, Any]:
    """The JSON Schema file shipped in the package."""
    text = resources.files("threshold_probe.schema").joinpath(SCHEMA_RESOURCE).read_text()
    data: dict[str, Any] = json.loads(text)
    return data
