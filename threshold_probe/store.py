"""The SQLite journal (reports/probe.db) and the run folders (reports/<run-id>/).

Every probe is journalled before it is dispatched and again when it finishes, so that a run
killed at any point can be resumed and its report still loads. Files are written atomically.

A probe row moves through the states of ProbeState:

- ``dispatched``: written just before the probe is handed to the cluster;
- ``done``: it finished, and its record (observation and verdict) is stored;
- ``cancelled``: it was in flight when the run was interrupted (SIGINT/SIGTERM) or killed
  (``kill -9``, found when the run is resumed). Its verdict is unknown, so a resumed run
  dispatches it again; a ``done`` probe is never dispatched again by a resume.

A run row holds a RunState. The store refuses any other word (ValueError) before it writes, and
the journal itself (schema version 2, see journal.py) refuses it too.

The journal runs in WAL mode, so a process killed in the middle of a write leaves the last
committed state, which the next open recovers.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydantic_core
from pydantic import BaseModel, Field

from threshold_probe.errors import JournalError, RunBusy, UserError
from threshold_probe.journal import JournalConnection, open_empty, open_readonly, open_writable
from threshold_probe.models import Limits, ProbeRecord, RemoteWork
from threshold_probe.runlock import RunLock, holder, try_lock
from threshold_probe.states import ProbeState, RunState, stored_run_state

__all__ = ["RunInfo", "RunLock", "Store", "atomic_write", "cache_key"]


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once at import, while there is one thread: os.umask can only be read by setting it.
_UMASK = _read_umask()


def atomic_write(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Write a file so that readers see the old content or the new, never half of it.

    `durable` also flushes it to the disk before the rename, so that it survives a power cut;
    without it, the rename alone keeps it whole through a killed process.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except FileExistsError:
        # A part of the folder path is a file.
        raise path_error(path, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))) from None
    except OSError as exc:
        raise path_error(path, exc) from None
    try:
        # mkstemp makes the file 0600; a report is for others to read too, as open() would give.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise path_error(path, exc) from None
        raise


#: Errors of the path itself (a folder that cannot hold files, a folder where a file should be, a
#: link to nowhere where a folder should be made, no permission), as opposed to a disk that is full
#: or read-only: the user gave a path that cannot be written.
_PATH_ERRNOS = (
    errno.ENOENT,
    errno.EEXIST,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.ENAMETOOLONG,
    errno.ELOOP,
)


def path_error(path: Path, exc: OSError) -> Exception:
    """What a failed write of `path` (a file or a folder) raises: UserError for the path, else the OSError naming `path`
    (never the temporary file beside it), which the CLI reports as a disk that cannot take it."""
    if exc.errno in _PATH_ERRNOS:
        return UserError(f"cannot write {path}: {exc.strerror}")
    return OSError(exc.errno, exc.strerror, str(path))


def _pretty_json(data: dict[str, Any]) -> bytes:
    """JSON indented for people; pydantic's encoder, since json.dumps with an indent is about ten
    times slower (pure Python), and a run's summary is written again while the run goes on."""
    return pydantic_core.to_json(data, indent=2, fallback=str)


class RunInfo(BaseModel):
    """One row of the runs table."""

    run_id: str
    kind: str
    cluster: str
    pipeline: str
    ladder: str
    status: RunState
    started_at: float
    finished_at: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    summary: dict[str, Any] | None = None


def cache_key(workload_hash: str, pipeline: str, cluster: str, limits: Limits) -> str:
    """Probes with the same key would do the same thing, so a finished one can stand in."""
    lim = limits.model_dump_json()
    return f"{workload_hash[:20]}|{pipeline}|{cluster}|{lim}"


def _missing(path: Path) -> bool:
    """Whether nothing is at `path` (a folder on the way that is a file is not "nothing": opening
    the journal there says what is wrong)."""
    try:
        path.stat()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


class Store:
    """The journal and artifact folders under one reports directory."""

    #: Clusters report far-side work from their own threads (a SLURM job array per group of
    #: limits, SSH probes in parallel): one connection, one transaction at a time.
    _lock: threading.RLock

    def __init__(self, reports_dir: Path, readonly: bool = False) -> None:
        """Open the journal under `reports_dir` (made if missing).

        `readonly` (the commands that only read: runs, report, history, compare) opens it with
        SQLite's mode=ro, so that a journal on a read-only disk or a CI artifact still loads; a
        journal that does not exist is read as an empty one, and neither it nor its folder is made.
        """
        self.root = reports_dir
        self.db_path = self.root / "probe.db"
        self._lock = threading.RLock()
        if readonly and _missing(self.db_path):
            self.readonly = True
            self._db = open_empty(self.db_path)
            return
        try:
            # A journal never written to has no tables yet: the normal open gives it its schema.
            self.readonly = readonly and self.db_path.stat().st_size > 0
        except OSError:
            self.readonly = False
        if not self.readonly:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                # The folder, or a part of its path, is a file: say so, not "File exists".
                raise UserError(f"cannot write {reports_dir}: {os.strerror(errno.ENOTDIR)}") from None
            except OSError as exc:
                raise UserError(f"cannot write {reports_dir}: {exc.strerror}") from None
        self._refuse_truncated()
        self._db = open_readonly(self.db_path) if self.readonly else open_writable(self.db_path)

    def _refuse_truncated(self) -> None:
        """A zero-byte journal beside run folders lost its runs: never start a new one over it."""
        try:
            empty = self.db_path.stat().st_size == 0
        except OSError:
            return
        if not empty:
            return
        try:
            runs = [d for d in self.root.iterdir() if (d / "run.json").is_file()]
        except OSError:
            runs = []
        if runs:
            raise JournalError(
                f"journal {self.db_path} is empty (0 bytes) but {self.root} holds {len(runs)} run"
                f" folder{'s' if len(runs) != 1 else ''}: restore probe.db from a backup, or move it away"
                f" (mv {self.db_path} {self.db_path}.empty) to start a new journal; each run keeps its run.json"
            )

    def close(self) -> None:
        """Close the journal."""
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[JournalConnection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ownership --------------------------------------------------------------------------
    def own_run(self, run_id: str) -> RunLock:
        """Become the one process that runs `run_id`; RunBusy (exit 3) naming the owner if another is.

        Atomic: the kernel grants the exclusive lock to one process only, so two resumes started
        together cannot both pass (a check of the journal followed by a write could).
        """
        lock = self.try_own_run(run_id)
        if isinstance(lock, RunLock):
            return lock
        raise RunBusy(
            f"run {run_id} is being run by {lock} right now: wait for it to end, or stop that process, then resume it"
        )

    def try_own_run(self, run_id: str) -> RunLock | str:
        """The run's lock, or who holds it ('pid N' or 'pid N on HOST')."""
        return try_lock(self.run_dir(run_id))

    def run_owner(self, run_id: str) -> str | None:
        """Who runs `run_id` right now ('pid N'), or None when no process does. Never writes."""
        return holder(self.run_dir(run_id))

    # far-side work ----------------------------------------------------------------------
    def record_remote(self, run_id: str, cluster: str, work: RemoteWork) -> None:
        """Journal far-side work of a run as it appears, gets its job id, or is gone."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO remote_work (cluster, folder, run_id, kind, job_name, job_id, state, keep, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(cluster, folder) DO UPDATE SET"
                " job_name=coalesce(excluded.job_name, job_name), job_id=coalesce(excluded.job_id, job_id),"
                " state=excluded.state, keep=max(keep, excluded.keep), updated_at=excluded.updated_at",
                (
                    cluster,
                    work.folder,
                    run_id,
                    work.kind,
                    work.job_name,
                    work.job_id,
                    work.state,
                    int(work.keep),
                    time.time(),
                ),
            )

    def remote_leftovers(self, cluster: str) -> dict[str, list[RemoteWork]]:
        """Far-side work on `cluster` still `live` in the journal, by run id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, kind, folder, job_name, job_id, keep FROM remote_work"
                " WHERE cluster=? AND state='live' ORDER BY updated_at",
                (cluster,),
            ).fetchall()
        out: dict[str, list[RemoteWork]] = {}
        for run_id, kind, folder, job_name, job_id, keep in rows:
            out.setdefault(run_id, []).append(
                RemoteWork(kind=kind, folder=folder, job_name=job_name, job_id=job_id, keep=bool(keep))
            )
        return out

    # runs -------------------------------------------------------------------------------
    def new_run_id(self, kind: str) -> str:
        """A new run id: sortable by time, with the kind and a random suffix."""
        return f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{secrets.token_hex(2)}"

    def run_dir(self, run_id: str) -> Path:
        """The folder of one run."""
        return self.root / run_id

    def delete_run(self, run_id: str) -> None:
        """Forget a run: its row and its probes' rows (their cached verdicts go with them)."""
        with self._tx() as db:
            db.execute("DELETE FROM probes WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM runs WHERE run_id=?", (run_id,))

    def probe_dir(self, run_id: str, probe_id: str) -> Path:
        """The folder of one probe of a run (observation and logs)."""
        return self.root / run_id / "probes" / probe_id

    def start_run(self, info: RunInfo) -> None:
        """Record a run as started (or started again, when it is resumed)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    info.run_id,
                    info.kind,
                    info.cluster,
                    info.pipeline,
                    info.ladder,
                    stored_run_state(info.status).value,
                    info.started_at,
                    info.finished_at,
                    json.dumps(info.params),
                    json.dumps(info.summary) if info.summary is not None else None,
                ),
            )
        self.run_dir(info.run_id).mkdir(parents=True, exist_ok=True)

    def set_run_status(self, run_id: str, status: RunState | str) -> None:
        """Change a run's status without touching its summary."""
        state = stored_run_state(status)
        with self._tx() as db:
            db.execute("UPDATE runs SET status=? WHERE run_id=?", (state.value, run_id))

    def finish_run(self, run_id: str, status: RunState | str, summary: dict[str, Any]) -> None:
        """Record the run's result: journal row first, then run.json written atomically."""
        state = stored_run_state(status)
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status=?, finished_at=?, summary=? WHERE run_id=?",
                (state.value, time.time(), json.dumps(summary), run_id),
            )
        atomic_write(self.run_dir(run_id) / "run.json", _pretty_json(summary))

    def save_partial(self, run_id: str, summary: dict[str, Any]) -> None:
        """Keep the summary of a run still in progress, so that a killed run's report loads."""
        with self._tx() as db:
            db.execute("UPDATE runs SET summary=? WHERE run_id=?", (json.dumps(summary), run_id))
        # Whole through a killed process (the rename); not flushed to the disk each time, as the
        # final one is: the journal holds every probe, and the next save replaces this one.
        atomic_write(self.run_dir(run_id) / "run.json", _pretty_json(summary), durable=False)

    def _row_to_info(self, row: tuple[Any, ...]) -> RunInfo:
        return RunInfo(
            run_id=row[0],
            kind=row[1],
            cluster=row[2],
            pipeline=row[3],
            ladder=row[4],
            status=row[5],
            started_at=row[6],
            finished_at=row[7],
            params=json.loads(row[8]),
            summary=json.loads(row[9]) if row[9] else None,
        )

    def runs(self, limit: int | None = None, **filters: str | None) -> list[RunInfo]:
        """Past runs, newest first, optionally filtered by cluster, pipeline, ladder or kind."""
        where, args = [], []
        for key in ("cluster", "pipeline", "ladder", "kind", "status"):
            if filters.get(key):
                where.append(f"{key}=?")
                args.append(filters[key])
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._row_to_info(r) for r in self._db.execute(sql, args).fetchall()]

    def get_run(self, run_id: str | None) -> RunInfo:
        """A run by id, 'latest' or None (the newest); UserError when there is none."""
        if run_id in (None, "latest"):
            runs = self.runs(limit=1)
            if not runs:
                raise UserError(f"no runs recorded in {self.root} yet: start one with `probe bisect`")
            return runs[0]
        row = self._db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            # A unique prefix names a run: every command taking a RUN_ID resolves it here. The
            # prefix is compared as text (substr), so `_` or `%` in it are not patterns.
            rows = self._db.execute(
                "SELECT * FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY started_at DESC",
                (len(run_id), run_id),
            ).fetchall()
            if len(rows) > 1:
                newest = ", ".join(str(r[0]) for r in rows[:3]) + (", ..." if len(rows) > 3 else "")
                raise UserError(f"run id prefix {run_id!r} matches {len(rows)} runs ({newest}): give more of the id")
            if not rows:
                raise UserError(f"no run {run_id!r} in {self.db_path}: `probe runs` lists them")
            row = rows[0]
        return self._row_to_info(row)

    # probes -----------------------------------------------------------------------------
    def probe_dispatched(self, run_id: str, probe_id: str, level: int | None, attempt: int, key: str) -> None:
        """Journal a probe just before it is handed to the cluster."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO probes (probe_id, run_id, level, attempt, cache_key, state, dispatched_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (probe_id, run_id, level, attempt, key, ProbeState.DISPATCHED.value, time.time()),
            )

    def probe_finished(self, record: ProbeRecord, key: str) -> None:
        """Journal a finished probe and write its observation file."""
        pdir = self.probe_dir(record.run_id, record.probe_id)
        # A copy for people and tools, written whole before the journal row that is the record
        # itself (a resume reads the row): no flush to the disk at every probe.
        atomic_write(pdir / "probe.json", record.model_dump_json(indent=2, by_alias=True), durable=False)
        with self._tx() as db:
            db.execute(
                "UPDATE probes SET state=?, finished_at=?, status=?, failure_class=?, signature=?,"
                " record=?, cache_key=? WHERE probe_id=?",
                (
                    ProbeState.DONE.value,
                    time.time(),
                    record.verdict.status,
                    record.verdict.failure_class,
                    record.verdict.signature,
                    record.model_dump_json(by_alias=True),
                    key,
                    record.probe_id,
                ),
            )

    def probes(self, run_id: str) -> list[ProbeRecord]:
        """Finished probes of a run, in dispatch order."""
        rows = self._db.execute(
            "SELECT record FROM probes WHERE run_id=? AND state=? ORDER BY dispatched_at",
            (run_id, ProbeState.DONE.value),
        ).fetchall()
        return [ProbeRecord.model_validate_json(r[0]) for r in rows]

    def finished_keys(self, run_id: str) -> list[str]:
        """The cache keys of a run's finished probes, in dispatch order."""
        rows = self._db.execute(
            "SELECT cache_key FROM probes WHERE run_id=? AND state=? ORDER BY dispatched_at",
            (run_id, ProbeState.DONE.value),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def unfinished(self, run_id: str) -> int:
        """How many probes of a run were dispatched and have not finished."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM probes WHERE run_id=? AND state=?", (run_id, ProbeState.DISPATCHED.value)
        ).fetchone()
        return int(row[0])

    def cancel_unfinished(self, run_id: str) -> int:
        """Mark the probes of a run that never finished as cancelled; returns how many there were."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE probes SET state=?, finished_at=? WHERE run_id=? AND state=?",
                (ProbeState.CANCELLED.value, time.time(), run_id, ProbeState.DISPATCHED.value),
            )
        return int(cur.rowcount)

    def cached(self, key: str, run_id: str | None = None, include_skips: bool = False) -> list[ProbeRecord]:
        """Finished probes with this cache key, oldest first.

        Skips are left out unless `include_skips`: another run's infrastructure trouble says nothing
        about this one, but a run's own skips are part of its history when it is resumed.
        """
        sql = "SELECT record FROM probes WHERE cache_key=? AND state=?"
        if not include_skips:
            sql += " AND status IN ('pass','fail')"
        args: list[Any] = [key, ProbeState.DONE.value]
        if run_id is not None:
            sql += " AND run_id=?"
            args.append(run_id)
        rows = self._db.execute(sql + " ORDER BY dispatched_at", args).fetchall()
        return [ProbeRecord.model_validate_json(r[0]) for r in rows]
