"""What every command shares: global options, consoles, error handling, progress, JSON output."""

from __future__ import annotations

import errno
import functools
import inspect
import json
import os
import shlex
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console, ConsoleDimensions, Group
from rich.markup import escape
from rich.measure import Measurement
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from threshold_probe.cli import complete
from threshold_probe.cli.progress import JobsProgress, LiveJobs, job_text
from threshold_probe.clusters.base import JobState
from threshold_probe.config import ProbeConfig, load_config
from threshold_probe.errors import EXIT_INFRA, ProbeError, UserError
from threshold_probe.interrupts import interruptible
from threshold_probe.journal import journal_error
from threshold_probe.models import ProbeRecord
from threshold_probe.store import Store, path_error
from threshold_probe.textsafe import strip_control

#: The width of stdout when it is not a terminal and COLUMNS does not say: wide enough that no
#: line of a table or report is wrapped (a pipe has no width of its own; `grep` wants whole lines).
PIPED_WIDTH = 4096


class LiveSizeConsole(Console):
    """A Rich console whose size follows COLUMNS and LINES as they are when it prints.

    Rich fixes the width from COLUMNS when the console is made, that is when this module is
    imported; a process that runs several commands (a test runner, an embedding program) then
    keeps the first one's width.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kwargs.get("width") is None:
            self._width = None
        if kwargs.get("height") is None:
            self._height = None


class ProbeConsole(LiveSizeConsole):
    """A Rich console that does not wrap piped output at 80 columns.

    Rich takes 80 columns when no stream is a terminal, which folds run ids, function names and
    paths in `probe ... | cat` and in CI logs. Piped (and no COLUMNS), this console is
    PIPED_WIDTH wide instead, and a full-width Panel is drawn as wide as its content, not as
    wide as that.
    """

    def _piped_wide(self) -> bool:
        return self._width is None and "COLUMNS" not in os.environ and not self.is_terminal

    @property
    def size(self) -> ConsoleDimensions:
        dims = Console.size.fget(self)  # type: ignore[attr-defined]
        return ConsoleDimensions(PIPED_WIDTH, dims.height) if self._piped_wide() else dims

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if kwargs.get("width") is None and self._piped_wide() and len(objects) == 1:
            (obj,) = objects
            if isinstance(obj, Group):  # a page of panels (triage, explain): each fits its own content
                for part in obj.renderables:
                    self.print(part, **kwargs)
                return
            if isinstance(obj, Panel) and obj.expand and obj.width is None:
                kwargs["width"] = min(Measurement.get(self, self.options, obj).maximum, PIPED_WIDTH)
        super().print(*objects, **kwargs)


#: stdout: tables, reports and JSON. stderr: progress, warnings and errors (piped, an error stays
#: one line however long its path).
console = ProbeConsole(soft_wrap=False)
err_console = ProbeConsole(stderr=True)

#: A disk that cannot take what the run writes (reports, logs): exit 3 with the path, no traceback.
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class AppState:
    """The global options of one invocation."""

    config_path: Path | None = None
    reports_dir: Path | None = None
    debug: bool = False
    quiet: bool = False
    _config: ProbeConfig | None = None
    _store: Store | None = None

    def config(self) -> ProbeConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def resolved_reports_dir(self) -> Path:
        if self.reports_dir is not None:
            return self.reports_dir
        env = os.environ.get("PROBE_REPORTS_DIR")
        if env:
            return Path(env)
        cfg = self.config()
        path = Path(cfg.reports_dir).expanduser()
        return path if path.is_absolute() else (cfg.base_dir / path)

    def store(self, readonly: bool = False) -> Store:
        """The journal; `readonly` for commands that only read it (works on a read-only journal)."""
        if self._store is None:
            self._store = Store(self.resolved_reports_dir(), readonly=readonly)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


state = AppState()


def reset_state(config_path: Path | None, reports_dir: Path | None, debug: bool, quiet: bool = False) -> None:
    """Start an invocation with fresh global options (CliRunner reuses the process)."""
    global state
    state.close()
    state = AppState(config_path=config_path, reports_dir=reports_dir, debug=debug, quiet=quiet)


def get_state() -> AppState:
    return state


def fail(message: str, code: int) -> typer.Exit:
    """Print one error line on stderr and return the Exit to raise."""
    # The message may quote far-side text or user input: plain Text, never Rich markup.
    line = Text.assemble(("error:", "bold red"), " ", strip_control(message).replace("\n", " "))
    err_console.print(line, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def safe(text: object) -> str:
    """Far-side or user text for a Rich markup string: control sequences stripped, markup escaped."""
    return escape(strip_control(str(text)))


def known_kind(kind: str | None, kinds: tuple[str, ...] = complete.RUN_KINDS) -> str | None:
    """`kind` when it is one of `kinds`; a misspelt --kind is bad input, not an empty answer."""
    if kind is not None and kind not in kinds:
        raise UserError(f"unknown run kind {kind!r}: choose one of {', '.join(kinds)}")
    return kind


def writable_output(path: Path | None) -> Path | None:
    """`path` when a file could be written there; else the error its write would give.

    Checked before a long command (triage, explain, shrink) starts, so that a path it cannot
    write ends it at once rather than after every probe has run. A folder is made in the nearest
    existing folder and removed again: only a real attempt tells (root ignores mode bits, /proc
    takes nothing).
    """
    if path is None:
        return None
    if path.is_dir():
        raise UserError(f"cannot write {path}: {os.strerror(errno.EISDIR)}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: {os.strerror(errno.ENOTDIR)}")
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".probe-write-"))
    except OSError as exc:
        raise path_error(path, exc) from None
    return path


def command_prefix() -> str:
    """How this invocation called the tool, with its global options: the start of a resume command."""
    parts = ["probe"]
    if state.config_path is not None:
        parts += ["--config", str(state.config_path.resolve())]
    if state.reports_dir is not None:
        parts += ["--reports-dir", str(state.reports_dir.resolve())]
    return shlex.join(parts)


EXIT_CODES = {
    "offline": "0 completed; 2 bad input (a path, ladder, run id or option); 130/143 interrupted by SIGINT/SIGTERM.",
    "cluster": "0 every check passed (without a name: of every cluster); 2 bad input (config, cluster name); "
    "3 infrastructure (the cluster cannot be used); 130/143 interrupted by SIGINT/SIGTERM.",
    "probe": "0 the probe passed (every repeat); 1 it failed (any repeat failed); 2 bad input (config, "
    "cluster name, a --function that cannot load, a missing name or argument); 3 infrastructure (the cluster "
    "cannot be used, or every repeat was skipped); 130/143 interrupted by SIGINT/SIGTERM.",
    "search": "0 completed, whatever was found (a threshold, no failure, a flaky band); 1 a level at or below "
    "--expect-pass-through N failed; 2 bad input "
    "(config, ladder, cluster name, --match regex); 3 infrastructure (the cluster cannot be used, or "
    "was lost mid-run: the run is interrupted and its resume command printed); "
    "130/143 interrupted by SIGINT/SIGTERM: the run is journalled and its resume command printed.",
    "isolate": "0 completed, whatever was found (the driving dimensions, or none); 2 bad input (config, ladder, "
    "cluster name, --match regex, no bisect with a boundary); 3 infrastructure (the cluster cannot be used, or was "
    "lost mid-run: the run is interrupted and its resume command printed); 130/143 interrupted by SIGINT/SIGTERM: "
    "the run is journalled and its resume command printed.",
    "pipelines": "0 completed, whatever was found (a pipeline's threshold, or none); 2 bad input (config, ladder, "
    "cluster or pipeline name); 3 infrastructure (the cluster cannot be used); 130/143 interrupted by "
    "SIGINT/SIGTERM.",
    "cluster_list": "0 listed; 2 bad input (a config that does not parse); 130/143 interrupted by SIGINT/SIGTERM.",
    "journal": "0 completed (also on a read-only journal); 2 bad input (a run id that does not exist or a prefix "
    "shared by several runs, an unknown format or kind, a path that cannot be written); 3 the journal cannot be "
    "read; 130/143 interrupted by SIGINT/SIGTERM.",
    "gc": "0 completed (also with nothing to remove); 2 bad input (an --older-than it cannot read); 3 the journal "
    "cannot be used; 130/143 interrupted by SIGINT/SIGTERM.",
    "check": "0 no function reaches a threshold of the run; 1 at least one does (one line each); 2 bad input "
    "(a path, a run id or summary file, a format), or a run check cannot predict (no isolated driver, or "
    "only drivers that are not static: memory, runtime, output); 130/143 interrupted by SIGINT/SIGTERM.",
    "triage": "0 completed, whatever was found (failures are findings); 2 bad input (a path, config, cluster"
    " or pipeline name, a run id); 3 infrastructure (the cluster cannot be used, or was lost mid-run: the run is"
    " interrupted and its resume command printed); 130/143 interrupted by SIGINT/SIGTERM (resume with --resume).",
    "shrink": "0 shrunk (the reproducer, its diff and figures are shown); 1 the target did not fail the same way"
    " on its first probe (the new verdict is shown); 2 bad input (a run or level that passed: nothing to shrink,"
    " a --function that cannot load); 3 infrastructure (the cluster cannot be used, or was lost: resume with"
    " --resume); 130/143 interrupted by SIGINT/SIGTERM: resume with --resume.",
    "repro": "0 the folder was written; 2 bad input (a run or level that did not fail, no shrink for --shrunk,"
    " an output folder that is not empty); 130/143 interrupted by SIGINT/SIGTERM.",
    "nightly": "0 no regression; 1 regression (a threshold moved down, or a level that passed now "
    "fails); 2 bad input; 3 infrastructure; 130/143 interrupted by SIGINT/SIGTERM.",
}
"""The exit codes each command documents at the end of its --help (see docs/exit-codes.md)."""

_EXIT_KIND = {
    "run": "probe",
    "sweep": "search",
    "bisect": "search",
    "isolate": "isolate",
    "compare_pipelines": "pipelines",
    "nightly": "nightly",
    "list_clusters": "cluster_list",
    "report": "journal",
    "runs": "journal",
    "history": "journal",
    "compare": "journal",
    "gc": "gc",
    "check": "cluster",
    "check_code": "check",
    "triage": "triage",
    "explain": "triage",
    "shrink": "shrink",
    "repro": "repro",
}


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: expected errors print one line and exit with their documented code.

    The command's help gains its exit codes (EXIT_CODES), so that every --help documents them.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with interruptible():
                return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except ProbeError as exc:
            if state.debug:
                traceback.print_exc()
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except sqlite3.DatabaseError as exc:
            # Damage found while reading rows (the statement itself started fine).
            if state.debug:
                traceback.print_exc()
            path = state._store.db_path if state._store is not None else Path("probe.db")
            raise fail(str(journal_error(path, exc)), EXIT_INFRA) from None
        except OSError as exc:
            if exc.errno not in _DISK_ERRNOS:
                if state.debug:
                    traceback.print_exc()
                    raise
                message = f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
                raise fail(message, 1) from None
            if state.debug:
                traceback.print_exc()
            where = exc.filename or state.resolved_reports_dir()
            raise fail(
                f"cannot write {where}: {exc.strerror}: free space there, or use --reports-dir on another disk",
                EXIT_INFRA,
            ) from None
        except Exception as exc:
            if state.debug:
                traceback.print_exc()
                raise
            raise fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1) from None
        finally:
            state.close()

    codes = EXIT_CODES[_EXIT_KIND.get(fn.__name__, "offline")]
    wrapper.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\nExit codes: {codes}"
    return wrapper


def fit_table(
    title: str,
    rows: list[dict[str, str]],
    columns: list[str],
    *,
    whole: tuple[str, ...],
    droppable: list[str],
    right: tuple[str, ...] = (),
) -> Table:
    """A table whose `whole` columns (identifiers: run ids, names, paths) are never cut or folded.

    When the table is wider than the console, the `droppable` columns go, in that order, before
    anything is cut. The `right` columns (figures) keep each cell on one line; the other columns
    wrap between words, never inside one. Cells are Rich markup (escape user text with `safe`).
    An identifier wider than the terminal is still printed whole: the terminal wraps the line,
    nothing is lost.
    """
    columns, droppable = list(columns), [c for c in droppable if c in columns]

    def cells(col: str) -> list[str]:
        return [col, *(Text.from_markup(r[col]).plain for r in rows)]

    def need(col: str) -> int:
        """The narrowest a column can be: its longest cell, or its longest word if it wraps."""
        if col not in whole and col not in right:
            return max((Text(word).cell_len for cell in cells(col) for word in cell.split()), default=1)
        return max(Text(cell).cell_len for cell in cells(col))

    while droppable and sum(need(c) + 3 for c in columns) + 1 > console.width:
        columns.remove(droppable.pop(0))
    narrowest = sum(need(c) + 3 for c in columns) + 1
    # Too wide as it is: the wrapping columns are set to their longest word, then given back what
    # room is left, the widest text first (Rich alone can still cut a column to fit).
    widths: dict[str, int | None] = dict.fromkeys(columns)
    natural = {c: max(Text(cell).cell_len for cell in cells(c)) for c in columns}
    if sum(natural[c] + 3 for c in columns) + 1 > console.width:
        spare = max(0, console.width - narrowest)
        for col in sorted(columns, key=lambda c: need(c) - natural[c]):
            if col not in whole and col not in right:
                widths[col] = need(col) + min(spare, natural[col] - need(col))
                spare -= widths[col] - need(col)  # type: ignore[operator]
    table = Table(title=title, title_justify="left", width=narrowest if narrowest > console.width else None)
    for col in columns:
        table.add_column(
            col,
            justify="right" if col in right else "left",
            no_wrap=col in whole or col in right,
            min_width=need(col),
            width=widths[col],
        )
    for r in rows:
        table.add_row(*(r[c] for c in columns))
    return table


def print_table(table: Table) -> None:
    """Print a fit_table; one wider than the terminal keeps its identifiers whole."""
    console.print(table, width=max(console.width, table.width or 0), crop=False)


def level_range(
    from_level: int | None, to_level: int | None, lo: int | None, hi: int | None
) -> tuple[int | None, int | None]:
    """--from/--to, or their older spellings --lo/--hi (hidden): one value each."""
    if from_level is not None and lo is not None:
        raise UserError("--lo is the older spelling of --from: give one of them")
    if to_level is not None and hi is not None:
        raise UserError("--hi is the older spelling of --to: give one of them")
    return (from_level if from_level is not None else lo, to_level if to_level is not None else hi)


FromOpt = Annotated[int | None, typer.Option("--from", help="First level (default: the ladder's first).")]
ToOpt = Annotated[int | None, typer.Option("--to", help="Last level (default: the ladder's last).")]
LoOpt = Annotated[int | None, typer.Option("--lo", hidden=True, help="Older spelling of --from.")]
HiOpt = Annotated[int | None, typer.Option("--hi", hidden=True, help="Older spelling of --to.")]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster", "-C", help="Cluster name from probe.toml; `local` always exists.", autocompletion=complete.clusters
    ),
]
LadderOpt = Annotated[
    str | None,
    typer.Option(
        "--ladder",
        "-l",
        help="Ladder name (default, seed, features) or a TOML path.",
        autocompletion=complete.ladders,
    ),
]


def print_json(data: Any) -> None:
    """Stable JSON on stdout: sorted keys, two-space indent, no colour."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


_VERDICT_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def verdict_text(record: ProbeRecord) -> str:
    v = record.verdict
    style = _VERDICT_STYLE.get(v.status, "")
    cls = f" {escape(strip_control(v.failure_class))}" if v.failure_class else ""
    return f"[{style}]{v.status}{cls}[/]"


class RichProgress:
    """A Rich progress display on stderr, with one line per finished probe as it finishes, and
    each live probe's job and scheduler state (see cli/progress.py)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._progress: Progress | None = None
        self._task: Any = None
        self._jobs = LiveJobs()
        self._width = 10

    def begin(self, description: str, total: int | None) -> None:
        if self.quiet:
            return
        self._progress = JobsProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            jobs=self._jobs,
            console=err_console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def job_state(self, label: str, state: JobState) -> None:
        """A live job moved: redrawn under the bar on a terminal; piped, one line per change."""
        if self.quiet or not self._jobs.update(label, state):
            return
        if not err_console.is_terminal:
            target = self._progress.console if self._progress is not None else err_console
            target.print(job_text(label, state), highlight=False)

    def probe_done(self, record: ProbeRecord, label: str | None = None) -> None:
        self._jobs.drop(record.probe_id)
        if self.quiet:
            return
        obs = record.observation
        where = label or (f"level {record.level}" if record.level is not None else obs.workload)
        cached = " (cached)" if record.cached_from else ""
        peak = f"{obs.peak_rss_mb:.0f} MB" if obs.peak_rss_mb is not None else "-"
        where = strip_control(where)
        # As wide as the widest name so far: isolation's `memory_mb=266` is wider than `level 3`.
        self._width = max(self._width, len(where))
        line = f"  {escape(where).ljust(self._width + len(escape(where)) - len(where))} {verdict_text(record)}"
        line += f"  {obs.wall_s:6.2f}s  {peak}{cached}"
        if self._progress is not None:
            self._progress.console.print(line, highlight=False)
            self._progress.advance(self._task)
        else:
            err_console.print(line, highlight=False)

    def note(self, message: str) -> None:
        if self.quiet and not message.startswith("warning:"):  # a warning is shown even when quiet
            return
        target = self._progress.console if self._progress is not None else err_console
        target.print(Text(strip_control(message), style="dim"), highlight=False)

    def end(self) -> None:
        self._jobs.clear()
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
