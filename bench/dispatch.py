"""Benchmark: what one probe over SSH costs, against the floor of the connection and interpreter.

Usage::

    python bench/dispatch.py [--config testbed.toml] [--cluster testbed-ssh] [-n 30] [--json]

Without --config it starts the loopback testbed (tests/testbed) in a temporary folder, without
SLURM, and stops it afterwards. On one reused connection it measures, as medians of n runs:

- floor `true`: `exec_command("true")`, one SSH round trip;
- floor `import cloudpickle`: `python -c "import cloudpickle"` with the cluster's interpreter;
- a level-1 probe: level 1 of the default ladder through the native pipeline, end to end
  (pickle here, stage, run under the runner, fetch meta/result/logs, read them);
- a minimal probe: a function that returns a constant, through the same path;

and prints the ratios. Target: a level-1 probe costs at most 3x the `import cloudpickle` floor.
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

TARGET = 3.0


def interleaved(fns: dict[str, Callable[[], Any]], n: int, warmup: int = 3) -> dict[str, list[float]]:
    """Wall times of each fn over n rounds (one call of each per round), after warm-up rounds."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + n):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


def measure(config_path: Path, cluster_name: str, n: int) -> dict[str, Any]:
    """All the figures for one cluster, as a dict (seconds)."""
    cfg = load_config(config_path)
    cluster = make_cluster(cluster_name, cfg)
    if not isinstance(cluster, SSHCluster):
        raise SystemExit(f"{cluster_name} is a {cluster.kind} cluster; this benchmark is for ssh clusters")
    pipeline = make_pipeline("native")
    level1 = load_ladder("default").workload(1)
    minimal = Workload(name="minimal", source="def workload():\n    return 42\n", func_name="workload", level=1)
    stages: dict[str, list[float]] = {}
    out_dir = Path(tempfile.mkdtemp(prefix="tp-bench-"))
    counter = [0]

    def probe(workload: Workload, keep_stages: bool) -> None:
        counter[0] += 1
        pid = f"b{counter[0]}"
        obs = pipeline.dispatch(workload, cluster, pid, Limits(), out_dir / pid)
        if obs.job.infra_error or obs.job.exit_code != 0:
            raise SystemExit(f"probe failed: {obs.job.infra_error or obs.job.stderr_tail[-500:]}")
        if keep_stages:
            for k, v in obs.timings.items():
                stages.setdefault(k, []).append(v)

    with cluster:
        t = cluster.transport
        py = " ".join(shlex.quote(a) for a in cluster.python_argv)
        # Interleaved, so that a busy machine slows every figure alike and the ratios hold.
        samples = interleaved(
            {
                "true": lambda: t.run("true"),
                "import": lambda: t.run(f"{py} -c 'import cloudpickle'"),
                "level1": lambda: probe(level1, True),
                "minimal": lambda: probe(minimal, False),
            },
            n,
        )
        facts = cluster.describe()
    floor_true = statistics.median(samples["true"])
    floor_import = statistics.median(samples["import"])
    level1_all = samples["level1"]
    level1_s = statistics.median(level1_all)
    minimal_s = statistics.median(samples["minimal"])
    return {
        "cluster": cluster_name,
        "host": facts.get("host"),
        "n": n,
        "floor_true_s": floor_true,
        "floor_import_cloudpickle_s": floor_import,
        "level1_probe_s": level1_s,
        "level1_probe_p90_s": sorted(level1_all)[int(0.9 * (len(level1_all) - 1))],
        "minimal_probe_s": minimal_s,
        "ratio_level1_to_import": level1_s / floor_import,
        "ratio_level1_to_true": level1_s / floor_true,
        "ratio_minimal_to_import": minimal_s / floor_import,
        "level1_stages_median_s": {k: statistics.median(v) for k, v in stages.items()},
        "target_ratio": TARGET,
    }


def report(r: dict[str, Any]) -> str:
    """Human-readable lines."""
    ms = 1000.0
    lines = [
        f"cluster {r['cluster']} ({r['host']}), medians of {r['n']}",
        f"  floor  exec_command('true')           {r['floor_true_s'] * ms:8.2f} ms",
        f"  floor  python -c 'import cloudpickle' {r['floor_import_cloudpickle_s'] * ms:8.2f} ms",
        f"  probe  level 1 (default ladder)       {r['level1_probe_s'] * ms:8.2f} ms"
        f"   (p90 {r['level1_probe_p90_s'] * ms:.2f} ms)",
        f"  probe  minimal function               {r['minimal_probe_s'] * ms:8.2f} ms",
        f"  ratio  level 1 / import cloudpickle   {r['ratio_level1_to_import']:8.2f} x"
        f"   (target <= {r['target_ratio']:.1f} x)",
        f"  ratio  level 1 / true                 {r['ratio_level1_to_true']:8.2f} x",
        f"  ratio  minimal / import cloudpickle   {r['ratio_minimal_to_import']:8.2f} x",
        "  level-1 stages (median ms): "
        + ", ".join(f"{k} {v * ms:.1f}" for k, v in r["level1_stages_median_s"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; starts the testbed when no config is given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="probe.toml naming the cluster (default: start the testbed)")
    parser.add_argument("--cluster", default="testbed-ssh")
    parser.add_argument("-n", type=int, default=30, help="runs per figure (median), at least 30 by default")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    args = parser.parse_args(argv)
    state_dir: Path | None = None
    config = args.config
    if config is None:
        from tests.testbed import testbed as tb

        state_dir = Path(tempfile.mkdtemp(prefix="tp-bench-testbed-"))
        config = tb.start(state_dir / "probe.toml", state_dir, slurm=False).config_path
    try:
        result = measure(config, args.cluster, args.n)
    finally:
        if state_dir is not None:
            from tests.testbed import testbed as tb

            tb.stop(state_dir)
    sys.stdout.write((json.dumps(result, indent=2) if args.json else report(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
