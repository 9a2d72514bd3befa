"""Benchmark: `probe measure` against radon's own command-line tools, on real source trees.

Usage::

    python bench/measure.py [--repeat 3] [--json] [PATH ...]

Without PATH it measures the installed packages of paramiko and rich (their site-packages
folders). For each tree it times, as the best of `--repeat` runs:

- the floor: radon's four CLIs run one after another, each with `-j` (`radon cc`, `radon raw`,
  `radon hal`, `radon mi`), output discarded;
- `probe measure TREE --json` (static: one parse per file, no import, no pickled size);

and prints the ratio. Target: at most 0.5x the floor. Also prints the peak RSS of `probe measure`
(from wait4), which should stay flat as trees grow. Prints ratios, not pass/fail.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

TARGET = 0.5
BIN = Path(sys.executable).parent


def tree_of(package: str) -> Path:
    """The folder an installed package lives in."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def run(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KB) of one command, output discarded."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    took = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed: status {status}")
    return took, int(usage.ru_maxrss)


def best(argvs: list[list[str]], repeat: int) -> tuple[float, int]:
    """The best total wall time of running the commands in turn, and the highest peak RSS."""
    times, peaks = [], []
    for _ in range(repeat):
        total, peak = 0.0, 0
        for argv in argvs:
            took, rss = run(argv)
            total += took
            peak = max(peak, rss)
        times.append(total)
        peaks.append(peak)
    return min(times), max(peaks)


def measure(tree: Path, repeat: int) -> dict[str, Any]:
    radon = str(BIN / "radon")
    jobs = str(os.cpu_count() or 1)
    floor, _ = best([[radon, sub, "-j", "-O", os.devnull, str(tree)] for sub in ("cc", "raw", "hal", "mi")], repeat)
    ours, peak = best([[str(BIN / "probe"), "measure", str(tree), "--json"]], repeat)
    files = sum(1 for _ in tree.rglob("*.py"))
    return {
        "tree": str(tree),
        "files": files,
        "jobs": int(jobs),
        "radon_four_clis_s": floor,
        "probe_measure_s": ours,
        "probe_measure_peak_rss_mb": peak / 1024,
        "ratio": ours / floor,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="source trees (default: paramiko's and rich's)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, the best counts")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    trees = [Path(p) for p in args.paths] or [tree_of("paramiko"), tree_of("rich")]
    rows = [measure(t, args.repeat) for t in trees]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['tree']} ({r['files']} files): radon cc+raw+hal+mi -j {r['radon_four_clis_s']:.2f} s,"
            f" probe measure {r['probe_measure_s']:.2f} s (peak {r['probe_measure_peak_rss_mb']:.0f} MB):"
            f" {r['ratio']:.2f}x (target <= {TARGET}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
