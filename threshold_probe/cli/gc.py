"""`probe gc`: remove old runs and their journal rows, never a baseline nightly still uses."""

from __future__ import annotations

from typing import Annotated

import typer

from threshold_probe.cli.common import command, console, get_state, print_json, safe
from threshold_probe.errors import UserError
from threshold_probe.gc import collect, parse_age
from threshold_probe.units import format_memory


@command
def gc(
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Remove runs started longer ago than this (30d, 2w, 12h). Default 30d."),
    ] = None,
    keep: Annotated[int, typer.Option("--keep", help="Always keep the N newest runs.", min=0)] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Remove old run folders and their journal rows; say what was removed and how much space it freed.

    Never removed: a run still running, a run pinned in \\[nightly.baseline] or named by the last
    nightly.json, and the newest completed run of each cluster/pipeline/ladder (a baseline).
    With only --keep N, every run but the N newest may go.
    """
    if older_than is None and keep == 0:
        older_than = "30d"
    age = parse_age(older_than) if older_than is not None else None
    if age is not None and age < 0:
        raise UserError("--older-than must not be negative")
    state = get_state()
    result = collect(state.store(), state.config(), older_than=age, keep=keep, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "removed": [{"run_id": r.run_id, "bytes": r.bytes} for r in result.removed],
                "kept": [{"run_id": r.run_id, "reason": r.reason} for r in result.runs if not r.removed],
                "freed_bytes": result.freed,
                "far_side": result.far_side,
            }
        )
        return
    for line in result.far_side:
        console.print(f"far side: {safe(line)}", highlight=False, soft_wrap=True)
    for r in result.runs:
        if r.removed:
            console.print(f"{verb} {safe(r.run_id)} ({format_memory(r.bytes)})", highlight=False, soft_wrap=True)
        else:
            console.print(f"kept {safe(r.run_id)}: {safe(r.reason)}", highlight=False, soft_wrap=True)
    console.print(
        f"{verb} {len(result.removed)} run(s), {'would free' if dry_run else 'freed'} {format_memory(result.freed)}",
        highlight=False,
        soft_wrap=True,
    )
