"""The journal's SQLite file: its schema and versions, how it is opened, and one line per failure.

The schema version is SQLite's `PRAGMA user_version`:

- 0: a new, empty file (or a journal of a release that did not number its schema, which is 1);
- 1: tables `runs`, `probes` and `remote_work`, states as free text;
- 2: as 1, and the journal itself refuses a run or probe state it does not know (CHECK).

Opening a journal to write brings an older one to SCHEMA_VERSION in place, in one transaction:
a journal that cannot be written (read-only, full disk) is left as it was, with the usual one
line. A journal newer than this release is refused (JournalError, exit 3), and so is one whose
rows do not fit the new version. The commands that only read open an older journal as it is.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from threshold_probe import __version__
from threshold_probe.errors import JournalError

#: The schema this release writes; see the module docstring for what each version holds.
SCHEMA_VERSION = 2

# Version 1, as journals without a version number hold it. Frozen: a change is a new version.
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    cluster TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    ladder TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    params TEXT NOT NULL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS probes (
    probe_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    level INTEGER,
    attempt INTEGER NOT NULL,
    cache_key TEXT NOT NULL,
    state TEXT NOT NULL,
    dispatched_at REAL NOT NULL,
    finished_at REAL,
    status TEXT,
    failure_class TEXT,
    signature TEXT,
    record TEXT
);
CREATE TABLE IF NOT EXISTS remote_work (
    cluster TEXT NOT NULL,
    folder TEXT NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    job_name TEXT,
    job_id TEXT,
    state TEXT NOT NULL,
    keep INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (cluster, folder)
);
CREATE INDEX IF NOT EXISTS remote_work_live ON remote_work(cluster, state);
CREATE INDEX IF NOT EXISTS probes_run ON probes(run_id);
CREATE INDEX IF NOT EXISTS probes_cache ON probes(cache_key, state);
"""

# Version 2: the words of states.RunState (stored ones) and states.ProbeState, frozen here.
_RUNS_V2 = """
CREATE TABLE {name} (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    cluster TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    ladder TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'interrupted', 'error')),
    started_at REAL NOT NULL,
    finished_at REAL,
    params TEXT NOT NULL,
    summary TEXT
)"""
_PROBES_V2 = """
CREATE TABLE {name} (
    probe_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    level INTEGER,
    attempt INTEGER NOT NULL,
    cache_key TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('dispatched', 'done', 'cancelled')),
    dispatched_at REAL NOT NULL,
    finished_at REAL,
    status TEXT,
    failure_class TEXT,
    signature TEXT,
    record TEXT
)"""
_INDEXES_V2 = (
    "CREATE INDEX IF NOT EXISTS probes_run ON probes(run_id)",
    "CREATE INDEX IF NOT EXISTS probes_cache ON probes(cache_key, state)",
)


def _statements(script: str) -> list[str]:
    # One at a time: executescript would commit the migration's transaction half way.
    return [s.strip() for s in script.split(";") if s.strip()]


def _to_v1(db: sqlite3.Connection) -> None:
    """A new file gets the tables; a journal older than run ownership gets `remote_work`."""
    for statement in _statements(_SCHEMA_V1):
        db.execute(statement)


def _to_v2(db: sqlite3.Connection) -> None:
    """Rebuild `runs` and `probes` with their states checked, keeping every row as it was."""
    for table, ddl in (("runs", _RUNS_V2), ("probes", _PROBES_V2)):
        new = f"{table}__v2"
        db.execute(ddl.format(name=new))
        db.execute(f"INSERT INTO {new} SELECT * FROM {table}")
        db.execute(f"DROP TABLE {table}")
        db.execute(f"ALTER TABLE {new} RENAME TO {table}")
    for statement in _INDEXES_V2:
        db.execute(statement)


#: MIGRATIONS[v] brings a journal from version v to v + 1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _to_v1, 1: _to_v2}


def _disk_full(path: Path) -> bool:
    # SQLite says "disk I/O error" when the WAL index cannot grow on a full disk.
    try:
        return shutil.disk_usage(path.parent).free < 64 * 1024
    except OSError:
        return False


def _read_only_folder(path: Path) -> bool:
    # A WAL journal in a folder that cannot be written cannot be opened to write: SQLite then says
    # "unable to open database file" of the -wal and -shm files it could not make beside it.
    return path.exists() and not os.access(path.parent, os.W_OK)


def journal_error(path: Path, exc: sqlite3.Error) -> JournalError:
    """One line for a journal that cannot be used: the path, what went wrong, and what to do."""
    text = str(exc)
    low = text.lower()
    if "malformed" in low or "not a database" in low or "encrypted" in low:
        return JournalError(
            f"journal {path} is damaged ({text}): move it away (mv {path} {path}.damaged) to start a new"
            f" journal, or try `sqlite3 {path} .recover`; each run keeps its run.json in its folder"
        )
    if "full" in low or ("i/o error" in low and _disk_full(path)):
        return JournalError(
            f"cannot write journal {path}: the disk is full: free space there, or use --reports-dir on another disk"
        )
    if "readonly" in low or "read-only" in low or ("unable to open" in low and _read_only_folder(path)):
        return JournalError(
            f"journal {path} is read-only: `probe runs`, `report`, `history` and `compare` can read it;"
            " copy the reports folder somewhere writable to run probes"
        )
    if "locked" in low or "busy" in low:
        return JournalError(f"journal {path} stayed locked by another process ({text}): try again")
    if "i/o error" in low:
        return JournalError(
            f"cannot read or write journal {path} ({text}): check the disk, or use --reports-dir on another one"
        )
    if "unable to open" in low:
        return JournalError(f"cannot open journal {path} ({text}): check that its folder exists and is readable")
    return JournalError(f"journal {path}: {text}")


def too_new(path: Path, version: int) -> JournalError:
    """The one line for a journal written by a newer release than this one."""
    return JournalError(
        f"journal {path} has schema version {version}, newer than threshold-probe {__version__} knows"
        f" (up to {SCHEMA_VERSION}): upgrade threshold-probe, or use another --reports-dir"
    )


class JournalConnection(sqlite3.Connection):
    """A connection whose statements fail with one JournalError line (path, cause, what to do)."""

    journal_path: Path = Path("probe.db")

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # a mistake in this code, not a state of the journal
        except sqlite3.DatabaseError as exc:
            raise journal_error(self.journal_path, exc) from None


def _connect(path: Path, target: str, uri: bool = False) -> JournalConnection:
    db = sqlite3.connect(
        target,
        timeout=30,
        isolation_level=None,
        check_same_thread=False,
        uri=uri,
        factory=JournalConnection,
    )
    assert isinstance(db, JournalConnection)
    db.journal_path = path
    return db


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the journal to SCHEMA_VERSION in one transaction; refuse one newer than that."""
    version = _version(db)
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise too_new(path, version)
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db)  # another process may have migrated it while this one waited
        if version > SCHEMA_VERSION:
            raise too_new(path, version)
        for step in range(version, SCHEMA_VERSION):
            MIGRATIONS[step](db)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException as exc:
        db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.IntegrityError):
            raise JournalError(
                f"journal {path} cannot be brought to schema version {SCHEMA_VERSION} ({exc}): it holds a"
                " run or probe state this release does not know; it was left as it was"
            ) from None
        raise
    db.execute("COMMIT")


def open_writable(path: Path) -> JournalConnection:
    """Open (and create, and migrate) the journal. Switching a new file to WAL takes a lock that
    does not wait on the busy timeout, so processes opening one fresh journal together retry."""
    deadline = time.monotonic() + 30
    while True:
        db: JournalConnection | None = None
        try:
            db = _connect(path, str(path))
            version = _version(db)
            if version > SCHEMA_VERSION:  # before WAL mode is set: nothing is written to it
                raise too_new(path, version)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db, path)
            return db
        except JournalError as exc:
            if db is not None:
                db.close()
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except sqlite3.Error as exc:  # connect is not wrapped
            if db is not None:
                db.close()
            if "locked" in str(exc) and time.monotonic() <= deadline:
                time.sleep(0.05)
                continue
            raise journal_error(path, exc) from None


def open_empty(path: Path) -> JournalConnection:
    """An empty journal in memory, for reading a journal `path` that does not exist yet: a command
    that only reads leaves no file behind."""
    db = _connect(path, ":memory:")
    migrate(db, path)
    return db


def open_readonly(path: Path) -> JournalConnection:
    """mode=ro; immutable=1 when SQLite cannot even make its shared-memory file (a read-only
    folder or a full disk, holding a WAL journal that no process is writing: what the last
    writer had not checkpointed is then not seen). An older journal is read as it is."""
    base = "file:" + urllib.parse.quote(str(path.resolve()))
    for query in ("?mode=ro", "?mode=ro&immutable=1"):
        db: JournalConnection | None = None
        try:
            db = _connect(path, base + query, uri=True)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            version = _version(db)
            if version > SCHEMA_VERSION:
                raise too_new(path, version)
            return db
        except JournalError as exc:
            if db is not None:
                db.close()
            # Damage stays damage; anything else (no -shm can be made: a read-only folder,
            # a full disk) is worth the immutable open, which needs no file beside the journal.
            if "damaged" in str(exc) or "newer than" in str(exc) or "immutable" in query:
                raise
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            if "immutable" in query:
                raise journal_error(path, exc) from None
    raise AssertionError("unreachable")
