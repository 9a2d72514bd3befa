"""How long submitit's `job.result()` waits for a SLURM job killed before it wrote its result.

Usage: SLURM_CONF=/path/to/slurm.conf python scripts/submitit-lost-job-wait.py FOLDER BOUND_S

Submits `time.sleep(600)` with submitit's SlurmExecutor, `scancel`s it 2 s after it runs, then
waits on `job.result()` in a thread for at most BOUND_S seconds and prints what happened.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import submitit


def sleepy() -> None:
    time.sleep(600)


def squeue_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def main() -> None:
    folder, bound = sys.argv[1], float(sys.argv[2])
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
    ex.update_parameters(time=5, mem="200M", cpus_per_task=1)
    job = ex.submit(sleepy)
    while squeue_state(job.job_id) != "RUNNING":
        time.sleep(0.5)
    time.sleep(2)
    subprocess.run(["scancel", job.job_id], check=True)
    killed = time.time()
    out: dict[str, str] = {}

    def wait() -> None:
        try:
            job.result()
            out["r"] = "returned"
        except Exception as exc:
            out["r"] = f"{type(exc).__name__}: {str(exc)[:300]}"

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    t.join(bound)
    print(f"job {job.job_id} scancelled; squeue now: {squeue_state(job.job_id)!r}")
    print(f"job.state={job.state!r}; result() after {time.time() - killed:.1f}s: {out.get('r', 'STILL WAITING')}")


if __name__ == "__main__":
    main()
