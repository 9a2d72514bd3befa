"""`probe clusters list`, `check NAME` and `import`: what is configured, whether it works, and ClustriX's config.

`check` runs the cluster's preflight (for SSH: reachability and auth, the far side's Python,
cloudpickle and whether it loads what this client writes, workdir and free disk, round-trip
latency). Each problem is one line with its fix. Exit 0 when usable, 3 when any check fails.

`import [PATH]` reads the config ClustriX would read (or PATH), prints it as a `[clusters.NAME]`
table, and with `--write` adds that table to probe.toml, keeping its comments and layout.

JSON (`--json`), stable:

- list: ``[{"name", "type", "host", "python", "workdir", "limits": {"memory", "time", "cores"}}]``
- check: ``{"cluster", "usable", "describe": {...}, "checks": [{"name", "status", "detail", "fix"}]}``
- check of every cluster (no name): a list of those, each with ``"error"`` (null, or the one line
  of an error that stopped its check)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from threshold_probe.cli import complete
from threshold_probe.cli.common import (
    command,
    console,
    err_console,
    fit_table,
    get_state,
    print_json,
    print_table,
    safe,
)
from threshold_probe.cli.usage import ProbeCommand, ProbeGroup
from threshold_probe.clusters import make_cluster
from threshold_probe.errors import EXIT_INFRA, InfraError, ProbeError
from threshold_probe.textsafe import strip_control

app = typer.Typer(
    name="clusters",
    cls=ProbeGroup,
    help="List configured clusters and check that they can run probes.",
    no_args_is_help=True,
)

_STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def _row(name: str, cfg: Any) -> dict[str, Any]:
    host = getattr(cfg, "host", None)
    if host and getattr(cfg, "port", None):
        host = f"{host}:{cfg.port}"
    if host and getattr(cfg, "user", None):
        host = f"{cfg.user}@{host}"
    return {
        "name": name,
        "type": cfg.type,
        "host": host or "localhost",
        "python": getattr(cfg, "python", None),
        "workdir": getattr(cfg, "workdir", None),
        "limits": {"memory": cfg.memory, "time": cfg.time, "cores": cfg.cores},
    }


@app.command("list", cls=ProbeCommand)
@command
def list_clusters(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The clusters probe.toml names (and `local`, which always exists); nothing is contacted."""
    cfg = get_state().config()
    rows = [_row(name, cfg.cluster(name)) for name in cfg.cluster_names()]
    if as_json:
        print_json(rows)
        return
    cells = [
        {
            "name": safe(r["name"]),
            "type": safe(r["type"]),
            "host": safe(r["host"]),
            "python": safe(r["python"] or "-"),
            "workdir": safe(r["workdir"] or "-"),
            "memory": safe(r["limits"]["memory"] or "-"),
            "time": safe(r["limits"]["time"] or "-"),
            "cores": safe(r["limits"]["cores"] or "-"),
        }
        for r in rows
    ]
    columns = ["name", "type", "host", "python", "workdir", "memory", "time", "cores"]
    # Names, hosts and paths are what a user copies: never cut. The limits and the type go first.
    title = f"{len(rows)} cluster" + ("" if len(rows) == 1 else "s")
    whole = ("name", "host", "python", "workdir")
    droppable = ["cores", "time", "type", "memory", "workdir"]
    print_table(fit_table(title, cells, columns, whole=whole, droppable=droppable))


def _check_one(name: str, cfg: Any) -> dict[str, Any]:
    """One cluster's preflight as a row; an error while checking is a failed check, never a traceback."""
    try:
        cluster = make_cluster(name, cfg)
        try:
            checks = cluster.preflight()
            facts = cluster.describe()
        finally:
            cluster.close()
    except ProbeError as exc:
        line = " ".join(strip_control(str(exc)).split())
        return {"cluster": name, "usable": False, "describe": {}, "error": line, "checks": []}
    usable = not any(c.status == "fail" for c in checks)
    return {
        "cluster": name,
        "usable": usable,
        "describe": facts,
        "error": None,
        "checks": [c.model_dump(mode="json") for c in checks],
    }


def _check_all(as_json: bool) -> None:
    """Every configured cluster, checked in parallel, in one table; exit 3 when any is not usable."""
    cfg = get_state().config()
    names = cfg.cluster_names()
    # Each preflight waits on its own far side (SSH round trips, sbatch): threads overlap the waits.
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
        rows = list(pool.map(lambda n: _check_one(n, cfg), names))
    if as_json:
        print_json(rows)
    else:
        table = Table(title=f"{len(rows)} clusters", title_justify="left")
        for col in ("cluster", "status", "host", "problems"):
            table.add_column(col, overflow="fold")
        for r in rows:
            bad = [c for c in r["checks"] if c["status"] != "ok"]
            problems = [r["error"]] if r["error"] else [f"{c['name']}: {c['detail']}" for c in bad]
            status = "[green]ok[/]" if r["usable"] else "[bold red]fail[/]"
            if r["usable"] and bad:
                status = "[yellow]warn[/]"
            host = r["describe"].get("host") or r["describe"].get("kind") or "-"
            table.add_row(safe(r["cluster"]), status, safe(host), safe("; ".join(problems)) or "-")
        console.print(table)
    failed = [r["cluster"] for r in rows if not r["usable"]]
    if failed:
        if as_json:
            raise typer.Exit(code=EXIT_INFRA)
        raise InfraError(f"{len(failed)} of {len(rows)} clusters not usable: {', '.join(failed)}")


@app.command("check", cls=ProbeCommand)
@command
def check(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Cluster name from probe.toml, or `local`; without it, every cluster.",
            autocompletion=complete.clusters,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Check that a cluster can run probes; every problem is one line with its fix (exit 3 if unusable).

    Without a name, every configured cluster is checked, in parallel, in one table (exit 3 if any
    is not usable).
    """
    if name is None:
        _check_all(as_json)
        return
    cfg = get_state().config()
    cluster = make_cluster(name, cfg)
    try:
        checks = cluster.preflight()
        facts = cluster.describe()
    finally:
        cluster.close()
    usable = not any(c.status == "fail" for c in checks)
    if as_json:
        print_json(
            {
                "cluster": name,
                "usable": usable,
                "describe": facts,
                "checks": [c.model_dump(mode="json") for c in checks],
            }
        )
    else:
        for c in checks:
            style = _STATUS_STYLE.get(c.status, "")
            fix = f" [dim]- fix: {safe(c.fix)}[/]" if c.fix and c.status != "ok" else ""
            # soft_wrap: one problem is one line, whatever the terminal width. The detail quotes
            # the far side (an sbatch error, a Python version line): escaped, never markup.
            line = f"[{style}]{c.status:<4}[/] {safe(c.name):<12} {safe(c.detail)}{fix}"
            console.print(line, highlight=False, soft_wrap=True)
    if not usable:
        if as_json:
            raise typer.Exit(code=EXIT_INFRA)
        bad = ", ".join(c.name for c in checks if c.status == "fail")
        raise InfraError(f"cluster {name!r} is not usable ({bad})")


@app.command("import", cls=ProbeCommand)
@command
def import_clustrix(
    path: Annotated[
        Path | None,
        typer.Argument(help="A ClustriX config file (default: the one ClustriX itself would load)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Cluster name (default: from the host).")] = None,
    write: Annotated[bool, typer.Option("--write", help="Add the table to probe.toml, keeping its layout.")] = False,
    known_hosts: Annotated[
        str | None,
        typer.Option(
            "--known-hosts",
            metavar="FILE",
            help="known_hosts file to check the host key against (ClustriX checks none).",
        ),
    ] = None,
) -> None:
    """Turn a ClustriX config into a \\[clusters.NAME] table: printed, or added to probe.toml with --write."""
    from threshold_probe.clustrix_config import (
        find_clustrix_config,
        read_clustrix_config,
        render_toml,
        to_cluster_table,
        write_cluster,
    )
    from threshold_probe.config import find_config
    from threshold_probe.errors import UserError

    if path is not None and not path.is_file():
        raise UserError(f"ClustriX config not found: {path}")
    source = path if path is not None else find_clustrix_config()
    imported = to_cluster_table(source, read_clustrix_config(source), name=name, known_hosts=known_hosts)
    console.print(render_toml(imported), markup=False, highlight=False, soft_wrap=True, end="")
    for note in imported.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    if write:
        state = get_state()
        target = state.config_path or find_config() or Path("probe.toml")
        write_cluster(target, imported)
        err_console.print(
            f"added [clusters.{imported.name}] to {target}; check it with: probe clusters check {imported.name}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
