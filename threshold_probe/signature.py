"""Failure signatures: a stable fingerprint of a failure, and matching a verdict against a pattern.

A signature is ``class:ExceptionType:normalised message``, for example
``import:ModuleNotFoundError:No module named 'numpy'`` or
``name:NameError:name 'helper_<n>' is not defined``. Normalising replaces whatever differs
between two runs of the same failure: numbers (levels, sizes, job ids, line numbers),
hex addresses, long hex ids, uuids, absolute paths, quoted temporary names, and the names the
generator gives a workload (``workload_17``, ``make_workload_17.<locals>.workload_17``,
``Workload17``, an isolation probe's ``workload`` and ``default-spec-<digest>``), which become
``<func>``. So the same failure at level 12, at level 30 and in an isolation probe has the same
signature, and a bisect that hunts it can tell it apart from a different one.

Patterns (``--match``), decided so that a plain message never surprises anyone by acting as a
regex:

- ``re:EXPR`` is a regular expression (case-insensitive), searched in the signature, the class,
  the explanation and the evidence lines;
- a bare class name (``oom``, ``timeout``, ...) matches that class exactly;
- a full signature matches when equal (the text a report prints);
- anything else is plain text, matched case-insensitively as a substring of the same fields.

Only failing verdicts match.
"""

from __future__ import annotations

import re

from threshold_probe.errors import UserError
from threshold_probe.failure_classes import CLASSES
from threshold_probe.models import Verdict

#: Longest normalised message kept in a signature.
MESSAGE_LIMIT = 160
REGEX_PREFIX = "re:"

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_ADDR = re.compile(r"\b0x[0-9a-fA-F]+\b")
# An absolute or home-relative POSIX path, starting a word or right after a quote or bracket.
_POSIX_PATH = re.compile(r"(?:(?<=^)|(?<=[\s'\"(=<\[]))(?:~|\.{1,2})?(?:/[^\s'\":,;)\]>/]+)+/?")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\[^\s'\":,;)\]>]+")
# A quoted name that a temp-file helper made: 'tmpk2j3h_x', "tmp-abc.py", 'pymp-1a2b'.
_QUOTED_TEMP = re.compile(r"(['\"])(?:tmp|temp|pymp)[\w.\-]*\1", re.IGNORECASE)
# A run of 8+ hex digits with both a digit and a letter in it: a hash, an id, a random suffix.
# (All digits is a plain number, left to _NUMBER; all letters is a word.)
_LONG_HEX = re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}(?![0-9A-Za-z])")
_HEX_SUFFIX = re.compile(r"(?<=_)(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
# The generator's names for a workload: the function, its factory and its class, as a dotted
# qualname. A bare `workload` (a probe of dimension values) is a name only where code puts one:
# before `(` or `.`, after a `.`, or between quotes; elsewhere it is the English word.
_GEN_PART = r"(?:make_workload(?:_\d+)?|Workload\d*|workload(?:_\d+)?)"
_GENERATED = re.compile(rf"(?<![\w.]){_GEN_PART}(?:\.(?:<locals>|{_GEN_PART}))*(?![\w])")
# The name of a workload generated for an isolation probe: `<ladder>-spec-<10 hex digits>`.
_SPEC_NAME = re.compile(r"(?<![\w.\-])[\w.\-]+-spec-[0-9a-f]{10}(?![\w])")
_SPACE = re.compile(r"\s+")


def _generated_name(match: re.Match[str]) -> str:
    """`<func>` for a generated name; a bare `workload` only where code would put a name."""
    name, text = match.group(0), match.string
    if name not in ("workload", "Workload"):
        return "<func>"
    before = text[match.start() - 1 : match.start()]
    after = text[match.end() : match.end() + 2]
    called = after.startswith("(") or (after[:1] == "." and after[1:2].isidentifier())
    quoted = before in ("'", '"') and after[:1] == before
    return "<func>" if called or quoted else name


def normalise_message(message: str) -> str:
    """The message with run-specific parts (numbers, paths, ids, addresses) replaced by tokens."""
    text = message.strip().splitlines()[0] if message.strip() else ""
    text = _UUID.sub("<uuid>", text)
    text = _ADDR.sub("<addr>", text)
    text = _WINDOWS_PATH.sub("<path>", text)
    text = _POSIX_PATH.sub("<path>", text)
    text = _QUOTED_TEMP.sub(r"\1<tmp>\1", text)
    text = _SPEC_NAME.sub("<func>", text)
    text = _GENERATED.sub(_generated_name, text)
    text = _LONG_HEX.sub("<hex>", text)
    text = _HEX_SUFFIX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    text = _SPACE.sub(" ", text).strip()
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 3] + "..."
    return text


def signature(failure_class: str, exc_type: str | None, message: str | None) -> str:
    """A stable fingerprint: ``class:ExceptionType:normalised message``.

    The exception type is kept by its last dotted part (``_pickle.UnpicklingError`` and
    ``pickle.UnpicklingError`` are the same failure); a missing type or message is left empty.
    """
    short_type = (exc_type or "").strip().rsplit(".", 1)[-1]
    return f"{failure_class}:{short_type}:{normalise_message(message or '')}"


def _haystack(verdict: Verdict) -> list[str]:
    fields = [verdict.signature or "", verdict.failure_class or "", verdict.explanation or ""]
    return fields + list(verdict.evidence)


def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """The regex of a ``re:`` pattern (UserError when it is invalid), or None for plain text."""
    if not pattern.startswith(REGEX_PREFIX):
        return None
    try:
        return re.compile(pattern[len(REGEX_PREFIX) :], re.IGNORECASE)
    except re.error as exc:
        raise UserError(f"--match {pattern!r}: not a valid regular expression: {exc}") from None


def matches(verdict: Verdict, pattern: str) -> bool:
    """Whether a failing verdict is the failure that `pattern` describes (see the module doc)."""
    if verdict.status != "fail":
        return False
    pattern = pattern.strip()
    if not pattern:
        return True
    regex = compile_pattern(pattern)
    if regex is not None:
        return any(regex.search(text) for text in _haystack(verdict))
    if pattern.lower() in CLASSES:
        return (verdict.failure_class or "") == pattern.lower()
    if verdict.signature is not None and pattern == verdict.signature:
        return True
    needle = pattern.lower()
    return any(needle in text.lower() for text in _haystack(verdict))


__all__ = ["compile_pattern", "matches", "normalise_message", "signature"]
