"""Benchmark: the client's own cost per probe on the local cluster, outside the job.

Usage::

    python bench/overhead.py [-n 40] [--json]

It sweeps a ladder of n no-op levels (each one a tiny generated function) on the built-in local
cluster with `--fresh`, in this process, and splits the sweep's wall time into

- the jobs: each probe's interpreter start, deserialize, execute and serialize, as the runner
  and the cluster measured them (stages `startup`, `deserialize`, `execute`, `serialize`);
- the client's own overhead: everything else (building and pickling the workload, staging the
  job folder, waiting for the process, reading meta.json and result.json, diagnosis, the journal
  writes and the partial report), per probe.

Target: the overhead is at most 5 ms a probe. Prints figures and the ratio to the target, not
pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from threshold_probe.config import ProbeConfig  # noqa: E402
from threshold_probe.session import LimitOverrides, SearchOptions, run_search  # noqa: E402
from threshold_probe.store import Store  # noqa: E402

TARGET_MS = 5.0
JOB_STAGES = ("startup", "deserialize", "execute", "serialize")


def noop_ladder(folder: Path, n: int) -> Path:
    """A ladder of n levels that differ only in their number: each probe does next to nothing."""
    path = folder / "noop.toml"
    path.write_text(
        'name = "noop"\ndescription = "no-op levels, for the client overhead benchmark"\n\n'
        f"[ramp]\ncount = {n}\nloc = {{ start = 12, step = 0 }}\n"
    )
    return path


def measure(n: int) -> dict[str, Any]:
    """Seconds of the sweep, of its jobs, and the overhead per probe."""
    with tempfile.TemporaryDirectory(prefix="tp-overhead-") as tmp:
        folder = Path(tmp)
        ladder = noop_ladder(folder, n)
        store = Store(folder / "reports")
        t0 = time.perf_counter()
        summary = run_search(
            "sweep",
            config=ProbeConfig(),
            store=store,
            cluster="local",
            pipeline="native",
            ladder=str(ladder),
            overrides=LimitOverrides(),
            options=SearchOptions(fresh=True, preflight=False),
            progress=None,
        )
        total = time.perf_counter() - t0
        records = store.probes(summary.run_id)
    jobs = [sum(r.observation.timings.get(s, 0.0) for s in JOB_STAGES) for r in records]
    walls = [r.observation.wall_s for r in records]
    overhead = (total - sum(jobs)) / len(records)
    inside_probe = statistics.median(w - j for w, j in zip(walls, jobs, strict=True))
    return {
        "probes": len(records),
        "sweep_s": total,
        "job_median_ms": statistics.median(jobs) * 1000,
        "probe_wall_median_ms": statistics.median(walls) * 1000,
        "overhead_per_probe_ms": overhead * 1000,
        "overhead_in_dispatch_median_ms": inside_probe * 1000,
        "overhead_between_probes_ms": (total - sum(walls)) / len(records) * 1000,
        "ratio_to_target": overhead * 1000 / TARGET_MS,
        "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=40, help="no-op levels to sweep")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = measure(args.n)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{figures['probes']} no-op probes on local in {figures['sweep_s']:.2f} s")
    print(f"  job (startup..serialize), median   {figures['job_median_ms']:7.1f} ms")
    print(f"  probe wall, median                 {figures['probe_wall_median_ms']:7.1f} ms")
    print(f"  client overhead per probe          {figures['overhead_per_probe_ms']:7.1f} ms")
    print(f"    inside a dispatch (median)       {figures['overhead_in_dispatch_median_ms']:7.1f} ms")
    print(f"    between dispatches (journal...)  {figures['overhead_between_probes_ms']:7.1f} ms")
    print(f"  ratio to the {TARGET_MS:g} ms target          {figures['ratio_to_target']:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
