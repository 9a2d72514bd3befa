"""SLURM dispatch benchmark on the loopback testbed: ratios, not pass/fail timings.

Measures, in one run:

- the floor: `sbatch --wait --wrap 'python3 -c pass'` on the controller's machine (median of N);
- submit-to-verdict of a level-1 probe of the default ladder through `testbed-slurm` (over SSH,
  native pipeline, diagnosis included), median of at least 10; target: at most 1.3x the floor;
- a 16-level sweep as one `sbatch --array` against 16 single submissions (sent together, and
  one after the other).

Usage: `python bench/slurm.py [--config probe.toml] [--repeat 10]`. Without --config it starts a
testbed of its own in a temporary folder and stops it at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from threshold_probe.clusters import make_cluster  # noqa: E402
from threshold_probe.clusters.slurm import SlurmCluster  # noqa: E402
from threshold_probe.config import SlurmClusterConfig, load_config  # noqa: E402
from threshold_probe.diagnose import diagnose  # noqa: E402
from threshold_probe.ladder import generate, load_ladder  # noqa: E402
from threshold_probe.models import JobResult  # noqa: E402
from threshold_probe.pipelines import make_pipeline  # noqa: E402

CLUSTER = "testbed-slurm"


@contextlib.contextmanager
def testbed(config: Path | None) -> Iterator[Path]:
    """The given testbed config, or a fresh testbed started for this run."""
    if config is not None:
        yield config
        return
    from tests.testbed import testbed as tb

    state = Path(tempfile.mkdtemp(prefix="tp-bench-slurm-"))
    state.chmod(0o755)
    try:
        tb.start(state / "probe.toml", state)
        yield state / "probe.toml"
    finally:
        tb.stop(state)
        shutil.rmtree(state, ignore_errors=True)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def floor(slurm_conf: str, n: int) -> list[float]:
    """`sbatch --wait --wrap 'python3 -c pass'`, n times, in a scratch folder."""
    env = {**os.environ, "SLURM_CONF": slurm_conf}
    scratch = Path(tempfile.mkdtemp(prefix="tp-bench-floor-"))
    times = []
    try:
        for _ in range(n):
            times.append(
                timed(
                    lambda: subprocess.run(
                        ["sbatch", "--wait", "--quiet", "-o", "/dev/null", "--wrap", "python3 -c pass"],
                        cwd=scratch,
                        env=env,
                        check=True,
                        timeout=120,
                    )
                )
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return times


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="a testbed probe.toml (default: start one)")
    parser.add_argument("--repeat", type=int, default=10, help="probes for the level-1 median (>= 10)")
    parser.add_argument("--floor-repeat", type=int, default=5)
    args = parser.parse_args(argv)
    repeat = max(10, args.repeat)

    with testbed(args.config) as config_path:
        config = load_config(config_path)
        slurm_cfg = config.cluster(CLUSTER)
        assert isinstance(slurm_cfg, SlurmClusterConfig) and slurm_cfg.slurm_conf
        ladder = load_ladder("default")
        workload = generate(ladder.level(1).values, level=1)
        pipeline = make_pipeline("native")
        limits = slurm_cfg.limits()
        work = Path(tempfile.mkdtemp(prefix="tp-bench-slurm-work-"))

        cluster = make_cluster(CLUSTER, config)
        assert isinstance(cluster, SlurmCluster)
        try:
            cluster.open()
            # Warm up: the connection and the runner upload happen once per cluster, not per probe.
            pipeline.dispatch(workload, cluster, "warmup", limits, work / "warmup")

            floor_times = floor(slurm_cfg.slurm_conf, args.floor_repeat)

            probe_times, queue_times, verdicts = [], [], []
            for i in range(repeat):
                t0 = time.perf_counter()
                obs = pipeline.dispatch(workload, cluster, f"bench-{i}", limits, work / f"bench-{i}")
                verdict = diagnose(obs)
                probe_times.append(time.perf_counter() - t0)
                queue_times.append(obs.job.timings.get("queue", float("nan")))
                verdicts.append(verdict.status)

            jobs = [pipeline.build(workload, f"arr-{i}", limits, work / f"arr-{i}") for i in range(16)]
            before = len(cluster.submissions)
            array_s = timed(lambda: cluster.execute_many(jobs))
            array_submits = len(cluster.submissions) - before

            singles = [pipeline.build(workload, f"one-{i}", limits, work / f"one-{i}") for i in range(16)]
            results: list[JobResult] = []
            threads = [threading.Thread(target=lambda j=j: results.append(cluster.execute(j))) for j in singles]

            def together() -> None:
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()

            before = len(cluster.submissions)
            together_s = timed(together)
            together_submits = len(cluster.submissions) - before
            seq = [pipeline.build(workload, f"seq-{i}", limits, work / f"seq-{i}") for i in range(16)]
            sequential_s = timed(lambda: [cluster.execute(j) for j in seq])
            queries = dict(cluster.watcher.queries)
        finally:
            cluster.cancel_all()
            cluster.close()
            shutil.rmtree(work, ignore_errors=True)

    f_med = statistics.median(floor_times)
    p_med = statistics.median(probe_times)
    print("SLURM dispatch benchmark (loopback testbed, submission over SSH)")
    print(
        f"  floor  sbatch --wait --wrap 'python3 -c pass': median {f_med:.3f}s "
        f"(min {min(floor_times):.3f}s, n={len(floor_times)})"
    )
    print(
        f"  level-1 probe, submit to verdict:              median {p_med:.3f}s "
        f"(min {min(probe_times):.3f}s, n={len(probe_times)}; queue median "
        f"{statistics.median(queue_times):.3f}s; verdicts {sorted(set(verdicts))})"
    )
    print(f"  ratio probe / floor: {p_med / f_med:.2f}x (target <= 1.3x)")
    print(f"  16-level sweep as one array:       {array_s:.2f}s ({array_submits} sbatch)")
    print(f"  16 single submissions, together:   {together_s:.2f}s ({together_submits} sbatch)")
    print(f"  16 single submissions, one by one: {sequential_s:.2f}s (16 sbatch)")
    print(
        f"  ratio singles-together / array: {together_s / array_s:.2f}x; "
        f"one-by-one / array: {sequential_s / array_s:.2f}x"
    )
    print(f"  watcher queries for the whole run: {queries}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
