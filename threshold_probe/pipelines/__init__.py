"""HOW a function travels: the pipeline registry (built-ins, import paths, entry points).

A pipeline is one of two kinds (threshold_probe/pipelines/base.py): a ShippingPipeline ships
files for the far-side runner (native, source, inline); a RunnerPipeline drives a whole runner
(clustrix, submitit).

A pipeline is named one of three ways:

- a built-in name: ``native``, ``source``, ``inline``, ``clustrix``, ``submitit``;
- the name of an entry point in the group ``threshold_probe.pipelines`` of any installed
  distribution (``[project.entry-points."threshold_probe.pipelines"] myrunner = "pkg.mod:MyPipeline"``);
- an import path ``package.module:ClassName``.

Built-ins win over entry points of the same name, so an installed package cannot silently
replace what ``native`` means.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

from threshold_probe.errors import UserError
from threshold_probe.pipelines._runner_io import META_NAME, RESULT_NAME, fill_observation, read_json_file
from threshold_probe.pipelines.base import ClientSideError, Pipeline, RunnerPipeline, ShippingPipeline

#: The entry-point group a distribution uses to offer pipelines.
ENTRY_POINT_GROUP = "threshold_probe.pipelines"

BUILTIN: dict[str, str] = {
    "native": "threshold_probe.pipelines.native:NativePipeline",
    "source": "threshold_probe.pipelines.source:SourcePipeline",
    "inline": "threshold_probe.pipelines.inline:InlinePipeline",
    "clustrix": "threshold_probe.pipelines.clustrix:ClustrixPipeline",
    "clustrix-serial": "threshold_probe.pipelines.clustrix:ClustrixSerialPipeline",
    "submitit": "threshold_probe.pipelines.submitit:SubmititPipeline",
}


def plugin_entry_points() -> dict[str, EntryPoint]:
    """Installed entry points in the pipeline group, by name (the first of a duplicate wins)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def available_pipelines() -> dict[str, str]:
    """Every pipeline name that resolves without an import path: name -> `module:Class`."""
    names = {name: ep.value for name, ep in plugin_entry_points().items()}
    names.update(BUILTIN)
    return dict(sorted(names.items()))


def _import_target(name: str, target: str) -> object:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UserError(f"pipeline {name!r}: {target!r} is not of the form package.module:ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot load pipeline {name!r}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # a plugin whose import raises: say so in one line
        raise UserError(
            f"cannot load pipeline {name!r}: importing {module_name} raised {type(exc).__name__}: {exc}"
        ) from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UserError(f"cannot load pipeline {name!r}: {module_name} has no attribute {attr!r}") from None
    return obj


def _load_entry_point(name: str, ep: EntryPoint) -> object:
    try:
        return ep.load()
    except Exception as exc:
        dist = getattr(getattr(ep, "dist", None), "name", None)
        where = f" (from {dist})" if dist else ""
        raise UserError(
            f"cannot load pipeline {name!r}{where}: entry point {ep.value!r} raised {type(exc).__name__}: {exc}"
        ) from None


def resolve_pipeline_class(name: str) -> type[Pipeline]:
    """The Pipeline subclass a name stands for; UserError when unknown or broken."""
    if name in BUILTIN:
        obj = _import_target(name, BUILTIN[name])
    elif ":" in name:
        obj = _import_target(name, name)
    else:
        eps = plugin_entry_points()
        if name not in eps:
            known = ", ".join(available_pipelines())
            raise UserError(f"unknown pipeline {name!r}: known pipelines are {known}, or give package.module:ClassName")
        obj = _load_entry_point(name, eps[name])
    if not isinstance(obj, type) or not issubclass(obj, Pipeline):
        raise UserError(f"pipeline {name!r} is not a threshold_probe.pipelines.base.Pipeline subclass")
    if not issubclass(obj, ShippingPipeline | RunnerPipeline):
        raise UserError(
            f"pipeline {name!r} is a Pipeline of neither kind: subclass ShippingPipeline (it ships files)"
            " or RunnerPipeline (it drives a whole runner)"
        )
    return obj


def make_pipeline(name: str) -> Pipeline:
    """A pipeline by built-in name, entry-point name or `package.module:ClassName`."""
    cls = resolve_pipeline_class(name)
    try:
        pipeline = cls()
    except Exception as exc:
        raise UserError(f"cannot create pipeline {name!r}: {type(exc).__name__}: {exc}") from None
    return pipeline


__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "META_NAME",
    "RESULT_NAME",
    "ClientSideError",
    "Pipeline",
    "RunnerPipeline",
    "ShippingPipeline",
    "available_pipelines",
    "fill_observation",
    "make_pipeline",
    "plugin_entry_points",
    "read_json_file",
    "resolve_pipeline_class",
]
