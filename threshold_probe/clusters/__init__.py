"""WHERE code runs: the cluster registry (built-in types and plugins by entry point).

A cluster's type (`type = "..."` in its probe.toml table) names a Cluster subclass:

- a built-in type: ``local``, ``ssh``, ``slurm``;
- the name of an entry point in the group ``threshold_probe.clusters`` of any installed
  distribution (``[project.entry-points."threshold_probe.clusters"] pbs = "pkg.mod:PBSCluster"``).

The built-ins are registered the same way (see pyproject.toml), and win over entry points of the
same name, so an installed package cannot silently replace what ``ssh`` means. docs/clusters.md
says how a site adds a cluster type.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

from threshold_probe.clusters.base import Check, Cluster
from threshold_probe.config import BUILTIN_CLUSTER_TYPES, CLUSTER_ENTRY_POINT_GROUP, ProbeConfig
from threshold_probe.errors import UserError

ENTRY_POINT_GROUP = CLUSTER_ENTRY_POINT_GROUP

BUILTIN: dict[str, str] = {
    "local": "threshold_probe.clusters.local:LocalCluster",
    "ssh": "threshold_probe.clusters.ssh:SSHCluster",
    "slurm": "threshold_probe.clusters.slurm:SlurmCluster",
}
assert tuple(BUILTIN) == BUILTIN_CLUSTER_TYPES


def plugin_entry_points() -> dict[str, EntryPoint]:
    """Installed entry points in the cluster group, by name (the first of a duplicate wins)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def available_cluster_types() -> dict[str, str]:
    """Every cluster type that can be named in probe.toml: type -> `module:Class`."""
    names = {name: ep.value for name, ep in plugin_entry_points().items()}
    names.update(BUILTIN)
    return dict(sorted(names.items()))


def resolve_cluster_class(kind: str) -> type[Cluster]:
    """The Cluster subclass a type stands for; UserError when unknown or broken."""
    if kind in BUILTIN:
        module_name, _, attr = BUILTIN[kind].partition(":")
        obj: object = getattr(importlib.import_module(module_name), attr)
    else:
        eps = plugin_entry_points()
        if kind not in eps:
            raise UserError(f"unknown cluster type {kind!r}: known types are {', '.join(available_cluster_types())}")
        ep = eps[kind]
        try:
            obj = ep.load()
        except Exception as exc:
            dist = getattr(getattr(ep, "dist", None), "name", None)
            where = f" (from {dist})" if dist else ""
            raise UserError(
                f"cannot load cluster type {kind!r}{where}: entry point {ep.value!r} raised {type(exc).__name__}: {exc}"
            ) from None
    if not isinstance(obj, type) or not issubclass(obj, Cluster):
        raise UserError(f"cluster type {kind!r} is not a threshold_probe.clusters.base.Cluster subclass")
    return obj


def make_cluster(name: str, config: ProbeConfig) -> Cluster:
    """The cluster object for a configured name (`local` always exists)."""
    cfg = config.cluster(name)
    cls = resolve_cluster_class(cfg.type)
    if not isinstance(cfg, cls.config_model):
        raise UserError(f"cluster {name!r}: type {cfg.type!r} expects a {cls.config_model.__name__} config")
    if cfg.type in BUILTIN:
        return cls.create(name, cfg, base_dir=config.base_dir)
    try:
        return cls.create(name, cfg, base_dir=config.base_dir)
    except UserError:
        raise
    except Exception as exc:  # a plugin's constructor that raises: one line, not a traceback
        raise UserError(f"cannot create cluster {name!r}: {type(exc).__name__}: {exc}") from None


__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Check",
    "Cluster",
    "available_cluster_types",
    "make_cluster",
    "plugin_entry_points",
    "resolve_cluster_class",
]
