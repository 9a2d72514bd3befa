"""Benchmark: the client's own cost per probe on the local cluster, outside the job.

Usage::

    python bench/overhead.py [-n 40] [--repeat 5] [--json]

It sweeps a ladder of n no-op levels (each one a tiny generated function) on the built-in local
cluster with `--fresh`, in this process, and splits the sweep's wall time into

- the jobs: each probe's process, from the moment the cluster starts it to the moment it has
  exited (JobResult timing `process`). That is the fresh interpreter the probe needs whatever
  the client does: its start, the runner's stages (`startup`, `deserialize`, `execute`,
  `serialize`, shown apart), the runner's own bookkeeping around them and the interpreter's exit;
- the client's own overhead: everything else (measuring and pickling the workload, staging the
  job folder, reading meta.json and result.json, diagnosis, the journal writes and the partial
  report), per probe; shown inside a dispatch, between dispatches, and the run's fixed cost
  (before the first probe and after the last) apart. The client's CPU time per probe (this
  process, every thread, the jobs excluded) is shown too: it moves less than wall time when
  the machine is shared.

Each figure is the median of `--repeat` sweeps (the machine may be shared: medians, not means).

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
    """Seconds of one sweep, of its jobs, and the client's overhead per probe (ms)."""
    with tempfile.TemporaryDirectory(prefix="tp-overhead-") as tmp:
        folder = Path(tmp)
        ladder = noop_ladder(folder, n)
        store = Store(folder / "reports")
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        main0 = time.thread_time()
        wall0 = time.time()
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
        cpu = time.process_time() - cpu0
        main_cpu = time.thread_time() - main0
        wall1 = wall0 + total
        records = store.probes(summary.run_id)
    stages = [sum(r.observation.timings.get(s, 0.0) for s in JOB_STAGES) for r in records]
    jobs = [r.observation.job.timings.get("process", 0.0) for r in records]
    walls = [r.observation.wall_s for r in records]
    starts = [r.observation.started_at for r in records]
    fixed = (starts[0] - wall0) + (wall1 - (starts[-1] + walls[-1]))
    overhead = (total - sum(jobs)) / len(records)
    return {
        "probes": len(records),
        "sweep_s": total,
        "job_median_ms": statistics.median(jobs) * 1000,
        "runner_stages_median_ms": statistics.median(stages) * 1000,
        "job_outside_stages_median_ms": statistics.median(j - s for j, s in zip(jobs, stages, strict=True)) * 1000,
        "probe_wall_median_ms": statistics.median(walls) * 1000,
        "overhead_per_probe_ms": overhead * 1000,
        "overhead_in_dispatch_median_ms": statistics.median(w - j for w, j in zip(walls, jobs, strict=True)) * 1000,
        "overhead_between_probes_ms": (total - sum(walls) - fixed) / len(records) * 1000,
        "run_fixed_ms": fixed * 1000,
        "client_cpu_per_probe_ms": cpu / len(records) * 1000,
        "client_cpu_main_thread_per_probe_ms": main_cpu / len(records) * 1000,
        "ratio_to_target": overhead * 1000 / TARGET_MS,
        "cpus": os.cpu_count(),
    }


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the sweeps."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=40, help="no-op levels to sweep")
    parser.add_argument("--repeat", type=int, default=5, help="sweeps; each figure is their median")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    measure(min(args.n, 5))  # warm-up: the first sweep pays for imports and the runner's staging
    figures = medians([measure(args.n) for _ in range(max(1, args.repeat))])
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"{figures['probes']:g} no-op probes on local in {figures['sweep_s']:.2f} s"
        f" (median of {max(1, args.repeat)} sweeps, {figures['cpus']:g} CPUs)"
    )
    print(f"  job: process start to exit, median  {figures['job_median_ms']:7.1f} ms")
    print(f"    runner stages (startup..serialize) {figures['runner_stages_median_ms']:7.1f} ms")
    print(f"    runner bookkeeping, exit           {figures['job_outside_stages_median_ms']:7.1f} ms")
    print(f"  probe wall, median                  {figures['probe_wall_median_ms']:7.1f} ms")
    print(f"  client overhead per probe           {figures['overhead_per_probe_ms']:7.1f} ms")
    print(f"    inside a dispatch (median)        {figures['overhead_in_dispatch_median_ms']:7.1f} ms")
    print(f"    between dispatches (journal...)   {figures['overhead_between_probes_ms']:7.1f} ms")
    print(f"    the run's fixed cost, in all      {figures['run_fixed_ms']:7.1f} ms")
    print(f"  client CPU per probe (all threads)  {figures['client_cpu_per_probe_ms']:7.1f} ms")
    print(f"    of it in the probe's own thread   {figures['client_cpu_main_thread_per_probe_ms']:7.1f} ms")
    print(f"  ratio to the {TARGET_MS:g} ms target           {figures['ratio_to_target']:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
