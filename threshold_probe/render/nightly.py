"""The night's reports: one JUnit file (a suite per cell, per dead cluster) and one HTML page.

Pure functions of the nightly view (threshold_probe/view/nightly.py); each cell's suite is the
run's own JUnit suite (render/junit.py) with a baseline check added.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from xml.etree import ElementTree as ET

from threshold_probe.render import html as html_render
from threshold_probe.render import junit as junit_render
from threshold_probe.view.nightly import NightCellView, NightlyResult


def add_case(
    suite: ET.Element, name: str, classname: str, kind: str | None = None, message: str = "", body: str = ""
) -> None:
    """Add one testcase to a suite: passed, or a failure, error or skip with its message and body."""
    case = ET.SubElement(suite, "testcase", name=name, classname=classname, time="0.000")
    suite.set("tests", str(int(suite.get("tests", "0")) + 1))
    if kind is not None:
        el = ET.SubElement(case, kind, message=junit_render.xml_text(message))
        if kind != "skipped":
            el.set("type", "regression" if kind == "failure" else "unreachable")
        el.text = junit_render.xml_text(body)
        counter = {"failure": "failures", "error": "errors", "skipped": "skipped"}[kind]
        suite.set(counter, str(int(suite.get(counter, "0")) + 1))


def _level(level: int | None) -> str:
    return "none" if level is None else str(level)


def nightly_junit(runs: Sequence[NightCellView], unreachable: dict[str, str]) -> str:
    """One JUnit file for the night: a suite per cell (levels plus a baseline check) and per dead cluster."""
    suites: list[ET.Element] = []
    for run in runs:
        cell = run.cell
        if run.run is None:
            continue
        suite = junit_render.testsuite(run.run, name=cell.key, expected_failures=run.expected_failures)
        classname = suite.get("package", "threshold_probe")
        if cell.status == "new-baseline":
            add_case(
                suite,
                "threshold against baseline",
                classname,
                "skipped",
                f"new baseline: {'; '.join(cell.changes)}",
                f"the previous run {cell.previous_run} is of another cell; this run starts a new baseline",
            )
        elif cell.baseline is None:
            add_case(suite, "threshold against baseline", classname, "skipped", "no baseline yet (first run)")
        elif cell.regressions:
            add_case(
                suite,
                "threshold against baseline",
                classname,
                "failure",
                "; ".join(cell.regressions),
                f"baseline {cell.baseline_text}; now first fail {_level(cell.first_fail)}",
            )
        else:
            add_case(suite, "threshold against baseline", classname)
        suites.append(suite)
    stamp = dt.datetime.now(tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    for cluster, why in sorted(unreachable.items()):
        suite = ET.Element(
            "testsuite",
            name=f"{cluster} (unreachable)",
            tests="0",
            failures="0",
            errors="0",
            skipped="0",
            time="0.000",
            timestamp=stamp,
        )
        add_case(
            suite,
            f"preflight of {cluster}",
            f"threshold_probe.{cluster}",
            "error",
            f"cluster {cluster} could not be reached",
            why,
        )
        for run in runs:
            c = run.cell
            if c.cluster == cluster and c.status == "unreachable":
                add_case(suite, c.key, f"threshold_probe.{cluster}", "skipped", "cluster unreachable")
        suites.append(suite)
    for run in runs:
        c = run.cell
        if c.status == "error":
            suite = ET.Element(
                "testsuite",
                name=f"{c.key} (error)",
                tests="0",
                failures="0",
                errors="0",
                skipped="0",
                time="0.000",
                timestamp=stamp,
            )
            add_case(suite, c.key, f"threshold_probe.{c.cluster}", "error", c.error or "error", c.error or "")
            suites.append(suite)
    return junit_render.document(suites, name="threshold-probe nightly")


STATUS_COLOURS = {
    "ok": "#2e9d4f",
    "regressed": "#d64541",
    "new-baseline": "#0969da",
    "unreachable": "#8250df",
    "error": "#9a6700",
}


def nightly_html(result: NightlyResult) -> str:
    """One self-contained HTML page for the night: the verdict, every cell, unreachable clusters."""
    when = dt.datetime.fromtimestamp(result.started_at, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    regressed = [c for c in result.cells if c.status == "regressed"]
    if regressed:
        verdict = f"{len(regressed)} regression(s): " + "; ".join(
            f"{c.label}: {', '.join(c.regressions)}" for c in regressed
        )
    elif result.unreachable:
        verdict = "no regression; unreachable: " + ", ".join(sorted(result.unreachable))
    else:
        verdict = "no regression"
    renewed = [c for c in result.cells if c.status == "new-baseline"]
    if renewed:
        verdict += "; new baseline: " + "; ".join(f"{c.label}: {', '.join(c.changes)}" for c in renewed)
    failed = "failed" if regressed else ""
    body = [
        "<h1>threshold-probe nightly</h1>",
        f'<p class="meta"><span>{escape(when)}</span><span>{len(result.cells)} cells</span>'
        f"<span>search: {escape(result.kind)}</span><span>exit code {result.exit_code}</span></p>",
        f'<div class="verdict {failed}" id="verdict"><p class="answer">{escape(verdict)}</p></div>',
        "<h2>Matrix</h2>",
        '<table id="cells"><thead><tr><th class="l">cluster</th><th class="l">pipeline</th>'
        '<th class="l">ladder</th><th class="l">status</th><th>first fail</th><th>baseline</th>'
        '<th class="l">class</th><th class="l">what changed</th><th class="l">run</th></tr></thead><tbody>',
    ]
    for c in result.cells:
        colour = STATUS_COLOURS.get(c.status, "#9aa0a6")
        pill = f'<span class="badge" style="background:{colour}">{escape(c.status)}</span>'
        change = c.change_text
        link = escape(c.run_id or "-")
        if c.report:
            link = f'<a href="{escape(c.report)}">{link}</a>'
        ff = "-" if c.first_fail is None else str(c.first_fail)
        bff = c.baseline_text
        body.append(
            f'<tr data-cell="{escape(c.key)}"><td class="l">{escape(c.cluster)}</td>'
            f'<td class="l">{escape(c.pipeline)}</td><td class="l">{escape(c.label.split("/", 2)[2])}</td>'
            f'<td class="l">{pill}</td><td>{escape(ff)}</td><td>{escape(bff)}'
            f'</td><td class="l">{escape(c.failure_class or "-")}</td><td class="l">{escape(change)}</td>'
            f'<td class="l">{link}</td></tr>'
        )
    body.append("</tbody></table>")
    if result.unreachable:
        body.append("<h2>Unreachable clusters</h2>")
        for name, why in sorted(result.unreachable.items()):
            body.append(f"<p><b>{escape(name)}</b></p><pre>{escape(why)}</pre>")
    return html_render.page("threshold-probe nightly", "\n".join(body))
