"""Diagnosis: observation -> verdict (pass, fail with class, evidence and signature, or skip).

Every failure gets one class from CLASSES, a one-line explanation, the evidence lines that prove it
(the exception line, the stderr lines, the scheduler state, the limit) and a signature.

The order of the checks is the order of trust: infrastructure trouble (a skip) first, then what
the client itself saw (pickling, launch), then hard facts from the cluster (time limit, scheduler
state), then the runner's own record (meta.json), then the Python tracebacks found in stderr,
then the signal, then patterns in the logs, and last the plain exit status.

When a pipeline or a wrapper library reports an error that only says the result is missing
("result_raw.pkl not found - VENV2 execution may have failed") and stderr holds the real
traceback above it, the verdict names the root error and keeps the wrapper line as evidence.
"""

from __future__ import annotations

import platform
import re
import signal as _signal
from pathlib import Path
from typing import Any

from threshold_probe.failure_classes import CLASSES
from threshold_probe.models import Observation, Verdict
from threshold_probe.signature import signature
from threshold_probe.tracebacks import (
    WRAPPER_PATTERNS,
    ExceptionReport,
    is_wrapper_message,
    parse_tracebacks,
    python_stack,
    root_exception,
)
from threshold_probe.units import format_memory

#: Causes of a skip (infrastructure trouble, never counted as a failing level).
SKIP_EXPLANATION = "infrastructure trouble; not a property of the workload"

#: How much of a stderr log the traceback parser reads (from its end).
STDERR_READ_BYTES = 256 * 1024
#: Lines of a traceback kept as evidence (its end: the raising frames and the exception).
TRACEBACK_EVIDENCE_LINES = 8

# Unpickling errors that come from a Python or cloudpickle version difference.
_VERSION_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"unsupported pickle protocol",
        r"code\(\) (takes|argument)",
        r"code expected",
        r"no module named '?cloudpickle",
        r"cloudpickle",
        r"_make_function|_make_code|_class_setstate|_function_setstate|_builtin_type",
        r"can't get attribute",
        r"unknown opcode|bad marshal data|invalid load key",
        r"positional argument|argument \d+ must be",
    )
)
_TRUNCATED = re.compile(r"pickle data was truncated|ran out of input|EOFError", re.IGNORECASE)

_OOM_LOG = re.compile(
    r"out of memory|out_of_memory|oom-kill|oom_kill|oom killer|exceeded memory limit|"
    r"memory cgroup out of memory|cannot allocate memory|std::bad_alloc|killed process \d+|"
    r"failed to map segment from shared object",
    re.IGNORECASE,
)
_TIME_LOG = re.compile(
    # The last form is the SLURM job's own watchdog (limits SLURM would round up to a minute).
    r"due to time limit|time limit exhausted|exceeded (the )?time limit|time limit of \S+ reached",
    re.IGNORECASE,
)
_E2BIG = re.compile(r"argument list too long|\[errno 7\]|\bE2BIG\b", re.IGNORECASE)
_DISK = re.compile(
    r"no space left on device|disk quota exceeded|\[errno 28\]|\[errno 122\]|"
    r"can't open file .*\[errno 2\]",  # the runner itself never arrived
    re.IGNORECASE,
)
# The shell could not parse the command a runner built (quoting broken by the shipped code).
_SHELL_SYNTAX = re.compile(
    r"syntax error near unexpected token|unexpected EOF while looking for matching|"
    r"syntax error: unexpected end of file",
    re.IGNORECASE,
)
_SCHEDULER_LOG = re.compile(
    r"sbatch: error|srun: error|batch job submission failed|invalid (partition|account|qos)|"
    r"requested node configuration is not available|job violates accounting",
    re.IGNORECASE,
)

_SCHEDULER_STATES = {
    "OUT_OF_MEMORY": "oom",
    "TIMEOUT": "timeout",
    "DEADLINE": "scheduler",
    "NODE_FAIL": "scheduler",
    "BOOT_FAIL": "scheduler",
    "PREEMPTED": "scheduler",
    "REVOKED": "scheduler",
    "CANCELLED": "scheduler",
    "REJECTED": "scheduler",
    "SPECIAL_EXIT": "scheduler",
}


def signal_name(signum: int) -> str:
    """SIGKILL for 9, and so on; `signal N` for numbers Python does not know."""
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def client_versions() -> dict[str, str | None]:
    """This machine's Python and cloudpickle versions (the side that pickled the payload)."""
    try:
        import cloudpickle

        cp: str | None = cloudpickle.__version__
    except ImportError:  # pragma: no cover - a dependency
        cp = None
    return {"python": platform.python_version(), "cloudpickle": cp}


# --- the verdict ---------------------------------------------------------------------------------


#: Classes whose cause is the same whichever way a cluster reports it: a MemoryError under
#: RLIMIT_AS, SLURM's OUT_OF_MEMORY and a SIGKILL at the cgroup limit are one failure, and so
#: are a watchdog's kill and SLURM's TIMEOUT. They share one signature, so that `--match` and
#: `compare` line up across clusters; how it was reported stays in the evidence.
CAUSE_SIGNATURES = {"oom": "oom::out of memory", "timeout": "timeout::time limit"}


def _fail(
    cls: str,
    evidence: list[str],
    exc_type: str | None = None,
    message: str | None = None,
    explanation: str | None = None,
) -> Verdict:
    seen: set[str] = set()
    unique = []
    for line in evidence:
        line = line.rstrip()
        if line and line not in seen:
            seen.add(line)
            unique.append(line)
    return Verdict.model_validate(
        {
            "status": "fail",
            "class": cls,
            "signature": CAUSE_SIGNATURES.get(cls) or signature(cls, exc_type, message),
            "explanation": explanation or CLASSES[cls],
            "evidence": unique,
        }
    )


def _stderr_text(obs: Observation) -> str:
    """The end of the full stderr log when it is at hand, else the tail the cluster kept."""
    path = obs.job.stderr_path
    if path is not None:
        try:
            with Path(path).open("rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                fh.seek(max(0, size - STDERR_READ_BYTES))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            pass
    return obs.job.stderr_tail


STACK_EVIDENCE_FRAMES = 8


def _stack_lines(stderr: str, when: str) -> list[str]:
    """Evidence from a faulthandler stack: where the workload was, then its innermost frames."""
    found = python_stack(stderr)
    if found is None:
        return []
    header, frames = found
    file, line, func = frames[0]
    out = [f"was in {func} at {file}:{line} {when}"]
    if header.startswith("Fatal Python error"):
        out.append(header)
    out.append("Python stack (most recent call first):")
    out += [f'  File "{f}", line {n} in {fn}' for f, n, fn in frames[:STACK_EVIDENCE_FRAMES]]
    return out


def _log_lines(pattern: re.Pattern[str], *texts: str, limit: int = 3) -> list[str]:
    found = []
    for text in texts:
        for line in text.splitlines():
            if pattern.search(line):
                found.append(line.strip())
                if len(found) >= limit:
                    return found
    return found


def _memory_limit(obs: Observation) -> int | None:
    if obs.limits.memory_bytes:
        return obs.limits.memory_bytes
    limits = (obs.meta or {}).get("limits")
    value = limits.get("RLIMIT_AS") if isinstance(limits, dict) else None
    return int(value) if isinstance(value, (int, float)) else None


def _limit_line(obs: Observation, kind: str) -> list[str]:
    if kind == "memory":
        mem = _memory_limit(obs)
        if not mem:
            return []
        limits = (obs.meta or {}).get("limits")
        rlimit = limits.get("RLIMIT_AS") if isinstance(limits, dict) else None
        # Name the mechanism only when it is known to be the one in force.
        if isinstance(rlimit, (int, float)) and int(rlimit) == mem:
            how = " (RLIMIT_AS)"
        elif obs.job.scheduler:
            how = " (enforced by the scheduler)"
        else:
            how = ""
        line = f"memory limit: {format_memory(mem)}{how}"
        if obs.peak_rss_mb is not None:
            line += f"; peak RSS {obs.peak_rss_mb:.0f} MB"
        return [line]
    if obs.limits.time_s is not None:
        return [f"time limit: {obs.limits.time_s:g}s; ran {obs.job.timings.get('process', obs.wall_s):.1f}s"]
    return []


def _version_lines(meta: dict[str, Any] | None, client: dict[str, str | None]) -> tuple[list[str], bool]:
    remote_py = (meta or {}).get("python")
    remote_cp = (meta or {}).get("cloudpickle")
    lines = [
        f"client: Python {client['python']}, cloudpickle {client['cloudpickle'] or 'missing'}",
        f"far side: Python {remote_py or 'unknown'}, cloudpickle {remote_cp or 'missing'}",
    ]
    differs = False
    if remote_py and client["python"]:
        differs = remote_py.split(".")[:2] != client["python"].split(".")[:2]
    if remote_cp != client["cloudpickle"] and meta is not None:
        differs = True
    return lines, differs


def _classify_exception(exc_type: str, message: str, stage: str | None, has_memory_limit: bool) -> str:
    """The class of an exception raised on the far side, given the stage it happened in."""
    short = exc_type.rsplit(".", 1)[-1]
    text = f"{exc_type}: {message}"
    if short.endswith("MemoryError") or (short == "OSError" and "Cannot allocate memory" in message):
        return "oom"
    if has_memory_limit and "can't start new thread" in message:
        return "oom"
    if short in ("OSError", "PermissionError") and ("[Errno 7]" in message or "Argument list too long" in message):
        return "arg_too_long"  # the workload's own subprocess could not start
    if stage == "serialize":
        # The result pickled, but there was no room to write its summary: the disk, not the result.
        return "transfer" if _DISK.search(message) else "result_serialize"
    if stage == "setup":
        return "transfer"
    if stage == "deserialize":
        if short in ("ModuleNotFoundError", "ImportError") and "cloudpickle" not in message:
            return "import"
        if _TRUNCATED.search(text):
            return "transfer"
        return "deserialize"
    if short in ("SyntaxError", "IndentationError", "TabError"):
        return "syntax"
    if short == "NameError":
        return "name"
    if short in ("ModuleNotFoundError", "ImportError"):
        return "import"
    if stage == "compile":
        # A source runner could not rebuild the function from its text for another reason.
        return "deserialize"
    if short in ("SystemExit",):
        return "no_result"
    if stage is None and any(p.search(text) for p in _VERSION_PATTERNS[:3]):
        return "deserialize"
    return "exception"


def _exception_verdict(
    obs: Observation,
    exc_type: str,
    message: str,
    stage: str | None,
    traceback_lines: list[str],
    extra: list[str],
    client: dict[str, str | None],
) -> Verdict:
    cls = _classify_exception(exc_type, message, stage, _memory_limit(obs) is not None)
    line = f"{exc_type}: {message}" if message else exc_type
    evidence = [line]
    if stage:
        evidence.append(f"stage: {stage}")
    explanation = None
    if cls == "oom":
        evidence += _limit_line(obs, "memory")
    elif cls == "deserialize":
        # The runner's own report, else what was measured of the far side before the job.
        far = obs.meta if (obs.meta or {}).get("python") else (obs.far_side or obs.meta)
        versions, differs = _version_lines(far, client)
        evidence += versions
        if differs:
            r_py = (far or {}).get("python") or "unknown"
            r_cp = (far or {}).get("cloudpickle") or "missing"
            explanation = (
                f"the far side could not load the function: it was pickled by Python {client['python']} / "
                f"cloudpickle {client['cloudpickle']} and loaded by Python {r_py} / cloudpickle {r_cp}"
            )
        elif obs.meta is None and any(p.search(f"{exc_type}: {message}") for p in _VERSION_PATTERNS):
            explanation = (
                "the far side could not load the function; this error is typical of a Python or "
                "cloudpickle version difference (the far side did not report its versions)"
            )
    elif cls == "no_result" and exc_type.endswith("SystemExit"):
        explanation = f"the workload called sys.exit({message}) instead of returning a result"
    elif cls == "import":
        m = re.search(r"No module named '([^']+)'", message)
        if m:
            explanation = (
                f"module {m.group(1)!r} is missing on the far side: install it there, or ship it with the"
                " function (probe run --ship-local-modules; in your own code,"
                f" cloudpickle.register_pickle_by_value({m.group(1).split('.')[0]}))"
            )
    evidence += extra
    evidence += traceback_lines[-TRACEBACK_EVIDENCE_LINES:]
    return _fail(cls, evidence, exc_type, message, explanation)


def diagnose(obs: Observation, client: dict[str, str | None] | None = None) -> Verdict:
    """The verdict on one observation. `client` overrides this machine's versions (for replays)."""
    verdict = _diagnose(obs, client)
    # A scheduler's own record of the job belongs in the evidence of every failure it ran.
    facts = _scheduler_lines(obs.job.scheduler)
    if verdict.status == "fail" and facts and not any("JobState=" in line for line in verdict.evidence):
        verdict.evidence.append(facts[0])
    return verdict


def _diagnose(obs: Observation, client: dict[str, str | None] | None) -> Verdict:
    client = client or client_versions()
    job = obs.job
    meta = obs.meta or {}

    # 1. Infrastructure trouble: a skip, never a failure.
    if job.infra_error:
        return Verdict(status="skip", explanation=f"{SKIP_EXPLANATION}: {job.infra_error}", evidence=[job.infra_error])

    stderr = _stderr_text(obs)
    stdout = job.stdout_tail
    ran = bool(job.exit_code is not None or job.signal is not None or job.timed_out or obs.meta or stderr)

    # 2. The client failed before anything was dispatched.
    if obs.client_error and not ran and not job.launch_error:
        cls = obs.client_error_type if obs.client_error_type in CLASSES else "serialize"
        exc_type, _, message = obs.client_error.partition(": ")
        return _fail(cls, [obs.client_error, "stage: client", *obs.notes], exc_type, message)

    # 3. The job could not be started or its files could not be moved.
    if job.launch_error:
        err = job.launch_error
        exc_type, _, message = err.removeprefix("stage_in: ").removeprefix("stage_out: ").partition(": ")
        if _E2BIG.search(err):
            return _fail(
                "arg_too_long",
                # The pipeline's notes say what was measured: the longest argument's size.
                [err, *obs.notes, "the kernel refuses an argument over 128 KiB or a command line over ARG_MAX"],
                exc_type,
                "Argument list too long",
            )
        if _DISK.search(err) or err.startswith(("stage_in:", "stage_out:")):
            return _fail("transfer", [err], exc_type, message)
        if _SCHEDULER_LOG.search(err) or job.scheduler.get("JobState") == "REJECTED":
            return _fail("scheduler", [err, *_scheduler_lines(job.scheduler)], "", err)
        return _fail("launch", [err], exc_type, message)

    # 4. The cluster killed it at the time limit.
    if job.timed_out:
        evidence = [f"killed with {signal_name(job.signal or 9)} at the time limit"]
        evidence += _log_lines(_TIME_LOG, stderr)  # who killed it, when a log says so
        evidence += _limit_line(obs, "time")
        if meta.get("stage"):
            evidence.append(f"the runner was in stage {meta['stage']}")
        evidence += _stack_lines(stderr, "just before the time limit")
        return _fail("timeout", evidence, "", "time limit")

    # 5. The scheduler's word.
    state = (job.scheduler.get("JobState") or "").split()[0].upper() if job.scheduler.get("JobState") else ""
    sched = _scheduler_lines(job.scheduler)
    if state in _SCHEDULER_STATES:
        cls = _SCHEDULER_STATES[state]
        if state == "CANCELLED" and _TIME_LOG.search(stderr):
            cls = "timeout"
        evidence = sched + _log_lines(_OOM_LOG if cls == "oom" else _TIME_LOG, stderr, stdout)
        if cls in ("oom", "timeout"):
            evidence += _limit_line(obs, "memory" if cls == "oom" else "time")
        return _fail(cls, evidence, "", f"scheduler state {state}")

    # 6. The runner's own record of an exception.
    exc = meta.get("exception")
    root, wrappers = root_exception(stderr)
    wrapper_lines = [w.line for w in wrappers]
    if root is not None and root.wrapper:  # nothing but wrappers: the last one stands as root
        wrapper_lines.append(root.line)
    if obs.client_error:
        wrapper_lines.append(obs.client_error)
    if isinstance(exc, dict) and exc.get("type"):
        tb = str(exc.get("traceback") or "").splitlines()
        return _exception_verdict(
            obs,
            str(exc["type"]),
            str(exc.get("message") or ""),
            str(exc.get("stage") or "") or None,
            tb,
            wrapper_lines + obs.notes,
            client,
        )

    passed = job.exit_code == 0 and obs.result is not None and not obs.client_error
    if passed:
        return Verdict(status="pass")

    # 7. A real traceback in stderr (other runners, a wrapper library, an interpreter crash).
    if root is not None and not root.wrapper:
        # Without the runner's record, a traceback through pickle's load is a deserialize failure.
        loading = meta.get("stage") in (None, "setup", "deserialize") and _looks_like_load_failure(root)
        stage = "deserialize" if loading else None
        return _exception_verdict(
            obs, root.exc_type, root.message, stage, root.traceback, wrapper_lines + obs.notes, client
        )

    # 8. A signal.
    signum = job.signal
    if signum is None and job.exit_code is not None and 128 < job.exit_code < 160 and not meta.get("exit_code"):
        signum = job.exit_code - 128  # a shell reports a killed child as 128 + N
    oom_lines = _log_lines(_OOM_LOG, stderr, stdout)
    if signum is not None:
        name = signal_name(signum)
        evidence = [f"the process was ended by {name}"]
        if meta.get("stage"):
            evidence.append(f"the runner was in stage {meta['stage']}")
        mem = _memory_limit(obs)
        near_limit = bool(mem and obs.peak_rss_mb and obs.peak_rss_mb * 1024**2 >= 0.9 * mem)
        if signum == _signal.SIGKILL and (oom_lines or near_limit):
            return _fail("oom", evidence + oom_lines + _limit_line(obs, "memory"), name, "killed")
        if signum == _signal.SIGXCPU or _TIME_LOG.search(stderr):
            return _fail("timeout", evidence + _log_lines(_TIME_LOG, stderr), name, "time limit")
        skew = _crash_from_skew(obs, signum, client)
        if skew is not None:
            return skew
        stack = _stack_lines(stderr, f"when {name} ended it")
        return _fail("killed", evidence + (stack or _tail_lines(stderr)), name, "", f"the job was ended by {name}")

    # 9. Patterns in the logs.
    if oom_lines:
        return _fail("oom", oom_lines + _limit_line(obs, "memory") + wrapper_lines, "", oom_lines[0])
    time_lines = _log_lines(_TIME_LOG, stderr)
    if time_lines:
        return _fail("timeout", time_lines + wrapper_lines, "", "time limit")
    e2big = _log_lines(_E2BIG, stderr)
    if e2big:
        return _fail("arg_too_long", e2big + wrapper_lines + obs.notes, "OSError", "Argument list too long")
    shell = _log_lines(_SHELL_SYNTAX, stderr)
    if shell:
        quoting = "the shell could not parse the command that carries the code (broken quoting)"
        return _fail("syntax", shell + wrapper_lines, "shell", shell[-1].split(": ")[-1], quoting)
    disk = _log_lines(_DISK, stderr)
    if disk:
        return _fail("transfer", disk + wrapper_lines, "OSError", disk[0])
    sched_log = _log_lines(_SCHEDULER_LOG, stderr)
    if sched_log:
        return _fail("scheduler", sched_log + sched, "", sched_log[0])

    # 10. The pipeline's own word, when it named a class and nothing above contradicts it.
    if obs.client_error and obs.client_error_type in CLASSES:
        exc_type, _, message = obs.client_error.partition(": ")
        evidence = [obs.client_error, *wrapper_lines, *obs.notes, *_tail_lines(stderr)]
        return _fail(obs.client_error_type, evidence, exc_type, message)

    # 11. It exited without a result (os._exit, a wrapper that swallowed the error).
    evidence = []
    if job.exit_code is not None:
        evidence.append(f"exit code {job.exit_code}")
    evidence.append("result.json was not written")
    if meta:
        evidence.append(f"the runner was in stage {meta.get('stage')} (status {meta.get('status')})")
    else:
        evidence.append("meta.json was not written")
    evidence += wrapper_lines + obs.notes + _tail_lines(stderr)
    explanation = None
    if job.exit_code == 0 and meta.get("stage") == "execute":
        explanation = "the process exited with code 0 during execute, without returning (os._exit?)"
    elif job.exit_code:
        explanation = f"the process exited with code {job.exit_code} without writing a result"
    return _fail("no_result", evidence, "", f"exit {job.exit_code}", explanation)


#: Signals of an interpreter that crashed on code it cannot run (bytecode of another version).
_CRASH_SIGNALS = {_signal.SIGSEGV, _signal.SIGBUS, _signal.SIGILL, _signal.SIGFPE, _signal.SIGABRT}
#: Pipelines that ship source text, not bytecode: a crash there is not a version difference.
_SOURCE_PIPELINES = {"source", "inline"}


def _crash_from_skew(obs: Observation, signum: int, client: dict[str, str | None]) -> Verdict | None:
    """A crash while loading or running a function pickled by another Python minor version.

    A function pickled by value carries its bytecode, which only the same minor version runs:
    3.12 loading 3.11 bytecode can die with SIGSEGV instead of raising. So a crash signal is
    `deserialize` when the runner was loading the payload, or when the two Pythons differ.
    """
    meta = obs.meta or {}
    if signum not in _CRASH_SIGNALS or obs.pipeline in _SOURCE_PIPELINES or not meta:
        return None
    versions, differs = _version_lines(meta, client)
    remote_py = str(meta.get("python") or "")
    minor_differs = bool(remote_py and client["python"]) and (
        remote_py.split(".")[:2] != str(client["python"]).split(".")[:2]
    )
    if not (minor_differs or meta.get("stage") in ("setup", "deserialize")):
        return None
    name = signal_name(signum)
    evidence = [f"the process was ended by {name}", f"the runner was in stage {meta.get('stage')}", *versions]
    r_cp = meta.get("cloudpickle") or "missing"
    explanation = (
        f"the far side crashed ({name}) on a function pickled by Python {client['python']} / cloudpickle "
        f"{client['cloudpickle']} and loaded by Python {remote_py or 'unknown'} / cloudpickle {r_cp}"
    )
    if minor_differs:
        explanation += "; a function pickled by value only runs on the same Python minor version"
    elif differs:
        explanation += "; use the same cloudpickle version on both sides"
    return _fail("deserialize", evidence, name, "crashed loading the function", explanation)


def _looks_like_load_failure(report: ExceptionReport) -> bool:
    text = f"{report.exc_type}: {report.message}"
    frames = "\n".join(report.traceback)
    return bool(
        any(p.search(text) for p in _VERSION_PATTERNS)
        or (re.search(r"pickle|\.loads?\(", frames) and not re.search(r"\.dumps?\(", frames))
    )


def _scheduler_lines(facts: dict[str, str]) -> list[str]:
    keys = ("JobId", "JobState", "Reason", "ExitCode", "NodeList", "MaxRSS", "Elapsed")
    shown = [f"{k}={facts[k]}" for k in keys if facts.get(k)]
    return [" ".join(shown)] if shown else []


def _tail_lines(text: str, n: int = 3) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-n:]


__all__ = [
    "CAUSE_SIGNATURES",
    "CLASSES",
    "WRAPPER_PATTERNS",
    "ExceptionReport",
    "client_versions",
    "diagnose",
    "is_wrapper_message",
    "parse_tracebacks",
    "python_stack",
    "root_exception",
    "signal_name",
]
