"""Reading what SLURM says about a job: squeue rows, `scontrol show job -o` records, sacct rows.

Pure parsing, no I/O: the watcher runs the commands, these functions read their output. Every
value SLURM prints is kept as the string it printed, so that reports show what SLURM said.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from threshold_probe.errors import UserError
from threshold_probe.units import parse_duration

#: States after which SLURM does nothing more with a job.
FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "OUT_OF_MEMORY",
        "TIMEOUT",
        "CANCELLED",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
#: JobState recorded for a job that sbatch refused to queue.
REJECTED = "REJECTED"

#: Lines in a job's output that explain a kill SLURM reports only as a state or a signal.
EVIDENCE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"exceeded memory limit", re.IGNORECASE),
    re.compile(r"oom-kill", re.IGNORECASE),
    re.compile(r"out of memory", re.IGNORECASE),
    re.compile(r"DUE TO TIME LIMIT"),
    re.compile(r"CANCELLED"),
    re.compile(r"DUE TO PREEMPTION|DUE TO NODE FAILURE"),
)
#: At most this many evidence lines per job: a workload printing the word in a loop must not
#: flood the report.
MAX_EVIDENCE_LINES = 8

#: sbatch/squeue messages that mean the controller or its authentication is unreachable.
CONTROLLER_DOWN = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Zero Bytes were transmitted|"
    r"Connection refused|Communication connection failure|Unable to establish|"
    r"Munge encode failed|munge.*(?:socket|connect)|Invalid authentication credential|"
    r"slurm_load_partitions|Transport endpoint|Slurm backup controller in standby mode|"
    r"Could not establish a configuration source|Unable to process configuration file|"
    r"(?:sbatch|squeue|scontrol|sinfo|scancel|sacct): (?:command )?not found|command not found",
    re.IGNORECASE,
)

_KEY_RE = re.compile(r"(?:^|(?<=\s))([A-Za-z][A-Za-z0-9_:/]*)=")
_MEM_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)", re.IGNORECASE)
_EXCEEDED_RE = re.compile(r"exceeded memory limit \((\d+) > (\d+)\)", re.IGNORECASE)


@dataclass(frozen=True)
class JobKey:
    """One job, or one task of an array: (array job id or job id, task index or None)."""

    job_id: str
    task: int | None = None

    def display(self) -> str:
        """The id SLURM users read: `123` or `123_4`."""
        return self.job_id if self.task is None else f"{self.job_id}_{self.task}"


@dataclass
class QueueRow:
    """One line of `squeue -r -o '%i|%A|%F|%K|%T|%r|%N'`."""

    key: JobKey
    raw_id: str
    state: str
    reason: str
    nodes: str


@dataclass
class JobFacts:
    """What SLURM said about one finished job, merged from scontrol, sacct or sacct -c."""

    key: JobKey
    fields: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def state(self) -> str:
        return base_state(self.fields.get("JobState", ""))


def base_state(text: str) -> str:
    """`CANCELLED by 0` -> `CANCELLED`; `OUT_OF_ME+` stays as it is (never asked for)."""
    return text.strip().split(" ")[0].upper() if text.strip() else ""


def is_final(state: str) -> bool:
    """True once SLURM is done with a job in this state."""
    return base_state(state) in FINAL_STATES


def parse_record(line: str) -> dict[str, str]:
    """`Key=Value Key2=Value two` (scontrol -o, jobcomp filetxt) -> dict; values may hold spaces."""
    line = line.strip()
    matches = list(_KEY_RE.finditer(line))
    out: dict[str, str] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        out[m.group(1)] = line[m.end() : end].strip()
    return out


def _task(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def key_of(fields: dict[str, str]) -> JobKey | None:
    """The JobKey of a scontrol or jobcomp record (array tasks by their array id and index)."""
    array_id = fields.get("ArrayJobId", "").strip()
    task = _task(fields.get("ArrayTaskId", ""))
    if array_id and array_id.isdigit() and task is not None:
        return JobKey(array_id, task)
    job_id = fields.get("JobId", "").strip()
    return JobKey(job_id) if job_id else None


#: squeue output format: one row per job or array task (with -r), '|' separated.
SQUEUE_FORMAT = "%i|%A|%F|%K|%T|%r|%N"


def parse_squeue(text: str) -> list[QueueRow]:
    """Rows of `squeue -h -r -t all -o SQUEUE_FORMAT`; malformed lines are skipped."""
    rows = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 7:
            continue
        display, raw_id, array_id, task, state, reason, nodes = parts[:7]
        t = _task(task)
        if t is not None and array_id.strip().isdigit():
            key = JobKey(array_id.strip(), t)
        else:
            key = JobKey(display.strip().split("_")[0])
        rows.append(QueueRow(key, raw_id.strip(), state.strip(), reason.strip(), nodes.strip()))
    return rows


#: sacct fields asked for (with -P, so '|' separated).
SACCT_FIELDS = (
    "JobID",
    "JobIDRaw",
    "State",
    "ExitCode",
    "MaxRSS",
    "Elapsed",
    "NodeList",
    "Start",
    "End",
    "Submit",
)


def parse_sacct(text: str) -> dict[JobKey, dict[str, str]]:
    """Rows of `sacct -n -P -o SACCT_FIELDS` (or `sacct -c`), steps merged into their job.

    The job's own row gives the state and exit code; MaxRSS is the largest over its steps
    (the batch step holds it when accounting is on).
    """
    out: dict[JobKey, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < len(SACCT_FIELDS):
            continue
        row = dict(zip(SACCT_FIELDS, parts, strict=False))
        job_id, _, step = row["JobID"].partition(".")
        if "_" in job_id:
            a, _, t = job_id.partition("_")
            key = JobKey(a, _task(t)) if _task(t) is not None else JobKey(a)
        else:
            key = JobKey(job_id)
        entry = out.setdefault(key, {})
        if not step:
            entry.update(
                {
                    "JobState": row["State"],
                    "ExitCode": row["ExitCode"],
                    "Elapsed": row["Elapsed"],
                    "NodeList": row["NodeList"],
                    "StartTime": row["Start"],
                    "EndTime": row["End"],
                    "SubmitTime": row["Submit"],
                    "JobIdRaw": row["JobIDRaw"],
                }
            )
        rss = memory_mb(row["MaxRSS"])
        if rss is not None and (memory_mb(entry.get("MaxRSS", "")) or -1) < rss:
            entry["MaxRSS"] = row["MaxRSS"]
    return out


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """SLURM's `exit:signal` -> (exit code, signal); (None, None) when absent or unreadable."""
    m = re.match(r"^\s*(\d+):(\d+)\s*$", text or "")
    if not m:
        return None, None
    return int(m.group(1)), int(m.group(2))


def memory_mb(text: str) -> float | None:
    """SLURM memory figures (`123456K`, `1.5G`, `512M`, plain KB) -> MB; None when empty."""
    m = _MEM_RE.match(text or "")
    if not m:
        return None
    value = float(m.group(1))
    unit = (m.group(2) or "K").upper()
    factor = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}[unit]
    return value * factor


def elapsed_s(text: str) -> float | None:
    """`00:01:02`, `1-00:00:00` or `12:34` (MM:SS) -> seconds; None when unreadable."""
    if not text or not text.strip() or text.strip() in ("INVALID", "UNLIMITED", "N/A"):
        return None
    try:
        return parse_duration(text.strip())
    except UserError:
        return None


def slurm_timestamp(text: str) -> float | None:
    """`2026-11-28T17:50:33` (the controller's local time) -> epoch seconds; None for Unknown."""
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def scan_evidence(*texts: str) -> list[str]:
    """Lines of a job's output that explain how SLURM ended it (memory, time limit, cancel)."""
    found: list[str] = []
    for text in texts:
        for line in text.splitlines():
            stripped = line.strip()
            if stripped and any(p.search(stripped) for p in EVIDENCE_PATTERNS) and stripped not in found:
                found.append(stripped[:500])
                if len(found) >= MAX_EVIDENCE_LINES:
                    return found
    return found


def exceeded_peak_mb(evidence: list[str]) -> float | None:
    """The memory OverMemoryKill measured (`exceeded memory limit (N > M)`, in KB), as MB."""
    peaks = [int(m.group(1)) / 1024 for line in evidence if (m := _EXCEEDED_RE.search(line))]
    return max(peaks) if peaks else None


def sbatch_error_line(stderr: str) -> str:
    """One line that says why sbatch refused a job: its `error:` lines joined, else its last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [re.sub(r"^\w+: error:\s*", "", ln) for ln in lines if "error" in ln.lower()]
    if errors:
        prog = lines[0].split(":", 1)[0] if re.match(r"^\w+: error:", lines[0]) else "sbatch"
        return f"{prog}: error: " + "; ".join(dict.fromkeys(errors))
    return lines[-1] if lines else "sbatch failed without a message"


def controller_down(text: str) -> bool:
    """True when a SLURM command's message says the controller (or munge) cannot be reached."""
    return bool(CONTROLLER_DOWN.search(text or ""))
