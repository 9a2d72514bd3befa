"""The failure taxonomy: every class a failing verdict can have, with the line that explains it."""

from __future__ import annotations

#: Every failure class, with the one line that explains it.
CLASSES: dict[str, str] = {
    "serialize": "the client could not pickle the function",
    "transfer": "uploading the job or fetching its files failed (for example a full disk or a quota)",
    "deserialize": "the far side could not load the function",
    "import": "a module the function needs is missing on the far side",
    "syntax": "the far side could not compile source",
    "name": "a name the function needs is not defined on the far side",
    "exception": "the workload raised an exception",
    "oom": "the job ran out of memory",
    "timeout": "the job ran past its time limit and was killed",
    "killed": "the job was ended by a signal",
    "no_result": "the process exited without writing a result",
    "result_serialize": "the function returned, but its result could not be serialized",
    "arg_too_long": "the command line was too long to start (E2BIG)",
    "scheduler": "the scheduler rejected, cancelled or lost the job",
    "launch": "the job could not be started",
}

__all__ = ["CLASSES"]
