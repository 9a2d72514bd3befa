"""A triage report in every format: Rich, JSON, Markdown, HTML (with a chart) and JUnit XML.

Pure functions of a TriageReport. Names, messages and evidence come from user files and the far
side: control sequences are stripped once (textsafe.clean), then each format escapes its own
syntax.
"""

from __future__ import annotations

import html
import io
import json
import math
import xml.etree.ElementTree as ET
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from threshold_probe.separate import label
from threshold_probe.textsafe import clean
from threshold_probe.triage import TriageFunction, TriageReport
from threshold_probe.view import limits_text

FORMATS = ("rich", "json", "md", "html", "junit")

#: Metrics shown in the table of functions (the chart feature is added when it is another one).
TABLE_METRICS = ("loc", "cc", "pickle_bytes", "multiline_strings_col0", "closure_refs")

#: Short column headers for the terminal table (the other formats name features in full).
_SHORT = {
    "multiline_strings_col0": "col-0 str",
    "closure_refs": "closure",
    "global_refs": "globals",
    "pickle_bytes": "pickle B",
    "loc": "LOC",
    "cc": "CC",
}

VERDICT_COLOURS = {"pass": "#1e8e3e", "fail": "#d93025", "skip": "#f9ab00", "not probed": "#9aa0a6"}
_RICH_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow", "not probed": "dim"}


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _metrics(report: TriageReport) -> list[str]:
    names = list(TABLE_METRICS)
    if report.chart_feature and report.chart_feature not in names:
        names.append(report.chart_feature)
    return names


def _probed(report: TriageReport) -> list[TriageFunction]:
    return [f for f in report.functions if f.verdict != "not probed"]


def _outcome(f: TriageFunction) -> str:
    if f.verdict == "fail":
        return f.failure_class or "fail"
    if f.verdict in ("skip", "not probed"):
        return f.reason or ""
    return ""


# -- Rich ------------------------------------------------------------------------------------------


class FunctionsTable:
    """The table of probed functions, laid out for the width it is drawn at.

    Paths and function names are identifiers: never cut or folded. When the table is wider than
    the terminal (or the pipe's width), metric columns give way first, those that separate nothing
    before the separating ones, then the class; the verdict always stays.
    """

    def __init__(self, report: TriageReport) -> None:
        self.report = report

    def columns(self, width: int) -> list[str]:
        """The columns that fit in `width` cells: where, function, some metrics, verdict, class."""
        report = self.report
        probed = _probed(report)
        metrics = _metrics(report)
        cells: dict[str, list[str]] = {
            "where": [_where(f) for f in probed],
            "function": [f.name for f in probed],
            "verdict": [f.verdict for f in probed],
            # The class (or a skip's reason) wraps at spaces: its longest word is what it needs.
            "class": [w for f in probed for w in _outcome(f).split()],
        }
        for m in metrics:
            cells[m] = [_value(f.metrics.get(m)) for f in probed]
        heads = {**{m: _SHORT.get(m, m) for m in metrics}, "class": "class"}

        def need(col: str) -> int:
            return max([len(heads.get(col, col)), *(Text(c).cell_len for c in cells[col])]) + 3

        separating = {r.feature for g in report.groups for r in g.separators[:1]}
        if report.chart_feature:
            separating.add(report.chart_feature)
        droppable = [m for m in reversed(metrics) if m not in separating]
        droppable += [m for m in reversed(metrics) if m in separating] + ["class"]
        columns = ["where", "function", *metrics, "verdict", "class"]
        while droppable and sum(need(c) for c in columns) + 1 > width:
            columns.remove(droppable.pop(0))
        return columns

    def table(self, width: int) -> Table:
        """The Rich table at this width."""
        columns = self.columns(width)
        table = Table(title="functions", title_justify="left", header_style="bold")
        for col in columns:
            if col in ("where", "function"):
                table.add_column(col, no_wrap=True)
            elif col == "verdict":
                table.add_column(col, min_width=7, no_wrap=True)
            elif col == "class":
                table.add_column(col, min_width=5)
            else:
                header = _SHORT.get(col, col)
                table.add_column(header, justify="right", min_width=len(header), no_wrap=True)
        for f in _probed(self.report):
            style = _RICH_STYLE.get(f.verdict, "")
            values = {
                "where": Text(_where(f)),
                "function": Text(f.name),
                "verdict": Text(f.verdict, style=style),
                "class": Text(_outcome(f), style="dim" if f.verdict == "not probed" else ""),
            }
            table.add_row(*(values[c] if c in values else Text(_value(f.metrics.get(c))) for c in columns))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)


def _where(f: TriageFunction) -> str:
    return f"{f.file.rsplit('/', 1)[-1]}:{f.line}"


def about(report: TriageReport) -> list[str]:
    """What the triage ran under, as a search report states it: cluster, limits, versions."""
    lines = []
    if report.cluster_info:
        lines.append(
            f"cluster {report.cluster}: " + ", ".join(f"{k}={v}" for k, v in sorted(report.cluster_info.items()))
        )
    if report.limits:
        lines.append("limits " + (limits_text(report.limits) or "none"))
    if report.versions:
        lines.append("versions " + ", ".join(f"{k} {v}" for k, v in sorted(report.versions.items())))
    return lines


def renderables(report: TriageReport) -> list[RenderableType]:
    """The terminal report: conclusion, separators per class, then the table of functions."""
    report = clean(report)
    head = Text()
    head.append(f"triage {report.run_id}", style="bold")
    head.append(f"  ({report.status})\n")
    head.append(f"{report.pipeline} pipeline on {report.cluster}; paths: {', '.join(report.paths)}\n", style="dim")
    for line in about(report):
        head.append(line + "\n", style="dim")
    head.append(report.conclusion)
    out: list[RenderableType] = [Panel(head, title="threshold-probe triage", title_align="left")]
    for g in report.groups:
        body = Text()
        if g.signature:
            body.append(f"signature: {g.signature}\n", style="dim")
        body.append(f"functions: {', '.join(g.functions)}\n", style="dim")
        for line in g.findings:
            body.append(f"  {line}\n", style="bold" if line.startswith("fails iff") else "")
        title = f"{g.failure_class}: {len(g.functions)} failing"
        out.append(Panel(body, title=title, title_align="left", border_style="red"))
    out.append(FunctionsTable(report))
    unprobed = [f for f in report.functions if f.verdict == "not probed"]
    if unprobed:
        rest = Table(title="not probed", title_justify="left", header_style="bold", box=None)
        rest.add_column("where", no_wrap=True)
        rest.add_column("function", no_wrap=True)
        rest.add_column("reason", style="dim")
        for f in unprobed:
            rest.add_row(Text(f"{f.file.rsplit('/', 1)[-1]}:{f.line}"), Text(f.name), Text(f.reason or ""))
        out.append(rest)
    if report.file_errors:
        out.append(Text("\n".join(report.file_errors), style="yellow"))
    if report.reused:
        out.append(Text(f"{report.reused} verdicts reused from identical earlier probes", style="dim"))
    return out


def print_report(report: TriageReport, console: Console) -> None:
    """Print the terminal report."""
    console.print(Group(*renderables(report)), highlight=False)


def to_text(report: TriageReport, width: int = 140) -> str:
    """The terminal report as plain text."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    print_report(report, console)
    return console.export_text()


# -- JSON ------------------------------------------------------------------------------------------


def to_json(report: TriageReport) -> str:
    """The report as stable JSON (sorted keys): every part of it."""
    return json.dumps(clean(report).model_dump(mode="json", by_alias=True), indent=2, sort_keys=True) + "\n"


# -- Markdown ----------------------------------------------------------------------------------------

_MD_SPECIAL = frozenset("\\`*_[]<>|~&#")


def md(text: object) -> str:
    """Text shown literally in Markdown: one line, every special character escaped."""
    flat = " ".join(str(text).split())
    out = []
    for i, ch in enumerate(flat):
        if ch == "_" and 0 < i < len(flat) - 1 and flat[i - 1].isalnum() and flat[i + 1].isalnum():
            out.append(ch)
        else:
            out.append(f"\\{ch}" if ch in _MD_SPECIAL else ch)
    return "".join(out)


def to_markdown(report: TriageReport) -> str:
    """The report as Markdown: conclusion, separators per class, table of functions."""
    report = clean(report)
    lines = [
        f"# Triage {md(report.run_id)}",
        "",
        f"{md(report.pipeline)} pipeline on {md(report.cluster)}; paths: {md(', '.join(report.paths))}",
        "",
        *(f"{md(line)}  " for line in about(report)),
        "",
        md(report.conclusion),
        "",
    ]
    for g in report.groups:
        lines += [f"## {md(g.failure_class)}: {len(g.functions)} failing", ""]
        if g.signature:
            lines += [f"Signature: {md(g.signature)}", ""]
        lines += [f"- {md(line)}" for line in g.findings]
        lines.append("")
    metrics = _metrics(report)
    lines += ["## Functions", ""]
    header = ["where", "function", *(label(m) for m in metrics), "verdict", "class / reason"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for f in report.functions:
        cells = [f.where(), f.name, *(_value(f.metrics.get(m)) for m in metrics), f.verdict, _outcome(f)]
        lines.append("| " + " | ".join(md(c) for c in cells) + " |")
    if report.file_errors:
        lines += ["", "## Files not read", ""] + [f"- {md(e)}" for e in report.file_errors]
    return "\n".join(lines) + "\n"


# -- HTML --------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1180px; color: #202124; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { color: #fff; border-radius: 8px; padding: 1px 7px; font-size: 12px; }
.conclusion { font-size: 15px; background: #f1f3f4; padding: 12px 16px; border-radius: 6px; }
.finding-sep { font-weight: 600; }
footer { margin-top: 32px; color: #5f6368; font-size: 12px; }
"""


def e(text: object) -> str:
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


def page(title: str, body: str) -> str:
    """A self-contained HTML document (no script, nothing from the network)."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        "<footer>Generated by threshold-probe. This page is self-contained: it loads nothing from the"
        " network.</footer>\n</body>\n</html>\n"
    )


def badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#9aa0a6")
    return f'<span class="badge" style="background:{colour}">{e(verdict)}</span>'


def separator_chart(report: TriageReport, width: int = 760) -> str:
    """Each probed function's value of the chart feature, one bar each, coloured by verdict,
    with the separator's threshold drawn across (inline SVG)."""
    feature = report.chart_feature
    if feature is None:
        return ""
    rows = [f for f in report.functions if f.verdict in ("pass", "fail", "skip")]
    values = [f.metrics.get(feature) for f in rows]
    numeric = [v for v in values if isinstance(v, int | float)]
    if not rows or not numeric:
        return ""
    best = report.groups[0].best if report.groups else None
    threshold = best.threshold if best is not None and best.feature == feature else None
    top = max([*numeric, threshold if isinstance(threshold, int | float) else 0, 1])
    bar_h, gap, left, right = 16, 4, 260, 60
    height = len(rows) * (bar_h + gap) + 40
    span = width - left - right
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
        f' aria-label="{e(label(feature))} of each function, coloured by verdict">',
        f'<text x="{left}" y="14" font-size="12" fill="#5f6368">{e(label(feature))} of each function'
        " (green pass, red fail)</text>",
    ]
    for i, (f, v) in enumerate(zip(rows, values, strict=True)):
        y = 24 + i * (bar_h + gap)
        colour = VERDICT_COLOURS.get(f.verdict, "#9aa0a6")
        length = 0.0 if not isinstance(v, int | float) else max(0.0, span * float(v) / float(top))
        name = f.name if len(f.name) <= 38 else "…" + f.name[-37:]
        parts.append(
            f'<text x="{left - 6}" y="{y + 12}" font-size="11" text-anchor="end">{e(name)}</text>'
            f'<rect x="{left}" y="{y}" width="{max(length, 1.5):.1f}" height="{bar_h}" fill="{colour}">'
            f"<title>{e(f.name)}: {e(_value(v))} ({e(f.verdict)})</title></rect>"
            f'<text x="{left + length + 4:.1f}" y="{y + 12}" font-size="11">{e(_value(v))}</text>'
        )
    if isinstance(threshold, int | float) and not math.isnan(float(threshold)):
        x = left + span * float(threshold) / float(top)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="20" y2="{height - 4}" stroke="#202124" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3:.1f}" y="{height - 6}" font-size="11">{e(best.condition() if best else "")}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: TriageReport) -> str:
    """The report as one self-contained HTML page with the separator chart."""
    report = clean(report)
    body = [
        f"<h1>Triage {e(report.run_id)}</h1>",
        f"<p>{e(report.pipeline)} pipeline on {e(report.cluster)}; paths: {e(', '.join(report.paths))}</p>",
        *(f'<p class="about">{e(line)}</p>' for line in about(report)),
        f'<p class="conclusion">{e(report.conclusion)}</p>',
    ]
    for g in report.groups:
        body.append(f"<h2>{e(g.failure_class)}: {len(g.functions)} failing</h2>")
        if g.signature:
            body.append(f"<p>signature: <code>{e(g.signature)}</code></p>")
        items = "".join(
            f'<li class="{"finding-sep" if line.startswith("fails iff") else ""}">{e(line)}</li>' for line in g.findings
        )
        body.append(f"<ul>{items}</ul>")
    chart = separator_chart(report)
    if chart:
        body.append(f"<h2>{e(label(report.chart_feature or ''))} by verdict</h2>{chart}")
    metrics = _metrics(report)
    names = ["where", "function", *(label(m) for m in metrics), "verdict", "class / reason"]
    head = "".join(f"<th>{e(h)}</th>" for h in names)
    rows = []
    for f in report.functions:
        cells = [f"<td>{e(f.where())}</td>", f"<td>{e(f.name)}</td>"]
        cells += [f'<td class="num">{e(_value(f.metrics.get(m)))}</td>' for m in metrics]
        cells += [f"<td>{badge(f.verdict)}</td>", f"<td>{e(_outcome(f))}</td>"]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    body.append(f"<h2>Functions</h2><table><tr>{head}</tr>{''.join(rows)}</table>")
    if report.file_errors:
        body.append("<h2>Files not read</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in report.file_errors) + "</ul>")
    return page(f"threshold-probe triage {report.run_id}", "\n".join(body))


# -- JUnit -------------------------------------------------------------------------------------------


def to_junit(report: TriageReport) -> str:
    """One test case per function: a failure per failing function, skipped for the others."""
    report = clean(report)
    suite = ET.Element(
        "testsuite",
        name=f"triage {report.pipeline} on {report.cluster}",
        tests=str(len(report.functions)),
        failures=str(report.counts.get("fail", 0)),
        skipped=str(report.counts.get("skip", 0) + report.counts.get("not_probed", 0)),
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (("run_id", report.run_id), ("conclusion", report.conclusion)):
        ET.SubElement(props, "property", name=name, value=value)
    for f in report.functions:
        case = ET.SubElement(suite, "testcase", classname=f.file, name=f.name)
        if f.wall_s is not None:
            case.set("time", f"{f.wall_s:.3f}")
        if f.verdict == "fail":
            failure = ET.SubElement(
                case, "failure", type=f.failure_class or "fail", message=f.signature or f.explanation or "fail"
            )
            failure.text = "\n".join(f.evidence)
        elif f.verdict in ("skip", "not probed"):
            ET.SubElement(case, "skipped", message=f.reason or f.verdict)
    root = ET.Element("testsuites", name="threshold-probe triage")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(report: TriageReport, fmt: str) -> str:
    """The report in one of FORMATS."""
    if fmt == "rich":
        return to_text(report)
    if fmt == "json":
        return to_json(report)
    if fmt == "md":
        return to_markdown(report)
    if fmt == "html":
        return to_html(report)
    if fmt == "junit":
        return to_junit(report)
    raise ValueError(fmt)


__all__ = ["FORMATS", "print_report", "render", "renderables", "separator_chart", "to_html", "to_json"]
