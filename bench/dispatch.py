"""Benchmark: what one probe over SSH costs, against the floor of the connection and interpreter.

Usage::

    python bench/dispatch.py [--config testbed.toml] [--cluster testbed-ssh] [-n 30] [--json]

Without --config it starts the loopback testbed (tests/testbed) in a temporary folder, without
SLURM, and stops it afterwards. On one reused connection it measures, as medians of n rounds in
which every figure is taken once (so that a busy machine slows them alike and the ratios hold):

- floor `true`: `exec_command("true")`, one SSH round trip;
- floor `python -S -c pass`: the bare start of the cluster's interpreter (what the launcher,
  which runs each job under its limits, costs on top of the job's own interpreter);
- floor `import cloudpickle`: `python -c "import cloudpickle"` with the cluster's interpreter;
- a minimal probe: a function that returns a constant, through the native pipeline, end to end
  (pickle here, stage, run under the runner in a fresh interpreter, fetch meta/result/logs, read
  them). Target: at most 1.3x the `import cloudpickle` floor;
- a level-1 probe: level 1 of the default ladder through the same path. Target: at most 2.0x;
- the stages of both (stage_in, startup, deserialize, execute, serialize, stage_out);
- 8 minimal probes at once over the one connection (one channel each, `--parallel 8`), against
  the same 8 one after another with no pause between them: the wall time of each and the
  throughput in probes per second.

After each timed call the bench pauses --gap-ms (30 ms by default, untimed): the client's own work
between two probes of a run (journal, diagnosis). The SSH cluster starts the next probe's
launcher after each probe, so with the pause it is ready when the next probe comes; the 8 probes
one after another show the cost without it.

Prints ratios, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from threshold_probe.clusters import make_cluster  # noqa: E402
from threshold_probe.clusters.ssh import SSHCluster  # noqa: E402
from threshold_probe.config import load_config  # noqa: E402
from threshold_probe.ladder import load_ladder  # noqa: E402
from threshold_probe.ladder.workload import Workload  # noqa: E402
from threshold_probe.models import Limits  # noqa: E402
from threshold_probe.pipelines import make_pipeline  # noqa: E402
from threshold_probe.pipelines.base import ProbeSlot, dispatch_probes  # noqa: E402

#: Targets, as ratios to the `import cloudpickle` floor measured in the same run.
TARGET_MINIMAL = 1.3
TARGET_LEVEL1 = 2.0
#: Probes at once over one connection, for the throughput rows.
BATCH = 8


def interleaved(
    fns: dict[str, Callable[[], Any]], n: int, warmup: int = 3, gap_s: float = 0.0
) -> dict[str, list[float]]:
    """Wall times of each fn over n rounds (one call of each per round), after warm-up rounds,
    with an untimed pause of gap_s after each call."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + n):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
            time.sleep(gap_s)
    return times


def measure(config_path: Path, cluster_name: str, n: int, gap_s: float = 0.03) -> dict[str, Any]:
    """All the figures for one cluster, as a dict (seconds)."""
    cfg = load_config(config_path)
    cluster = make_cluster(cluster_name, cfg)
    if not isinstance(cluster, SSHCluster):
        raise SystemExit(f"{cluster_name} is a {cluster.kind} cluster; this benchmark is for ssh clusters")
    pipeline = make_pipeline("native")
    level1 = load_ladder("default").workload(1)
    minimal = Workload(name="minimal", source="def workload():\n    return 42\n", func_name="workload", level=1)
    stages: dict[str, dict[str, list[float]]] = {"level1": {}, "minimal": {}}
    out_dir = Path(tempfile.mkdtemp(prefix="tp-bench-"))
    counter = [0]

    def probes(workload: Workload, count: int, keep: str | None) -> None:
        slots = []
        for _ in range(count):
            counter[0] += 1
            pid = f"b{counter[0]}"
            slots.append(ProbeSlot(workload, pid, out_dir / pid))
        for obs in dispatch_probes(pipeline, cluster, Limits(), slots):
            if obs.job.infra_error or obs.job.exit_code != 0:
                raise SystemExit(f"probe failed: {obs.job.infra_error or obs.job.stderr_tail[-500:]}")
            if keep is not None:
                for k, v in obs.timings.items():
                    stages[keep].setdefault(k, []).append(v)

    def sequential(workload: Workload, count: int) -> None:
        for _ in range(count):
            probes(workload, 1, None)

    with cluster:
        t = cluster.transport
        py = " ".join(shlex.quote(a) for a in cluster.python_argv)
        # The gap after each call stands for the client's own work between two probes of a run
        # (journal, diagnosis); the next probe's launcher starts during it.
        samples = interleaved(
            {
                "true": lambda: t.run("true"),
                "level1": lambda: probes(level1, 1, "level1"),
                "bare": lambda: t.run(f"{py} -S -c pass"),
                "minimal": lambda: probes(minimal, 1, "minimal"),
                "import": lambda: t.run(f"{py} -c 'import cloudpickle'"),
            },
            n,
            gap_s=gap_s,
        )
        # The batch rows take 8 probes a round: fewer rounds, interleaved all the same.
        batches = interleaved(
            {
                "parallel": lambda: probes(minimal, BATCH, None),
                "sequential": lambda: sequential(minimal, BATCH),
            },
            max(3, n // 3),
            warmup=1,
        )
        facts = cluster.describe()
    med = {k: statistics.median(v) for k, v in samples.items()}
    par, seq = statistics.median(batches["parallel"]), statistics.median(batches["sequential"])
    level1_all = samples["level1"]
    return {
        "cluster": cluster_name,
        "host": facts.get("host"),
        "n": n,
        "gap_s": gap_s,
        "floor_true_s": med["true"],
        "floor_bare_python_s": med["bare"],
        "floor_import_cloudpickle_s": med["import"],
        "minimal_probe_s": med["minimal"],
        "level1_probe_s": med["level1"],
        "level1_probe_p90_s": sorted(level1_all)[int(0.9 * (len(level1_all) - 1))],
        "ratio_minimal_to_import": med["minimal"] / med["import"],
        "ratio_level1_to_import": med["level1"] / med["import"],
        "ratio_level1_to_true": med["level1"] / med["true"],
        "ratio_bare_python_to_import": med["bare"] / med["import"],
        "target_ratio_minimal": TARGET_MINIMAL,
        "target_ratio_level1": TARGET_LEVEL1,
        "minimal_stages_median_s": {k: statistics.median(v) for k, v in stages["minimal"].items()},
        "level1_stages_median_s": {k: statistics.median(v) for k, v in stages["level1"].items()},
        "batch": BATCH,
        "batch_rounds": len(batches["parallel"]),
        "batch_parallel_s": par,
        "batch_sequential_s": seq,
        "throughput_parallel_per_s": BATCH / par,
        "throughput_sequential_per_s": BATCH / seq,
        "ratio_parallel_speedup": seq / par,
    }


def report(r: dict[str, Any]) -> str:
    """Human-readable lines."""
    ms = 1000.0

    def stage_line(key: str) -> str:
        return ", ".join(f"{k} {v * ms:.1f}" for k, v in r[key].items() if k != "connect")

    lines = [
        f"cluster {r['cluster']} ({r['host']}), medians of {r['n']}, {r['gap_s'] * ms:.0f} ms between calls",
        f"  floor  exec_command('true')           {r['floor_true_s'] * ms:8.2f} ms",
        f"  floor  python -S -c pass              {r['floor_bare_python_s'] * ms:8.2f} ms"
        f"   ({r['ratio_bare_python_to_import']:.2f} x import cloudpickle)",
        f"  floor  python -c 'import cloudpickle' {r['floor_import_cloudpickle_s'] * ms:8.2f} ms",
        f"  probe  minimal function               {r['minimal_probe_s'] * ms:8.2f} ms",
        f"  probe  level 1 (default ladder)       {r['level1_probe_s'] * ms:8.2f} ms"
        f"   (p90 {r['level1_probe_p90_s'] * ms:.2f} ms)",
        f"  ratio  minimal / import cloudpickle   {r['ratio_minimal_to_import']:8.2f} x"
        f"   (target <= {r['target_ratio_minimal']:.1f} x)",
        f"  ratio  level 1 / import cloudpickle   {r['ratio_level1_to_import']:8.2f} x"
        f"   (target <= {r['target_ratio_level1']:.1f} x)",
        f"  ratio  level 1 / true                 {r['ratio_level1_to_true']:8.2f} x",
        f"  minimal stages (median ms): {stage_line('minimal_stages_median_s')}",
        f"  level-1 stages (median ms): {stage_line('level1_stages_median_s')}",
        f"  {r['batch']} minimal probes, medians of {r['batch_rounds']}:",
        f"    at once (one channel each)          {r['batch_parallel_s'] * ms:8.2f} ms"
        f"   {r['throughput_parallel_per_s']:6.1f} probes/s",
        f"    one after another                   {r['batch_sequential_s'] * ms:8.2f} ms"
        f"   {r['throughput_sequential_per_s']:6.1f} probes/s",
        f"  ratio  throughput at once / one after another {r['ratio_parallel_speedup']:5.2f} x",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; starts the testbed when no config is given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="probe.toml naming the cluster (default: start the testbed)")
    parser.add_argument("--cluster", default="testbed-ssh")
    parser.add_argument("-n", type=int, default=30, help="runs per figure (median), at least 30 by default")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=30.0,
        help="untimed pause after each call: the client's own work between probes (default 30)",
    )
    args = parser.parse_args(argv)
    state_dir: Path | None = None
    config = args.config
    if config is None:
        from tests.testbed import testbed as tb

        state_dir = Path(tempfile.mkdtemp(prefix="tp-bench-testbed-"))
        config = tb.start(state_dir / "probe.toml", state_dir, slurm=False).config_path
    try:
        result = measure(config, args.cluster, args.n, args.gap_ms / 1000.0)
    finally:
        if state_dir is not None:
            from tests.testbed import testbed as tb

            tb.stop(state_dir)
    sys.stdout.write((json.dumps(result, indent=2) if args.json else report(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
