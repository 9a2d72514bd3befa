"""`probe check` against `probe measure` on the same files: the ratio of their median times.

    python bench/check.py --summary probe-summary.json [PATH] [-n 5]

Both parse every file once and measure every function statically; check then compares with the
run's thresholds. The target is a ratio of at most 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from threshold_probe.check import check_paths, load_summary_file, rules_from_summary
from threshold_probe.metrics import measure_paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", default=str(Path(__file__).resolve().parents[1] / "threshold_probe"))
    parser.add_argument("--summary", required=True, help="a `probe bisect --isolate --json` summary file")
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args()
    rules, _ = rules_from_summary(load_summary_file(Path(args.summary)))
    measure, check = [], []
    for _ in range(args.n):
        t0 = time.perf_counter()
        m = measure_paths([args.path])
        measure.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c = check_paths([args.path], rules)
        check.append(time.perf_counter() - t0)
    med_m, med_c = statistics.median(measure), statistics.median(check)
    sys.stdout.write(
        f"{len(m.functions)} functions, {c.files} files\n"
        f"measure median {med_m * 1000:.1f} ms\ncheck   median {med_c * 1000:.1f} ms\n"
        f"check / measure: {med_c / med_m:.2f}x (target <= 1)\n"
    )


if __name__ == "__main__":
    main()
