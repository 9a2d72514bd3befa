"""SARIF 2.1.0 for `probe check`: what code-scanning services read, one result per finding."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from threshold_probe import __version__
from threshold_probe.check import CheckResult, Rule
from threshold_probe.textsafe import strip_control

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _uri(path: str) -> str:
    # A relative path stays relative (code scanning resolves it against the checkout).
    return quote(PurePath(path).as_posix(), safe="/:")


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.rule_id,
        "name": rule.dimension,
        "shortDescription": {"text": f"{rule.label} {rule.op} {rule.threshold}"},
        "fullDescription": {"text": strip_control(rule.cause())},
        "defaultConfiguration": {"level": "error"},
        "properties": {k: v for k, v in rule.to_dict().items() if k not in ("id", "cause")},
    }


def to_sarif(result: CheckResult) -> str:
    """The findings of a check as one SARIF 2.1.0 log (a single run of the tool)."""
    index = {r.rule_id: i for i, r in enumerate(result.rules)}
    results = [
        {
            "ruleId": f.rule.rule_id,
            "ruleIndex": index[f.rule.rule_id],
            "level": "error",
            "message": {"text": strip_control(f.text())},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.path)},
                        "region": {"startLine": f.line},
                    },
                    "logicalLocations": [{"fullyQualifiedName": strip_control(f.function), "kind": "function"}],
                }
            ],
        }
        for f in result.findings
    ]
    notifications = [
        {
            "level": "error",
            "message": {"text": strip_control(e.message)},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(e.path)},
                        **({"region": {"startLine": e.lineno}} if e.lineno else {}),
                    }
                }
            ],
        }
        for e in result.errors
    ]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "threshold-probe",
                        "version": __version__,
                        "rules": [_rule(r) for r in result.rules],
                    }
                },
                "invocations": [
                    {"executionSuccessful": True, "toolExecutionNotifications": notifications},
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, sort_keys=True) + "\n"
