"""HOW a function travels: the pipeline registry (built-ins, import paths, entry points)."""

from __future__ import annotations

import importlib

from threshold_probe.errors import UserError
from threshold_probe.pipelines.base import Pipeline

BUILTIN: dict[str, str] = {
    "native": "threshold_probe.pipelines.native:NativePipeline",
}


def make_pipeline(name: str) -> Pipeline:
    """A pipeline by name, or by `package.module:ClassName`."""
    target = BUILTIN.get(name, name)
    if ":" not in target:
        known = ", ".join(sorted(BUILTIN))
        raise UserError(f"unknown pipeline {name!r}: known pipelines are {known}, or give package.module:Class")
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cannot load pipeline {name!r}: {exc}") from None
    pipeline = cls()
    if not isinstance(pipeline, Pipeline):
        raise UserError(f"pipeline {name!r} is not a threshold_probe Pipeline")
    return pipeline


__all__ = ["Pipeline", "make_pipeline"]
