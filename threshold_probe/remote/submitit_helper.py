"""Read a submitit job's result file with submitit itself, in a process of its own; write JSON.

Usage: python submitit_helper.py FOLDER JOB_ID OUT_JSON

submitit stores what the job returned (or the traceback it raised) in ``<job>_0_result.pkl``.
Unpickling it runs whatever the far side put there, so the probe's client never does: this
helper asks submitit's own loader for it and writes only plain data (outcome, the traceback
text, a summary of the value).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any


def _summarize(value: Any) -> dict[str, Any]:
    try:
        encoded = json.dumps(value, sort_keys=True).encode()
        encoding = "json"
    except (TypeError, ValueError):
        encoded = repr(value).encode("utf-8", "replace")
        encoding = "repr"
    short = repr(value)
    return {
        "type": type(value).__name__,
        "size": len(encoded),
        "encoding": encoding,
        "repr": short if len(short) <= 200 else short[:197] + "...",
        "sha256": hashlib.sha256(encoded).hexdigest(),
    }


def main(argv: list[str]) -> int:
    folder, job_id, out = argv[1], argv[2], Path(argv[3])
    data: dict[str, Any] = {"job_id": job_id}
    try:
        from submitit.core import utils

        paths = utils.JobPaths(folder, job_id=job_id, task_id=0)
        data["result_pickle"] = str(paths.result_pickle)
        if not paths.result_pickle.exists():
            data["outcome"] = None
        else:
            outcome, value = utils.pickle_load(paths.result_pickle)
            data["outcome"] = str(outcome)
            if outcome == "success":
                data["result"] = _summarize(value)
            else:
                data["traceback"] = str(value)
    except Exception as exc:  # an unreadable file is evidence, not a crash
        data["unreadable"] = f"{type(exc).__name__}: {exc}"
    out.write_text(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
