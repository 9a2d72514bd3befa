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

`--flat-memory` adds one row: the peak RSS of `probe measure --json` on generated trees of 10,000
and 100,000 small functions (100 a file, in a temporary folder), and their ratio; `--no-trees`
leaves out the radon comparison.
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


def generated_tree(root: Path, functions: int, per_file: int = 100) -> Path:
    """A folder of `functions` small functions, `per_file` a file."""
    root.mkdir(parents=True, exist_ok=True)
    for f in range(functions // per_file):
        lines = ["import subprocess", ""]
        for i in range(per_file):
            lines += [
                f"def f_{f}_{i}(x, y=1):",
                f"    if x > {i}:",
                f"        return [x, y, {i}]",
                "    return {'a': x}",
                "",
            ]
        (root / f"m{f:05d}.py").write_text("\n".join(lines))
    return root


def flat_memory() -> dict[str, Any]:
    """Peak RSS of `probe measure --json` on 10,000 and on 100,000 generated functions."""
    import tempfile

    row: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tp-bench-measure-") as tmp:
        for n in (10_000, 100_000):
            tree = generated_tree(Path(tmp) / str(n), n)
            took, peak = run([str(BIN / "probe"), "measure", str(tree), "--json"])
            row[f"{n}_s"], row[f"{n}_peak_rss_mb"] = took, peak / 1024
    row["peak_ratio"] = row["100000_peak_rss_mb"] / row["10000_peak_rss_mb"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="source trees (default: paramiko's and rich's)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, the best counts")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--flat-memory", action="store_true", help="add the 10k/100k-function peak RSS row")
    parser.add_argument("--no-trees", action="store_true", help="leave out the radon comparison")
    args = parser.parse_args()
    trees = [] if args.no_trees else [Path(p) for p in args.paths] or [tree_of("paramiko"), tree_of("rich")]
    rows = [measure(t, args.repeat) for t in trees]
    memory = flat_memory() if args.flat_memory else None
    if args.json:
        print(json.dumps({"trees": rows, "flat_memory": memory}, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['tree']} ({r['files']} files): radon cc+raw+hal+mi -j {r['radon_four_clis_s']:.2f} s,"
            f" probe measure {r['probe_measure_s']:.2f} s (peak {r['probe_measure_peak_rss_mb']:.0f} MB):"
            f" {r['ratio']:.2f}x (target <= {TARGET}x)"
        )
    if memory is not None:
        print(
            f"probe measure --json peak RSS: 10,000 functions {memory['10000_peak_rss_mb']:.0f} MB"
            f" ({memory['10000_s']:.1f} s), 100,000 functions {memory['100000_peak_rss_mb']:.0f} MB"
            f" ({memory['100000_s']:.1f} s): {memory['peak_ratio']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
