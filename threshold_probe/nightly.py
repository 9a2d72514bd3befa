"""Nightly regression runs: the [nightly] matrix (clusters x pipelines x ladders) against baselines.

A scaled user function ([nightly] functions) is a cell like a ladder, named by its FILE:FUNC. Its
series is the function's name, arguments and scaled values, not its source: the source is what a
nightly watches, so an edit that moves the threshold is compared with the night before (and named
in the cell's changes) instead of starting a new baseline.

Each cluster runs in its own thread (its cells one after another, each with a fresh search that
reuses no cached verdict, and each run's preflight first). Every run is compared with a baseline
of the same cell (threshold_probe/cell.py: cluster fingerprint, pipeline, ladder content,
limits, level range) as soon as it finishes, so that the progress line and the table agree: a
run id or first-failing level pinned in [nightly.baseline], else the previous nightly.json's run
of the matrix entry, else the newest completed run in the journal, whichever is first of the
same cell. When the entry's latest earlier run is of another cell (the config, limits,
interpreter or ladder changed), the night starts a new baseline and names the change.

Exit code: 1 when anything regressed (within one cell: a threshold moved down, or a level that
passed now fails), else 3 when a cluster could not be reached (or a cell could not complete),
else 0. A new baseline is not a regression.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import json
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from threshold_probe.cell import cell_of, differences, digest
from threshold_probe.compare import Comparison, compare_runs, compare_threshold
from threshold_probe.config import ProbeConfig
from threshold_probe.errors import EXIT_INFRA, EXIT_OK, EXIT_REGRESSION, InfraError, ProbeError, UserError, article
from threshold_probe.models import ProbeRecord
from threshold_probe.render import html as html_render
from threshold_probe.render.nightly import nightly_html, nightly_junit
from threshold_probe.store import Store, atomic_write, path_error
from threshold_probe.summary import SEARCH_KINDS, RunSummary
from threshold_probe.view import first_fail, run_view, stored_summary, threshold_sentence
from threshold_probe.view.nightly import NightCellView, NightlyCell, NightlyResult, expected_failures

if TYPE_CHECKING:
    from threshold_probe.session import SearchOptions

# Opening the journal sets WAL mode, which needs a moment of exclusive access: open one at a time.
_STORE_OPEN = threading.Lock()

NightlyKind = Literal["sweep", "bisect"]

SUMMARY_JSON = "nightly.json"
SUMMARY_HTML = "nightly.html"
SUMMARY_JUNIT = "nightly.junit.xml"
NOTIFY_TIMEOUT_S = 120.0


class _CellRun:
    """What a worker thread brings back for one cell (summaries and records stay in memory)."""

    def __init__(self, cell: NightlyCell, summary: RunSummary | None = None) -> None:
        self.cell = cell
        self.summary = summary
        self.records: list[ProbeRecord] = []
        self.comparison: Comparison | None = None
        self.baseline_summary: RunSummary | None = None


def _cell_view(run: _CellRun) -> NightCellView:
    """The cell as the night's reports show it."""
    view = run_view(run.summary, run.records) if run.summary is not None else None
    known = expected_failures(run.cell, run.summary, run.baseline_summary)
    return NightCellView(run.cell, view, known)


def nightly_kind(config: ProbeConfig) -> NightlyKind:
    """The search each cell runs: [nightly] kind = "sweep" (default: every level) or "bisect"."""
    extra = config.nightly.model_extra or {}
    kind = getattr(config.nightly, "kind", None) or extra.get("kind", "sweep")
    if kind not in ("sweep", "bisect"):
        raise UserError(f"[nightly] kind must be sweep or bisect, not {kind!r}")
    return kind  # type: ignore[no-any-return]


def output_dir(config: ProbeConfig, override: Path | None) -> Path:
    """The folder nightly writes to: --output, else [nightly] output relative to the config file."""
    if override is not None:
        return override
    path = Path(config.nightly.output).expanduser()
    return path if path.is_absolute() else config.base_dir / path


def _ladder_arg(config: ProbeConfig, ladder: str) -> str:
    # A ladder given as a path in probe.toml is relative to the file, not to the current folder.
    if ladder.endswith(".toml") and not Path(ladder).is_absolute():
        candidate = config.base_dir / ladder
        if candidate.is_file():
            return str(candidate)
    return ladder


#: The keys [nightly] takes.
NIGHTLY_KEYS = ("clusters", "kind", "pipelines", "ladders", "functions", "output", "baseline")
#: The keys of one [nightly] functions entry.
FUNCTION_KEYS = ("function", "scale", "steps", "values", "args", "ship_local_modules")


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(config: ProbeConfig) -> None:
    """Unknown [nightly] keys (a typo such as `cluster =` or `outptu =`) are a UserError."""
    for key in config.nightly.model_extra or {}:
        raise UserError(
            f"[nightly] has no key {key!r}{_did_you_mean(key, NIGHTLY_KEYS)} (keys: {', '.join(NIGHTLY_KEYS)})"
        )
    for name, value in (
        ("clusters", config.nightly.clusters),
        ("pipelines", config.nightly.pipelines),
        ("ladders", config.nightly.ladders),
    ):
        if value is not None and not value:
            whole = " (leave the key out to run every configured cluster)" if name == "clusters" else ""
            raise UserError(f"[nightly] {name} is an empty list: name at least one{whole}")


def check_baselines(config: ProbeConfig, cells: Sequence[tuple[str, str, str]], store: Store) -> None:
    """Every [nightly.baseline] pin names a cell of the matrix, has a valid form, and a pinned run
    exists with a completed summary: checked before anything runs."""
    keys = [f"{c}/{p}/{lad}" for c, p, lad in cells]
    for key in config.nightly.baseline:
        if key not in keys:
            raise UserError(
                f"[nightly.baseline] {key!r} is not a cell of the matrix{_did_you_mean(key, keys)}"
                f" (cells: {', '.join(keys)})"
            )
        pinned_run, _level = _pinned(config, key)
        if pinned_run is not None:
            _pinned_summary(store, key, pinned_run)


def _function_arg(config: ProbeConfig, spec: str) -> str:
    # FILE:FUNC in probe.toml is relative to the file, not to the current folder.
    file, sep, attr = spec.rpartition(":")
    if sep and file and not Path(file).expanduser().is_absolute():
        candidate = config.base_dir / file
        if candidate.is_file():
            return f"{candidate}:{attr}"
    return spec


class NightlyFunction:
    """One [nightly] functions entry: a user's function with one argument scaled."""

    def __init__(self, config: ProbeConfig, index: int, entry: object) -> None:
        where = f"[nightly] functions[{index}]"
        if not isinstance(entry, dict):
            raise UserError(f'{where}: give a table {{function = "FILE:FUNC", scale = "NAME=LO..HI"}}')
        for key in entry:
            if key not in FUNCTION_KEYS:
                raise UserError(
                    f"{where} has no key {key!r}{_did_you_mean(str(key), FUNCTION_KEYS)}"
                    f" (keys: {', '.join(FUNCTION_KEYS)})"
                )
        function, scale = entry.get("function"), entry.get("scale")
        if not isinstance(function, str) or not isinstance(scale, str):
            raise UserError(f'{where}: give function = "FILE:FUNC" and scale = "NAME=LO..HI" (or NAME with values)')
        steps, values, args = entry.get("steps"), entry.get("values"), entry.get("args", {})
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
            raise UserError(f"{where}: steps must be a whole number")
        if isinstance(values, list):
            values = ",".join(str(v) for v in values)
        if values is not None and not isinstance(values, str):
            raise UserError(f"{where}: values must be a list of numbers")
        if not isinstance(args, dict):
            raise UserError(f"{where}: args must be a table of NAME = VALUE")
        self.label = function
        self.function = _function_arg(config, function)
        self.scale = scale
        self.steps: int | None = steps
        self.values: str | None = values
        self.args: dict[str, Any] = dict(args)
        self.ship_local_modules = bool(entry.get("ship_local_modules", False))

    def check(self) -> None:
        """Load the function with its first value: a bad target or argument is the user's to fix now."""
        from threshold_probe.target import scaled_ladder

        scaled_ladder(
            self.function, self.args, self.scale, self.steps, self.values, ship_local_modules=self.ship_local_modules
        )


def nightly_functions(config: ProbeConfig) -> dict[str, NightlyFunction]:
    """The [nightly] functions entries by their FILE:FUNC, as the matrix names them."""
    found: dict[str, NightlyFunction] = {}
    for i, entry in enumerate(config.nightly.functions):
        fn = NightlyFunction(config, i, entry)
        if fn.label in found or fn.label in config.nightly.ladders:
            raise UserError(f"[nightly] functions: {fn.label!r} is named twice")
        found[fn.label] = fn
    return found


def _ladders(config: ProbeConfig) -> list[str]:
    # Functions alone make a matrix: the default ladder runs beside them only when asked for.
    if config.nightly.functions and "ladders" not in config.nightly.model_fields_set:
        return []
    return list(config.nightly.ladders)


def matrix(config: ProbeConfig) -> list[tuple[str, str, str]]:
    """The (cluster, pipeline, ladder or function) cells, validated: a bad name is a UserError
    before any run."""
    from threshold_probe.ladder import load_ladder
    from threshold_probe.pipelines import make_pipeline

    check_keys(config)
    clusters = config.nightly.clusters if config.nightly.clusters is not None else config.cluster_names()
    for name in clusters:
        config.cluster(name)
    for p in config.nightly.pipelines:
        make_pipeline(p)
    ladders = _ladders(config)
    for lad in ladders:
        load_ladder(_ladder_arg(config, lad))
    functions = nightly_functions(config)
    for fn in functions.values():
        fn.check()
    what = [*ladders, *functions]
    if not (clusters and config.nightly.pipelines and what):
        raise UserError("[nightly] matrix is empty: give at least one cluster, pipeline and ladder (or function)")
    return [(c, p, lad) for c in clusters for p in config.nightly.pipelines for lad in what]


def series_key(summary: RunSummary) -> str:
    """Which runs a nightly compares: the cell, except that a function's source may change.

    A function's cell holds a hash of its source, arguments and values together; the series
    keeps its name, arguments and values (the ladder of values) and drops the source.
    """
    cell = cell_of(summary)
    if cell.function is None:
        return cell.key
    args = (summary.params.get("options") or {}).get("args") if summary.params else None
    return digest(
        {
            "cell": cell.model_copy(update={"function_hash": None}).key,
            "values": cell.ladder_hash,
            "levels": cell.levels,
            "args": args or {},
        },
        12,
    )


def _pinned(config: ProbeConfig, key: str) -> tuple[str | None, int | None]:
    """A pinned baseline for a cell: (run id, None) or (None, first failing level) or (None, None)."""
    table = config.nightly.baseline
    value = table.get(key)
    if value is None:
        return None, None
    if isinstance(value, bool):
        raise UserError(f"[nightly.baseline] {key!r}: give a run id, a level number or a table")
    if isinstance(value, int):
        return None, value
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict):
        run, threshold = value.get("run"), value.get("threshold")
        if run is not None:
            return str(run), None
        if isinstance(threshold, int) and not isinstance(threshold, bool):
            return None, threshold
    raise UserError(f"[nightly.baseline] {key!r}: give a run id, a level number, or {{run=...}} / {{threshold=N}}")


def _pinned_summary(store: Store, key: str, run_id: str) -> RunSummary:
    """The completed summary of the run pinned as `key`'s baseline; UserError naming what the run is
    when it is not a search, or has not completed."""
    try:
        kind: str | None = store.get_run(run_id).kind
    except UserError:
        kind = None
    if kind is not None and kind not in SEARCH_KINDS:
        raise UserError(
            f"[nightly.baseline] {key!r} names run {run_id!r}, {article(kind)} run: a baseline"
            " is the run of a sweep or bisect of that cell"
        )
    summary = _summary_of(store, run_id)
    if summary is None:
        raise UserError(
            f"[nightly.baseline] {key!r} names run {run_id!r}, which has no completed summary"
            " in the journal: `probe runs` lists them"
        )
    return summary


def _summary_of(store: Store, run_id: str) -> RunSummary | None:
    try:
        info = store.get_run(run_id)
    except UserError:
        return None
    return stored_summary(info) if info.status == "completed" else None


def previous_cells(out: Path) -> dict[str, str]:
    """cell key -> run id from the previous nightly.json in the output folder (if any)."""
    try:
        data = json.loads((out / SUMMARY_JSON).read_text())
    except (OSError, ValueError):
        return {}
    cells = data.get("cells") if isinstance(data, dict) else None
    found: dict[str, str] = {}
    for c in cells or []:
        if isinstance(c, dict) and c.get("run_id") and c.get("status") in ("ok", "regressed", "new-baseline"):
            found[f"{c.get('cluster')}/{c.get('pipeline')}/{c.get('ladder')}"] = str(c["run_id"])
    return found


def _find_baseline(
    store: Store, summary: RunSummary, *, previous: str | None, before: float
) -> tuple[RunSummary | None, RunSummary | None]:
    """(the newest earlier run of the same cell, or None; the newest earlier run of the matrix
    entry when that one is of another cell, or None).

    Candidates, in order: the previous nightly.json's run of the entry, then the entry's
    completed runs in the journal, newest first, started before this night.
    """
    key = series_key(summary)
    candidates: list[str] = [previous] if previous is not None else []
    for info in store.runs(
        cluster=summary.cluster, pipeline=summary.pipeline, ladder=summary.ladder, kind=summary.kind
    ):
        if info.started_at < before and info.status == "completed" and info.run_id not in candidates:
            candidates.append(info.run_id)
    other: RunSummary | None = None
    for run_id in candidates:
        found = _summary_of(store, run_id)
        if found is None or found.started_at >= before:
            continue
        if series_key(found) == key:
            return found, other
        if other is None:
            other = found
    return None, other


def _cell_options(fn: NightlyFunction | None) -> SearchOptions:
    """A fresh search (no cached verdict) of a ladder, or of a scaled function."""
    from threshold_probe.session import SearchOptions

    if fn is None:
        return SearchOptions(fresh=True, preflight=True)
    return SearchOptions(
        fresh=True,
        preflight=True,
        function=fn.function,
        args=dict(fn.args),
        scale=fn.scale,
        steps=fn.steps,
        values=fn.values,
        ship_local_modules=fn.ship_local_modules,
    )


def _run_cluster(
    cluster: str,
    cells: Sequence[tuple[str, str, str]],
    *,
    config: ProbeConfig,
    reports_dir: Path,
    kind: NightlyKind,
    on_cell: Callable[[NightlyCell], None] | None,
    previous: dict[str, str],
    started: float,
) -> tuple[list[_CellRun], str | None]:
    """One cluster's cells, in order; stops at the first sign that the cluster cannot be reached."""
    from threshold_probe.session import LimitOverrides, run_search

    with _STORE_OPEN:
        store = Store(reports_dir)  # sqlite connections must not cross threads: one per worker
    results: list[_CellRun] = []
    unreachable: str | None = None
    functions = nightly_functions(config)
    try:
        for _c, pipeline, ladder in cells:
            base = NightlyCell(cluster=cluster, pipeline=pipeline, ladder=ladder, status="ok")
            if unreachable is not None:
                base.status, base.error = "unreachable", unreachable
                results.append(_CellRun(base))
                continue
            try:
                summary = run_search(
                    kind,
                    config=config,
                    store=store,
                    cluster=cluster,
                    pipeline=pipeline,
                    ladder=config.defaults.ladder if ladder in functions else _ladder_arg(config, ladder),
                    overrides=LimitOverrides(),
                    options=_cell_options(functions.get(ladder)),
                    progress=None,
                )
            except InfraError as exc:
                unreachable = str(exc)
                base.status, base.error = "unreachable", unreachable
                results.append(_CellRun(base))
            except ProbeError as exc:
                base.status, base.error = "error", str(exc)
                results.append(_CellRun(base))
            except Exception as exc:  # a bug in one cluster's code must not lose the other cells
                base.status, base.error = "error", f"{type(exc).__name__}: {exc}"
                results.append(_CellRun(base))
            else:
                run = _CellRun(base, summary)
                run.records = store.probes(summary.run_id)
                base.run_id = summary.run_id
                base.first_fail = first_fail(summary)
                base.threshold = threshold_sentence(summary)
                base.failure_class = summary.failure.failure_class if summary.failure else None
                results.append(run)
                # Compared now, so that the progress line says what the table will say.
                try:
                    _compare(run, store, config, previous, started)
                except ProbeError as exc:
                    base.status, base.error = "error", f"comparing with the baseline: {exc}"
            if on_cell is not None:
                on_cell(base)
    finally:
        store.close()
    return results, unreachable


def _compare(
    run: _CellRun,
    store: Store,
    config: ProbeConfig,
    previous: dict[str, str],
    since: float,
) -> None:
    cell, summary = run.cell, run.summary
    if summary is None:
        return
    pinned_run, pinned_level = _pinned(config, cell.key)
    if pinned_level is not None:
        run.comparison = compare_threshold(pinned_level, summary)
        cell.baseline = f"pinned:{pinned_level}"
        cell.baseline_first_fail = pinned_level
    else:
        if pinned_run is not None:
            pinned = _pinned_summary(store, cell.key, pinned_run)
            same = series_key(pinned) == series_key(summary)
            base, other = (pinned, None) if same else (None, pinned)
        else:
            base, other = _find_baseline(store, summary, previous=previous.get(cell.key), before=since)
        if base is None:
            if other is not None:
                # Another cell: a threshold under other limits or another interpreter is another
                # measurement, so this run starts a new series instead of regressing the old one.
                cell.status = "new-baseline"
                cell.previous_run = other.run_id
                cell.changes = differences(cell_of(other), cell_of(summary))
            return
        run.baseline_summary = base
        # A function's edited source is the same series; say what changed beside the verdict.
        cell.changes = differences(cell_of(base), cell_of(summary))
        run.comparison = compare_runs(base, summary, same_function=True)
        cell.baseline = base.run_id
        cell.baseline_first_fail = run.comparison.first_fail_a
    cmp = run.comparison
    cell.threshold_moved = cmp.threshold_moved
    cell.regressions = list(cmp.regressions)
    cell.newly_failing = [f.level for f in cmp.flipped if f.regression]
    if cmp.regressed:
        cell.status = "regressed"


def notify(command: str, summary_path: Path, result: NightlyResult) -> dict[str, Any]:
    """Run the notify command with the summary's path (appended, or in place of {path})."""
    argv = shlex.split(command)
    if not argv:
        raise UserError("--notify-command is empty")
    if any("{path}" in a for a in argv):
        argv = [a.replace("{path}", str(summary_path)) for a in argv]
    else:
        argv.append(str(summary_path))
    env = dict(os.environ)
    env["PROBE_NIGHTLY_SUMMARY"] = str(summary_path)
    env["PROBE_NIGHTLY_JSON"] = result.files.get("json", "")
    env["PROBE_NIGHTLY_JUNIT"] = result.files.get("junit", "")
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=NOTIFY_TIMEOUT_S, check=False)
    except FileNotFoundError:
        return {"argv": argv, "exit_code": None, "error": f"command not found: {argv[0]}"}
    except subprocess.TimeoutExpired:
        return {"argv": argv, "exit_code": None, "error": f"timed out after {NOTIFY_TIMEOUT_S:.0f} s"}
    return {"argv": argv, "exit_code": done.returncode, "stderr": done.stderr[-2000:]}


def run_nightly(
    config: ProbeConfig,
    reports_dir: Path,
    *,
    output: Path | None = None,
    notify_command: str | None = None,
    on_cell: Callable[[NightlyCell], None] | None = None,
) -> NightlyResult:
    """Run the whole matrix, compare with baselines, write the HTML, JUnit and JSON summaries."""
    kind = nightly_kind(config)
    cells = matrix(config)
    # Opened here, before the workers open their own connections, so the journal exists (in WAL
    # mode); and the pins are checked against it before anything runs.
    with _STORE_OPEN:
        store = Store(reports_dir)
    try:
        check_baselines(config, cells, store)
        out = output_dir(config, output)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise path_error(out, exc) from None
        previous = previous_cells(out)
        started = time.time()
        clusters: dict[str, list[tuple[str, str, str]]] = {}
        for cell in cells:
            clusters.setdefault(cell[0], []).append(cell)
        done: dict[str, list[_CellRun]] = {}
        unreachable: dict[str, str] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(clusters), thread_name_prefix="nightly") as pool:
            futures = {
                pool.submit(
                    _run_cluster,
                    name,
                    group,
                    config=config,
                    reports_dir=reports_dir,
                    kind=kind,
                    on_cell=on_cell,
                    previous=previous,
                    started=started,
                ): name
                for name, group in clusters.items()
            }
            for fut in concurrent.futures.as_completed(futures):
                name = futures[fut]
                runs, dead = fut.result()
                done[name] = runs
                if dead is not None:
                    unreachable[name] = dead
        runs = [r for name in clusters for r in done[name]]  # config order, not finishing order
    finally:
        store.close()
    for run in runs:
        if run.summary is not None:
            rel = Path("runs") / f"{run.summary.run_id}.html"
            atomic_write(out / rel, html_render.to_html(run_view(run.summary, run.records)))
            run.cell.report = rel.as_posix()
    regressed = any(r.cell.status == "regressed" for r in runs)
    incomplete = bool(unreachable) or any(r.cell.status == "error" for r in runs)
    code = EXIT_REGRESSION if regressed else EXIT_INFRA if incomplete else EXIT_OK
    result = NightlyResult(
        started_at=started,
        finished_at=time.time(),
        kind=kind,
        output=str(out),
        cells=[r.cell for r in runs],
        unreachable=unreachable,
        regressed=regressed,
        exit_code=code,
        files={
            "html": str(out / SUMMARY_HTML),
            "junit": str(out / SUMMARY_JUNIT),
            "json": str(out / SUMMARY_JSON),
        },
    )
    atomic_write(out / SUMMARY_JUNIT, nightly_junit([_cell_view(r) for r in runs], unreachable))
    atomic_write(out / SUMMARY_HTML, nightly_html(result))
    if regressed and notify_command:
        result.notified = notify(notify_command, out / SUMMARY_HTML, result)
    # nightly.json last: it is the next night's baseline index, so it only appears when all is written.
    atomic_write(out / SUMMARY_JSON, result.model_dump_json(indent=2) + "\n")
    return result
