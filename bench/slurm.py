"""SLURM dispatch benchmark on the loopback testbed: ratios, not pass/fail timings.

Measures, in one run:

- the floor: the fastest hand-written submission on the controller's machine, `sbatch --parsable`,
  then `scontrol show job -o ID` every 50 ms until the job ends, then reading its output file
  (median of N); and, for reference, `sbatch --wait` (SLURM polls every 2 s there);
- submit-to-verdict of a level-1 probe of the default ladder through `testbed-slurm` (over SSH,
  native pipeline, diagnosis included), median of at least 10; target: at most 1.2x the floor;
- the scheduler's share of both, from its own times (StartTime - SubmitTime, EndTime - StartTime,
  whole seconds in SLURM 22.05), apart from the rest (submission, watching, fetching, diagnosis);
- a 16-level sweep as one `sbatch --array` against 16 single submissions (sent together, and
  one after the other).

Usage: `python bench/slurm.py [--config probe.toml] [--repeat 10] [--poll-interval S]`.
`--poll-interval` overrides the cluster's `poll_interval` (the testbed's is 0.2 s). Without --config it starts a
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
from collections.abc import Callable, Iterator, Sequence
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


def wait_floor(slurm_conf: str, n: int) -> list[float]:
    """`sbatch --wait --wrap 'python3 -c pass'`, n times, in a scratch folder (SLURM polls every 2 s)."""
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


FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "DEADLINE")


def scontrol_fields(line: str) -> dict[str, str]:
    """`scontrol show job -o` as a dict (values have no spaces for the keys read here)."""
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def slurm_time(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def scheduler_share(fields: dict[str, str]) -> tuple[float | None, float | None]:
    """(StartTime - SubmitTime, EndTime - StartTime) from the scheduler's record, in seconds."""
    submit, start, end = (slurm_time(fields.get(k, "")) for k in ("SubmitTime", "StartTime", "EndTime"))
    queue = start - submit if start is not None and submit is not None else None
    run = end - start if end is not None and start is not None else None
    return queue, run


def polled_floor(slurm_conf: str, n: int, interval: float = 0.05) -> tuple[list[float], list[dict[str, str]]]:
    """`sbatch --parsable`, `scontrol show job` every `interval` s until it ends, then the output read.

    The fastest a hand-written script gets: no SSH, no staging, a tight poll. Returns the wall
    times and the scheduler's last record of each job.
    """
    env = {**os.environ, "SLURM_CONF": slurm_conf}
    scratch = Path(tempfile.mkdtemp(prefix="tp-bench-floor-"))
    times, records = [], []
    try:
        for i in range(n):
            out = scratch / f"out-{i}.txt"
            t0 = time.perf_counter()
            sub = subprocess.run(
                ["sbatch", "--parsable", "-o", str(out), "--wrap", "python3 -c 'print(42)'"],
                cwd=scratch,
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
            )
            job_id = sub.stdout.strip().split(";")[0]
            fields: dict[str, str] = {}
            while True:
                res = subprocess.run(
                    ["scontrol", "show", "job", "-o", job_id], env=env, capture_output=True, text=True, timeout=60
                )
                fields = scontrol_fields(res.stdout)
                if fields.get("JobState") in FINAL:
                    break
                time.sleep(interval)
            text = out.read_text()
            times.append(time.perf_counter() - t0)
            assert text.strip() == "42", text
            records.append(fields)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return times, records


def _median(values: list[float | None]) -> float:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else float("nan")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="a testbed probe.toml (default: start one)")
    parser.add_argument("--repeat", type=int, default=10, help="probes for the level-1 median (>= 10)")
    parser.add_argument("--floor-repeat", type=int, default=10, help="jobs for the polled floor's median")
    parser.add_argument("--wait-repeat", type=int, default=3, help="jobs for the `sbatch --wait` reference")
    parser.add_argument("--poll-interval", type=float, default=None, help="override the cluster's poll_interval")
    parser.add_argument("--skip-arrays", action="store_true", help="leave out the 16-level array rows")
    args = parser.parse_args(argv)
    repeat = max(10, args.repeat)

    with testbed(args.config) as config_path:
        config = load_config(config_path)
        slurm_cfg = config.cluster(CLUSTER)
        assert isinstance(slurm_cfg, SlurmClusterConfig) and slurm_cfg.slurm_conf
        if args.poll_interval is not None:
            slurm_cfg.poll_interval = args.poll_interval
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

            floor_times, floor_records = polled_floor(slurm_cfg.slurm_conf, args.floor_repeat)
            wait_times = wait_floor(slurm_cfg.slurm_conf, args.wait_repeat) if args.wait_repeat > 0 else []

            probe_times, queue_times, verdicts = [], [], []
            probe_sched: list[tuple[float | None, float | None]] = []
            stages: dict[str, list[float]] = {}
            for i in range(repeat):
                t0 = time.perf_counter()
                obs = pipeline.dispatch(workload, cluster, f"bench-{i}", limits, work / f"bench-{i}")
                verdict = diagnose(obs)
                probe_times.append(time.perf_counter() - t0)
                queue_times.append(obs.job.timings.get("queue", float("nan")))
                probe_sched.append(scheduler_share(obs.job.scheduler))
                for name, value in {**obs.job.timings, **obs.timings}.items():
                    if name != "launched_at":
                        stages.setdefault(name, []).append(value)
                verdicts.append(verdict.status)
            before_queries = dict(cluster.watcher.queries)
            if args.skip_arrays:
                return report(
                    args,
                    floor_times,
                    floor_records,
                    wait_times,
                    probe_times,
                    queue_times,
                    probe_sched,
                    verdicts,
                    None,
                    before_queries,
                    slurm_cfg.poll_interval,
                    stages,
                )

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
    arrays = (array_s, array_submits, together_s, together_submits, sequential_s)
    return report(
        args,
        floor_times,
        floor_records,
        wait_times,
        probe_times,
        queue_times,
        probe_sched,
        verdicts,
        arrays,
        queries,
        slurm_cfg.poll_interval,
        stages,
    )


def report(
    args: argparse.Namespace,
    floor_times: list[float],
    floor_records: list[dict[str, str]],
    wait_times: list[float],
    probe_times: list[float],
    queue_times: list[float],
    probe_sched: list[tuple[float | None, float | None]],
    verdicts: Sequence[str],
    arrays: tuple[float, int, float, int, float] | None,
    queries: dict[str, int],
    poll_interval: float,
    stages: dict[str, list[float]],
) -> int:
    """Print the figures and ratios."""
    f_med = statistics.median(floor_times)
    p_med = statistics.median(probe_times)
    floor_sched = [scheduler_share(r) for r in floor_records]
    f_queue, f_run = _median([q for q, _ in floor_sched]), _median([r for _, r in floor_sched])
    p_queue, p_run = _median([q for q, _ in probe_sched]), _median([r for _, r in probe_sched])
    print(f"SLURM dispatch benchmark (loopback testbed, submission over SSH, poll_interval {poll_interval:g} s)")
    print(
        f"  floor  sbatch --parsable + scontrol every 50 ms + read output: median {f_med:.3f}s "
        f"(min {min(floor_times):.3f}s, n={len(floor_times)})"
    )
    if wait_times:
        print(
            f"  ref    sbatch --wait --wrap 'python3 -c pass':                 median "
            f"{statistics.median(wait_times):.3f}s (n={len(wait_times)})"
        )
    print(
        f"  level-1 probe, submit to verdict:                             median {p_med:.3f}s "
        f"(min {min(probe_times):.3f}s, n={len(probe_times)}; verdicts {sorted(set(verdicts))})"
    )
    print(f"  ratio probe / floor: {p_med / f_med:.2f}x (target <= 1.2x)")
    print(
        "  scheduler's share (its own SubmitTime/StartTime/EndTime, whole seconds): "
        f"floor submit->start {f_queue:.1f}s, start->end {f_run:.1f}s; "
        f"probe submit->start {p_queue:.1f}s, start->end {p_run:.1f}s"
    )
    rest = statistics.median(p - q for p, q in zip(probe_times, queue_times, strict=True))
    print(
        f"  probe queue (far-side stamps, submit to the job's first line): median "
        f"{statistics.median(queue_times):.3f}s; the rest of the probe's wall (staging, watching, "
        f"fetching, diagnosis): median {rest:.3f}s"
    )
    if arrays is not None:
        array_s, array_submits, together_s, together_submits, sequential_s = arrays
        print(f"  16-level sweep as one array:       {array_s:.2f}s ({array_submits} sbatch)")
        print(f"  16 single submissions, together:   {together_s:.2f}s ({together_submits} sbatch)")
        print(f"  16 single submissions, one by one: {sequential_s:.2f}s (16 sbatch)")
        print(
            f"  ratio singles-together / array: {together_s / array_s:.2f}x; "
            f"one-by-one / array: {sequential_s / array_s:.2f}x"
        )
    print(f"  watcher queries: {queries}")
    print("  probe stages, medians: " + ", ".join(f"{k} {statistics.median(v):.3f}s" for k, v in stages.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
