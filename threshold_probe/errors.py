"""Errors a user can meet, each mapped to a documented exit code."""

from __future__ import annotations


class ProbeError(Exception):
    """Base of every expected error; printed as one line, never as a traceback."""

    exit_code = 1


class UserError(ProbeError):
    """Bad input the user can fix: config, ladder, path, cluster name (exit 2)."""

    exit_code = 2


class InfraError(ProbeError):
    """The far side cannot be used: unreachable host, dead controller (exit 3)."""

    exit_code = 3


class RunBusy(ProbeError):
    """Another process owns the run (it is running it right now): exit 3."""

    exit_code = 3


class JournalError(ProbeError):
    """The journal or the reports folder cannot be used: empty, damaged, full or read-only (exit 3)."""

    exit_code = 3


class ClusterLost(InfraError):
    """The cluster stopped answering in the middle of a run, and waiting cannot help: the host
    stayed unreachable through the retry budget, its host key changed, or login was refused.

    The probe that met it has no verdict. The run ends as interrupted (exit 3), to be resumed
    once the cluster is back; it is never a threshold.
    """

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        #: What went wrong, in one line ("tensor01:22: connection refused").
        self.cause = cause


class Interrupted(ProbeError):
    """SIGINT (exit 130) or SIGTERM (exit 143) stopped a run."""

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USER = 2
EXIT_INFRA = 3


def article(word: str) -> str:
    """`a shrink`, `an isolate`, `an explain`: a word with its indefinite article, for messages."""
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"
