"""Benchmark: how small `probe shrink` gets a failure, in how many probes, and how fast.

Usage::

    python bench/shrink.py [--config testbed.toml] [--skip-ladder] [--json]

Without --config it starts the loopback testbed (tests/testbed, with SLURM) in a temporary folder
and stops it afterwards. It measures:

- ladder: the `features` ladder's first `source` failure on local (found by bisect), shrunk.
  Target: <= 15 non-blank lines within <= 120 probes.
- long: a 200-line function with one construct that breaks `source` (a module-level helper it
  calls), shrunk on local. Target: <= 10 non-blank lines.
- rate: probes per second of a small shrink on local, SSH and SLURM, with --parallel 1 and 4,
  and the speed-up of --parallel 4 (wall time of 1 over wall time of 4).

Prints figures, not pass/fail. Every shrink uses --fresh: every probe is dispatched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from threshold_probe.config import ProbeConfig, load_config  # noqa: E402
from threshold_probe.session import run_search  # noqa: E402
from threshold_probe.shrink import (  # noqa: E402
    ShrinkOptions,
    shrink_target,
    target_from_function,
    target_from_run,
)
from threshold_probe.store import Store  # noqa: E402

SMALL = """\
import os

LIMIT = 3


def helper(x):
    return x + 1


def job():
    total = 0
    for i in range(3):
        total += i
    data = [1, 2, 3]
    label = "x" * LIMIT
    value = helper(total)
    return value + len(data) + len(label)
"""


def long_function(lines: int = 200) -> str:
    """A module whose function is `lines` long, with one call of a module-level helper in its middle."""
    body = ["    total = 0", "    notes = []"]
    i = 0
    while len(body) < lines - 4:
        i += 1
        if i == lines // 4:
            body.append("    total += scale(i_value := 3)")
            continue
        kind = i % 4
        if kind == 0:
            body.append(f"    total += {i} * 2")
        elif kind == 1:
            body.append(f"    notes.append('step {i}')")
        elif kind == 2:
            body += [f"    if total % {i + 1} == 0:", f"        total += {i}"]
        else:
            body += [f"    for k{i} in range(2):", f"        total ^= k{i} + {i}"]
    body.append("    return total, len(notes)")
    return "\n".join(["import math", "", "", "def scale(x):", "    return x * 2", "", "", "def job():", *body]) + "\n"


@contextlib.contextmanager
def testbed(config: Path | None) -> Iterator[Path]:
    """The given testbed config, or a fresh testbed started for this run."""
    if config is not None:
        yield config
        return
    from tests.testbed import testbed as tb

    state = Path(tempfile.mkdtemp(prefix="tp-bench-shrink-"))
    state.chmod(0o755)
    try:
        tb.start(state / "probe.toml", state)
        yield state / "probe.toml"
    finally:
        tb.stop(state)
        shutil.rmtree(state, ignore_errors=True)


def figures(result: Any, wall: float) -> dict[str, Any]:
    return {
        "lines": result.lines,
        "original_lines": result.original_lines,
        "probes": result.probes,
        "probes_pipeline": result.probes_pipeline,
        "probes_native": result.probes_native,
        "kept": result.kept,
        "reducer": result.reducer,
        "wall_s": round(wall, 2),
        "probes_per_s": round(result.probes / wall, 2) if wall else None,
    }


def shrink_file(cfg: ProbeConfig, store: Store, path: Path, cluster: str, parallel: int) -> dict[str, Any]:
    target = target_from_function(cfg, f"{path}:job", cluster=cluster, pipeline="source")
    t0 = time.perf_counter()
    result = shrink_target(target, config=cfg, store=store, options=ShrinkOptions(parallel=parallel, fresh=True))
    return figures(result, time.perf_counter() - t0)


def ladder_case(cfg: ProbeConfig, store: Store) -> dict[str, Any]:
    summary = run_search("bisect", config=cfg, store=store, cluster="local", pipeline="source", ladder="features")
    target = target_from_run(store, summary.run_id)
    t0 = time.perf_counter()
    result = shrink_target(target, config=cfg, store=store, options=ShrinkOptions(fresh=True))
    out = figures(result, time.perf_counter() - t0)
    out["level"] = target.level
    out["signature"] = result.signature
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="a testbed probe.toml (default: start one)")
    parser.add_argument("--skip-ladder", action="store_true", help="leave out the features-ladder case")
    parser.add_argument("--clusters", default="local,testbed-ssh,testbed-slurm")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tp-bench-shrink-work-"))
    out: dict[str, Any] = {}
    try:
        small = work / "small.py"
        small.write_text(SMALL)
        long = work / "long.py"
        long.write_text(long_function())
        with testbed(args.config) as config_path:
            cfg = load_config(config_path)
            store = Store(work / "reports")
            if not args.skip_ladder:
                out["ladder"] = ladder_case(cfg, store)
            out["long"] = shrink_file(cfg, store, long, "local", 1)
            rate: dict[str, Any] = {}
            for cluster in args.clusters.split(","):
                one = shrink_file(cfg, store, small, cluster, 1)
                four = shrink_file(cfg, store, small, cluster, 4)
                speedup = round(one["wall_s"] / four["wall_s"], 2)
                rate[cluster] = {"parallel_1": one, "parallel_4": four, "speedup": speedup}
            out["rate"] = rate
            store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if "ladder" in out:
        lad = out["ladder"]
        print(
            f"features ladder, level {lad['level']} through source on local: {lad['original_lines']} -> {lad['lines']}"
            f" lines in {lad['probes']} probes ({lad['probes_pipeline']} source + {lad['probes_native']} native),"
            f" {lad['wall_s']} s  [target: <= 15 lines, <= 120 probes]"
        )
    lg = out["long"]
    print(
        f"200-line function through source on local: {lg['original_lines']} -> {lg['lines']} lines in"
        f" {lg['probes']} probes, {lg['wall_s']} s  [target: <= 10 lines]"
    )
    for cluster, r in out["rate"].items():
        one, four = r["parallel_1"], r["parallel_4"]
        print(
            f"{cluster}: {one['probes_per_s']} probes/s ({one['probes']} probes, {one['wall_s']} s);"
            f" --parallel 4: {four['probes_per_s']} probes/s ({four['probes']} probes, {four['wall_s']} s);"
            f" speed-up {r['speedup']}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
