"""The batch script of a SLURM probe: readable, generated from the cluster config and limits.

Layout: `#SBATCH` directives, then `set -euo pipefail`, then the config's module and setup lines,
then the runner, started with `exec` in the job's folder so that SLURM's signals (time limit,
scancel, memory kill) reach the runner itself and its exit status is what SLURM records.

One script serves a single job and a job array alike: an array task finds its job folder from
SLURM_ARRAY_TASK_ID.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from threshold_probe.clusters.jobpaths import JobPaths
from threshold_probe.config import SlurmClusterConfig
from threshold_probe.models import Limits
from threshold_probe.units import to_sbatch_mem, to_slurm_time

#: JobPaths.STARTED holds the job's start on the compute node's clock (bash 5's EPOCHREALTIME):
#: the end of the queue wait, and the start the runner's stamps are measured from.

_PLAIN_DIRECTIVE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")

#: The first words of the line the job's own watchdog writes to stderr when it ends the job at a
#: time limit SLURM cannot enforce (SLURM counts time limits in whole minutes).
WATCHDOG_MARK = "threshold-probe: time limit"


def slurm_minutes(time_s: float) -> float:
    """The time SLURM is asked for: the limit rounded up to whole minutes, as SLURM counts."""
    return float(max(1, math.ceil(time_s / 60)) * 60)


def runner_enforces_time(time_s: float | None) -> bool:
    """Whether the job's own watchdog enforces the time limit (it is not whole minutes)."""
    return time_s is not None and time_s != slurm_minutes(time_s)


@dataclass(frozen=True)
class ScriptTask:
    """What one job (or array task) runs: its folder, its resolved argv and its environment."""

    folder: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def slurm_enforced_limits(config: SlurmClusterConfig, limits: Limits) -> Limits:
    """The job's limits, with the cluster config filling what the job leaves open."""
    base = config.limits()
    return Limits(
        memory_bytes=limits.memory_bytes if limits.memory_bytes is not None else base.memory_bytes,
        time_s=limits.time_s if limits.time_s is not None else base.time_s,
        cores=limits.cores if limits.cores is not None else base.cores,
    )


def _directive_value(value: str) -> str:
    # sbatch reads #SBATCH lines with its own tokenizer, which honours double quotes.
    if _PLAIN_DIRECTIVE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sbatch_directives(
    config: SlurmClusterConfig,
    limits: Limits,
    *,
    job_name: str,
    output: str,
    error: str,
    array: str | None = None,
) -> list[str]:
    """The `#SBATCH` lines, in a fixed order, without the `#SBATCH ` prefix."""
    lim = slurm_enforced_limits(config, limits)
    opts = [f"--job-name={_directive_value(job_name)}"]
    if array is not None:
        opts.append(f"--array={array}")
    opts += [f"--output={_directive_value(output)}", f"--error={_directive_value(error)}"]
    if config.partition:
        opts.append(f"--partition={_directive_value(config.partition)}")
    if config.account:
        opts.append(f"--account={_directive_value(config.account)}")
    if config.qos:
        opts.append(f"--qos={_directive_value(config.qos)}")
    opts.append("--nodes=1")
    opts.append("--ntasks=1")
    opts.append(f"--cpus-per-task={lim.cores or 1}")
    if lim.memory_bytes is not None:
        opts.append(f"--mem={to_sbatch_mem(lim.memory_bytes)}")
    if lim.time_s is not None:
        # Rounded up: a shorter limit is enforced in the job itself (see _watchdog_line).
        opts.append(f"--time={to_slurm_time(slurm_minutes(lim.time_s))}")
    if config.gres:
        opts.append(f"--gres={_directive_value(config.gres)}")
    opts += list(config.sbatch_args)
    return opts


def _watchdog_line(time_s: float) -> str:
    """A background watchdog that kills the job at `time_s`, for limits SLURM would round up.

    `$$` is this shell's pid, which the `exec` that follows hands to the runner: the watchdog
    kills the runner itself, so SLURM records the kill (ExitCode 0:9) and the line it writes
    to stderr says who killed it. SLURM ends the watchdog with the job's other processes.
    """
    message = (
        f"{WATCHDOG_MARK} of {time_s:g}s reached: the runner killed the job (SLURM counts time limits in whole minutes)"
    )
    return f"( sleep {time_s:g} && printf '%s\\n' {shlex.quote(message)} >&2 && kill -KILL $$ ) &"


def _command_lines(task: ScriptTask, indent: str = "", watchdog_s: float | None = None) -> list[str]:
    lines = [f"{indent}cd {shlex.quote(task.folder)}"]
    lines.append(f"{indent}printf '%s\\n' \"$started\" > {JobPaths.STARTED}")
    for name, value in sorted(task.env.items()):
        lines.append(f"{indent}export {name}={shlex.quote(value)}")
    if watchdog_s is not None:
        lines.append(f"{indent}{_watchdog_line(watchdog_s)}")
    lines.append(f"{indent}exec {shlex.join(task.argv)}")
    return lines


def render_job_script(
    config: SlurmClusterConfig,
    limits: Limits,
    tasks: Sequence[ScriptTask],
    *,
    job_name: str,
    output: str,
    error: str,
    array_throttle: int | None = None,
) -> str:
    """The whole batch script; an array (`--array=0-(N-1)[%K]`) when there is more than one task.

    For an array, `output` and `error` should contain `%a` so that each task writes its own.
    """
    if not tasks:
        raise ValueError("a job script needs at least one task")
    array = None
    if len(tasks) > 1:
        array = f"0-{len(tasks) - 1}"
        if array_throttle:
            array += f"%{array_throttle}"
    lines = ["#!/bin/bash", f"# threshold-probe job: {job_name}"]
    lines += [
        f"#SBATCH {opt}"
        for opt in sbatch_directives(config, limits, job_name=job_name, output=output, error=error, array=array)
    ]
    lines += [
        "",
        "set -euo pipefail",
        "# The job's start on this node's clock: the queue wait ends here.",
        'started="${EPOCHREALTIME:-}"',
    ]
    if config.modules:
        lines.append("")
        # Module names are the user's own words (`python/3.11 gcc`): written as given.
        lines += [f"module load {m}" for m in config.modules]
    if config.setup:
        lines.append("")
        lines += list(config.setup)
    lines.append("")
    time_s = slurm_enforced_limits(config, limits).time_s
    watchdog_s = time_s if runner_enforces_time(time_s) else None
    if len(tasks) == 1:
        lines += _command_lines(tasks[0], watchdog_s=watchdog_s)
    else:
        lines.append('case "${SLURM_ARRAY_TASK_ID:?not an array task}" in')
        for i, task in enumerate(tasks):
            lines.append(f"  {i})")
            lines += _command_lines(task, indent="    ", watchdog_s=watchdog_s)
            lines.append("    ;;")
        lines += [
            "  *)",
            '    echo "threshold-probe: no task ${SLURM_ARRAY_TASK_ID} in this array" >&2',
            "    exit 2",
            "    ;;",
            "esac",
        ]
    return "\n".join(lines) + "\n"
