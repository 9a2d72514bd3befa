"""Python errors read out of a stderr log: tracebacks, the root exception behind wrappers, faulthandler stacks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TB_HEADER = "Traceback (most recent call last):"
_CHAIN_LINES = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
# A line that states an exception: `Type: message` or a bare `Type`, with a dotted type name.
_EXC_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)(?::\s?(?P<msg>.*))?$")
# Outside a traceback, only names that look like exceptions count (not "Killed" or "Done").
_EXC_NAME = re.compile(r"(Error|Exception|Exit|Interrupt|Fault|Failure)$")

#: Messages of wrapper libraries that only say the result is missing, hiding the cause.
WRAPPER_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\.pkl not found",
        r"result (file )?(was )?not found",
        r"no result (file )?(was )?(found|written|produced)",
        r"may have failed",
        r"execution failed",
        r"returned non-zero exit status",
        r"(remote|job) (job|execution|function|task) failed",
        r"job failed",
    )
)
_WRAPPER_TYPES = {"CalledProcessError"}


@dataclass
class ExceptionReport:
    """One exception found in stderr: its type, message, the line itself and its traceback."""

    exc_type: str
    message: str
    line: str
    traceback: list[str] = field(default_factory=list)
    #: A wrapper message that only says the result is missing.
    wrapper: bool = False

    @property
    def short_type(self) -> str:
        """The type's last dotted part: `pickle.UnpicklingError` -> `UnpicklingError`."""
        return self.exc_type.rsplit(".", 1)[-1]


def is_wrapper_message(exc_type: str, message: str) -> bool:
    """Whether an error only reports that a result is missing rather than why."""
    if exc_type.rsplit(".", 1)[-1] in _WRAPPER_TYPES:
        return True
    text = f"{exc_type}: {message}"
    return any(p.search(text) for p in WRAPPER_PATTERNS)


def parse_tracebacks(text: str) -> list[ExceptionReport]:
    """Every Python traceback in `text`, in order, each with its final exception line.

    Lines may carry a common prefix (a logger's or a wrapper's) before the traceback header;
    it is stripped from the lines of that traceback. Chained tracebacks come out as separate
    reports, the cause first. Exception-looking lines outside any traceback (a wrapper's
    `RuntimeError: result file not found`) are reported too, without frames.
    """
    reports: list[ExceptionReport] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        pos = raw.find(_TB_HEADER)
        if pos < 0:
            stripped = raw.strip()
            m = _EXC_LINE.match(stripped)
            # A bare `MemoryError` line counts; other bare words ("Killed", "Done") do not.
            bare_error = m is not None and ":" not in stripped and m.group("type").endswith("Error")
            if m and (":" in stripped or bare_error) and _EXC_NAME.search(m.group("type")):
                reports.append(_report(m, stripped, []))
            i += 1
            continue
        prefix = raw[:pos]
        frames = [_TB_HEADER]
        i += 1
        found = False
        while i < len(lines):
            line = lines[i]
            body = line[len(prefix) :] if prefix and line.startswith(prefix) else line
            if not body.strip():
                i += 1
                continue
            if body[:1] in (" ", "\t") or body.startswith(("File ", "[Previous line repeated")):
                frames.append(body.rstrip())
                i += 1
                continue
            m = _EXC_LINE.match(body.strip())
            if m:
                reports.append(_report(m, body.strip(), frames))
                found = True
                i += 1
            break
        if not found and frames:
            # A traceback cut off before its exception line (a kill, a truncated log).
            reports.append(ExceptionReport("", "", "", frames))
    return reports


def _report(m: re.Match[str], line: str, frames: list[str]) -> ExceptionReport:
    exc_type = m.group("type")
    message = (m.group("msg") or "").strip()
    return ExceptionReport(
        exc_type=exc_type,
        message=message,
        line=line,
        traceback=[*frames, line],
        wrapper=is_wrapper_message(exc_type, message),
    )


def root_exception(text: str) -> tuple[ExceptionReport | None, list[ExceptionReport]]:
    """(the root error, the wrapper messages) in a stderr text.

    The root is the last exception with a real cause (not a wrapper's "result not found"):
    in a chain, later ones are usually the handlers that re-raise or wrap.
    """
    reports = [r for r in parse_tracebacks(text) if r.exc_type]
    wrappers = [r for r in reports if r.wrapper]
    causes = [r for r in reports if not r.wrapper and r.exc_type not in ("SystemExit", "KeyboardInterrupt")]
    # A traceback with frames is stronger evidence than a bare line of text.
    with_frames = [r for r in causes if len(r.traceback) > 1]
    pool = with_frames or causes
    root = pool[-1] if pool else None
    if root is None and wrappers:
        root = wrappers[-1]
        wrappers = wrappers[:-1]
    return root, wrappers


_FAULT_HEADER = re.compile(r"^(Fatal Python error: .*|Timeout \([0-9:.]+\)!)\s*$")
_FAULT_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>.+?)\s*$')
#: Frames of threshold-probe's own far-side code: where the workload was called from, not where it was.
_OWN_FILES = ("runner.py", "source_runner.py", "launcher.py", "clustrix_helper.py")


def python_stack(stderr: str) -> tuple[str, list[tuple[str, int, str]]] | None:
    """The last stack faulthandler wrote (a crash, SIGTERM, or the dump just before the time limit):
    its header and the frames of the thread it names first, most recent first, without the runner's."""
    lines = stderr.splitlines()
    start = None
    for i, line in enumerate(lines):
        header_line = bool(_FAULT_HEADER.match(line.strip()))
        if header_line or (start is None and line.startswith(("Current thread 0x", "Thread 0x"))):
            start = i
    if start is None:
        return None
    header = lines[start].strip()
    frames: list[tuple[str, int, str]] = []
    seen_thread = False
    for line in lines[start + 1 :] if _FAULT_HEADER.match(header) else lines[start:]:
        if line.startswith(("Current thread 0x", "Thread 0x")):
            if seen_thread:
                break  # the first thread listed is the one that crashed or was running
            seen_thread = True
            continue
        m = _FAULT_FRAME.match(line)
        if m:
            if not m.group("file").endswith(_OWN_FILES):
                frames.append((m.group("file"), int(m.group("line")), m.group("func")))
        elif frames and not line.strip():
            break
    return (header, frames) if frames else None


__all__ = [
    "WRAPPER_PATTERNS",
    "ExceptionReport",
    "is_wrapper_message",
    "parse_tracebacks",
    "python_stack",
    "root_exception",
]
