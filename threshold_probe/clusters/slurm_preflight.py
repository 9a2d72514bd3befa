"""SLURM preflight: controller, partition, workdir, staged files, and a real job on a compute node."""

from __future__ import annotations

import secrets
import shlex
from typing import Protocol

import threshold_probe.clusters.pickle_check as pickle_check
from threshold_probe.clusters.base import Check
from threshold_probe.clusters.slurm_script import ScriptTask, render_job_script
from threshold_probe.clusters.slurm_state import base_state, parse_record, sbatch_error_line
from threshold_probe.clusters.staging import remote_verify_script
from threshold_probe.clusters.transport import CommandResult, TransportError
from threshold_probe.config import SlurmClusterConfig
from threshold_probe.models import Limits
from threshold_probe.units import format_memory

#: Prefix of the scontrol record of a check job that failed, in the check's output.
JOB_MARK = "TPJOB "
#: How a check job ends when someone or something outside ended it.
OUTSIDE_ENDS = frozenset({"CANCELLED", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "REVOKED"})


class Shell(Protocol):
    """A shell command on the submit host, with SLURM's environment."""

    def __call__(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None) -> CommandResult: ...


def slurm_preflight(sh: Shell, config: SlurmClusterConfig, wd: str) -> tuple[list[Check], dict[str, str] | None]:
    """The checks, and what was seen of the far side (python, cloudpickle, hostname) when a job ran."""
    checks: list[Check] = []
    try:
        res = sh("sinfo -h -o '%P|%a|%D|%T'", timeout=60)
    except TransportError as exc:
        return [Check(name="controller", status="fail", detail=str(exc), fix="check the login node")], None
    if not res.ok:
        line = sbatch_error_line(res.error_text())
        return [
            Check(
                name="controller",
                status="fail",
                detail=f"sinfo failed: {line}",
                fix="check that SLURM runs and slurm_conf points at its slurm.conf",
            )
        ], None
    partitions = {}
    for line in res.text().splitlines():
        p = line.split("|")
        if len(p) >= 2:
            partitions[p[0].rstrip("*")] = (p[0].endswith("*"), p[1])
    checks.append(Check(name="controller", status="ok", detail=f"sinfo lists {len(partitions)} partition(s)"))
    if config.partition:
        if config.partition not in partitions:
            checks.append(
                Check(
                    name="partition",
                    status="fail",
                    detail=f"partition {config.partition!r} does not exist",
                    fix=f"use one of: {', '.join(sorted(partitions)) or 'none'}",
                    bad_input=True,
                )
            )
            # A test job would only be refused for the same reason.
            return checks, None
        elif partitions[config.partition][1] != "up":
            checks.append(
                Check(
                    name="partition",
                    status="warn",
                    detail=f"partition {config.partition!r} is {partitions[config.partition][1]}",
                )
            )
        else:
            checks.append(Check(name="partition", status="ok", detail=f"partition {config.partition!r} is up"))
    q = shlex.quote
    check_dir = f"{wd}/jobs/preflight-{secrets.token_hex(3)}"
    res = sh(
        f"umask 077; mkdir -p {q(check_dir)} && touch {q(check_dir)}/.w && df -Pk {q(wd)} | tail -1",
        timeout=60,
    )
    if not res.ok:
        checks.append(
            Check(
                name="workdir",
                status="fail",
                detail=f"{wd}: {res.error_text() or 'not writable'}",
                fix="set clusters.<name>.workdir to a writable folder on a shared filesystem",
            )
        )
        return checks, None
    checks.append(Check(name="workdir", status="ok", detail=f"{wd} is writable and private"))
    checks.extend(check_staged(sh, wd))
    # A real pickle made here, loaded and run on a compute node (see pickle_check).
    code = pickle_check.check_script()
    script = render_job_script(
        config,
        Limits(memory_bytes=256 * 1024**2, time_s=120, cores=1),
        [ScriptTask(folder=check_dir, argv=[config.python, "-c", code])],
        job_name="tp-preflight",
        output=f"{check_dir}/out.log",
        error=f"{check_dir}/out.log",
    )
    # The job's end as scontrol saw it, so that a job cancelled from outside or lost with its node
    # is not blamed on the interpreter (sbatch --wait exits 0 for a job cancelled while pending).
    res = sh(
        f"umask 077; cd {q(check_dir)} && cat > job.sh && sbatch --wait --parsable job.sh > job.id; "
        f"rc=$?; cat out.log 2>/dev/null; "
        f'[ -s job.id ] && scontrol show job -o "$(cut -d";" -f1 job.id)" 2>/dev/null '
        f"| sed 's/^/{JOB_MARK}/'; cd / && rm -rf -- {q(check_dir)}; exit $rc",
        stdin=script.encode(),
        timeout=max(180.0, config.command_timeout),
    )
    out = res.text()
    facts, outcome = pickle_check.parse_output(out)
    ended = next((parse_record(ln[len(JOB_MARK) :]) for ln in out.splitlines() if ln.startswith(JOB_MARK)), {})
    state = base_state(ended.get("JobState", ""))
    if facts is None and state in OUTSIDE_ENDS:
        checks.append(
            Check(
                name="python",
                status="fail",
                detail=f"the check job on a compute node ended {state} (Reason={ended.get('Reason', 'None')})"
                f" before {config.python} printed anything",
                fix="it was ended from outside (scancel, preemption, a failed node): run the check again",
            )
        )
        return checks, None
    if facts is None:
        text = "\n".join(ln for ln in out.splitlines() if not ln.startswith(JOB_MARK))
        detail = sbatch_error_line(res.error_text() or text) if (res.error_text() or text) else "no output"
        checks.append(
            Check(
                name="python",
                status="fail",
                detail=f"{config.python} on a compute node: {detail}",
                fix="set clusters.<name>.python (and modules/setup) to a Python 3.8+ with cloudpickle",
            )
        )
        return checks, None
    # The submit host as its shell names itself: a job may land on any node of the partition
    # (the partition is in the config), so the compute node would change the fingerprint at random.
    named = sh("hostname", timeout=30)
    host = named.text().strip() if named.ok else ""
    far_side = {
        "python": str(facts.get("python")),
        "cloudpickle": str(facts.get("cloudpickle")),
        "hostname": host,
    }
    checks.extend(
        pickle_check.version_checks(
            facts,
            outcome,
            python_label=config.python,
            where="on a compute node",
            ended=f"the job failed: sbatch --wait exit status {res.exit_code}",
        )
    )
    return checks, far_side


def check_staged(sh: Shell, wd: str) -> list[Check]:
    """Every staged shared file against its content hash; damaged ones are removed (restaged)."""
    try:
        res = sh(remote_verify_script(f"{wd}/shared"), timeout=120)
    except TransportError as exc:
        return [Check(name="staged", status="warn", detail=f"cannot check the staged files: {exc}")]
    checks: list[Check] = []
    total = "0"
    for line in res.text().splitlines():
        if line.startswith("BAD "):
            parts = line.split(maxsplit=3)
            if len(parts) < 4:
                continue
            _, rel, size, why = parts
            checks.append(
                Check(
                    name="staged",
                    status="warn",
                    detail=f"{wd}/shared/{rel} was damaged ({size} bytes, {why}): removed, "
                    "it is staged again by the next probe",
                )
            )
        elif line.startswith("OK "):
            total = line.split()[1]
    if not checks:
        checks.append(
            Check(name="staged", status="ok", detail=f"{total} staged file(s) in {wd}/shared match their hashes")
        )
    return checks


def memory_check(sh: Shell, config: SlurmClusterConfig, memory_bytes: int | None) -> list[Check]:
    """A memory limit above every node's memory (`sinfo %m`, MB) is the user's input (bad_input):
    no job could ever start, and sbatch would only refuse each probe. Empty when unknown."""
    if memory_bytes is None:
        return []
    part = f" -p {shlex.quote(config.partition)}" if config.partition else ""
    try:
        res = sh(f"sinfo -h{part} -o '%m'", timeout=60)
    except TransportError:
        return []
    sizes = [int(t.rstrip("+")) for t in res.text().split() if t.rstrip("+").isdigit()] if res.ok else []
    if not sizes:
        return []
    largest = max(sizes)
    where = f" of partition {config.partition!r}" if config.partition else ""
    if -(-memory_bytes // 1024**2) <= largest:
        return [Check(name="memory", status="ok", detail=f"the largest node{where} has {largest} MB")]
    return [
        Check(
            name="memory",
            status="fail",
            detail=f"--memory {format_memory(memory_bytes)} is above every node's memory:"
            f" the largest node{where} has {largest} MB",
            fix=f"give --memory {largest}MB or less",
            bad_input=True,
        )
    ]
