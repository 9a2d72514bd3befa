"""Shell completion of option and argument values: clusters, ladders, pipelines, run ids, formats.

Each function takes what the shell has typed so far and returns the values that start with it.
Completion runs on every Tab press, so it reads only local files (probe.toml, the journal), never
contacts a cluster, and never fails: a broken config or a missing journal completes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer


def _starting(values: Iterable[str], incomplete: str) -> list[str]:
    return [v for v in dict.fromkeys(values) if v.startswith(incomplete)]


def _global(ctx: typer.Context, name: str) -> Any:
    """A global option (--config, --reports-dir) as typed before the command, or None."""
    return ctx.find_root().params.get(name)


def _config(ctx: typer.Context) -> Any:
    from threshold_probe.config import load_config

    config = _global(ctx, "config") or os.environ.get("PROBE_CONFIG") or None
    return load_config(Path(config) if config else None)


def _reports_dir(ctx: typer.Context) -> Path:
    """Where the journal is, resolved as the commands resolve it (cli/common.py AppState)."""
    given = _global(ctx, "reports_dir") or os.environ.get("PROBE_REPORTS_DIR")
    if given:
        return Path(given)
    cfg = _config(ctx)
    path = Path(cfg.reports_dir).expanduser()
    return path if path.is_absolute() else cfg.base_dir / path


def clusters(ctx: typer.Context, incomplete: str) -> list[str]:
    """Cluster names from probe.toml, and `local`."""
    try:
        names = _config(ctx).cluster_names()
    except Exception:  # a config that does not load: still offer the cluster that always exists
        names = ["local"]
    return _starting(names, incomplete)


def ladders(incomplete: str) -> list[str]:
    """The shipped ladders by name (a path is completed by the shell itself)."""
    from threshold_probe.ladder.spec import list_ladders

    return _starting((name for name, _ in list_ladders()), incomplete)


def pipelines(incomplete: str) -> list[str]:
    """Built-in pipelines and installed pipeline plugins."""
    from threshold_probe.pipelines import available_pipelines

    try:
        names = list(available_pipelines())
    except Exception:  # a broken plugin entry point must not break Tab
        from threshold_probe.pipelines import BUILTIN

        names = list(BUILTIN)
    return _starting(names, incomplete)


def run_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """Recorded run ids, newest first (and `latest`), read from the journal without creating it."""
    try:
        root = _reports_dir(ctx)
        if not (root / "probe.db").is_file():
            return _starting(["latest"], incomplete)
        from threshold_probe.store import Store

        store = Store(root, readonly=True)
        try:
            ids = [info.run_id for info in store.runs(limit=200)]
        finally:
            store.close()
    except Exception:  # a damaged journal completes nothing; the command itself will say why
        ids = []
    return _starting([*ids, "latest"], incomplete)


def report_formats(incomplete: str) -> list[str]:
    from threshold_probe.render import FORMATS

    return _starting(FORMATS, incomplete)


def page_formats(incomplete: str) -> list[str]:
    """The formats of an explain page (no JUnit: it is one finding, not a test suite)."""
    from threshold_probe.render.explain import FORMATS

    return _starting(FORMATS, incomplete)


#: The kinds of run the journal holds (compare-pipelines and nightly record sweeps).
RUN_KINDS = ("sweep", "bisect", "isolate", "run", "shrink", "triage", "explain")


def run_kinds(incomplete: str) -> list[str]:
    return _starting(RUN_KINDS, incomplete)
