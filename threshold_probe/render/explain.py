"""An explanation as one page, headed by its conclusion: Rich, JSON, Markdown and HTML.

Pure functions of an Explanation; text from user files and the far side is stripped of control
sequences once (textsafe.clean), then escaped for each format.
"""

from __future__ import annotations

import io
import json

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from threshold_probe.explain import Explanation
from threshold_probe.render.triage import e, md, page
from threshold_probe.textsafe import clean
from threshold_probe.view import limits_text

FORMATS = ("rich", "json", "md", "html")

#: Lines of the reproducer shown on a page (the whole of it is in --json and the run folder).
SOURCE_LINES = 40


def _facts(x: Explanation) -> list[tuple[str, str]]:
    rows = []
    if x.first_fail is not None:
        passes = f", level {x.last_pass} passes" if x.last_pass else ""
        rows.append(("threshold", f"level {x.first_fail} fails first{passes}"))
    if x.failure_class:
        rows.append(("class", x.failure_class))
    if x.signature:
        rows.append(("signature", x.signature))
    if x.owner_statement:
        rows.append(("whose", f"{x.owner}: {x.owner_statement}"))
    if x.driver:
        threshold = f" (threshold {x.driver_threshold})" if x.driver_threshold is not None else ""
        rows.append(("driver", f"{x.driver}{threshold}"))
    if x.hint is not None:
        rows.append(("cause", x.hint.cause))
        rows.append(("fix", f"{x.hint.fix}  [rule {x.hint.rule}]"))
    # What it is about, as a search's report states it.
    if x.cluster_info:
        rows.append(("cluster", f"{x.cluster}: " + ", ".join(f"{k}={v}" for k, v in sorted(x.cluster_info.items()))))
    rows.append(("limits", limits_text(x.limits) or "none"))
    if x.versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in sorted(x.versions.items()))))
    return rows


def _source(x: Explanation) -> str:
    if x.reproducer is None:
        return ""
    lines = x.reproducer.source.splitlines()
    more = len(lines) - SOURCE_LINES
    return "\n".join(lines[:SOURCE_LINES]) + (f"\n# ... {more} more lines (see --json)" if more > 0 else "")


def renderables(x: Explanation) -> list[RenderableType]:
    """The terminal page: conclusion, facts, steps, reproducer."""
    x = clean(x)
    head = Text(x.conclusion or f"explanation {x.status}", style="bold")
    out: list[RenderableType] = [Panel(head, title=f"probe explain {x.run_id}", title_align="left")]
    facts = Table(show_header=False, box=None)
    facts.add_column(style="dim")
    facts.add_column()
    for k, v in _facts(x):
        facts.add_row(k, Text(v))
    out.append(facts)
    steps = Table(title="steps", title_justify="left", header_style="bold")
    for col in ("step", "status", "run", "result"):
        steps.add_column(col)
    for s in x.steps:
        steps.add_row(s.name, s.status, Text(s.run_id or "-"), Text(s.line))
    out.append(steps)
    if x.reproducer is not None:
        kept = f", keeps the {x.reproducer.kept}" if x.reproducer.kept else ""
        title = f"reproducer ({x.reproducer.via}, {x.reproducer.lines} lines{kept})"
        out.append(Panel(Syntax(_source(x), "python", theme="ansi_dark"), title=title, title_align="left"))
    if x.evidence:
        out.append(Panel(Text("\n".join(x.evidence)), title="evidence", title_align="left"))
    return out


def print_page(x: Explanation, console: Console) -> None:
    console.print(Group(*renderables(x)), highlight=False)


def to_text(x: Explanation, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    print_page(x, console)
    return console.export_text()


def to_json(x: Explanation) -> str:
    return json.dumps(clean(x).model_dump(mode="json", by_alias=True), indent=2, sort_keys=True) + "\n"


def _fence(text: str) -> str:
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def to_markdown(x: Explanation) -> str:
    x = clean(x)
    lines = [f"# Explain {md(x.run_id)}", "", f"**{md(x.conclusion)}**", ""]
    lines += [f"- {k}: {md(v)}" for k, v in _facts(x)]
    lines += ["", "## Steps", "", "| step | status | run | result |", "|---|---|---|---|"]
    lines += [f"| {md(s.name)} | {s.status} | {md(s.run_id or '-')} | {md(s.line)} |" for s in x.steps]
    if x.reproducer is not None:
        src = _source(x)
        fence = _fence(src)
        lines += ["", f"## Reproducer ({x.reproducer.via}, {x.reproducer.lines} lines)", ""]
        lines += [f"{fence}python", src, fence]
    if x.evidence:
        text = "\n".join(x.evidence)
        fence = _fence(text)
        lines += ["", "## Evidence", "", fence, text, fence]
    return "\n".join(lines) + "\n"


def to_html(x: Explanation) -> str:
    x = clean(x)
    body = [f"<h1>Explain {e(x.run_id)}</h1>", f'<p class="conclusion">{e(x.conclusion)}</p>']
    body.append("<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _facts(x)) + "</table>")
    rows = "".join(
        f"<tr><td>{e(s.name)}</td><td>{e(s.status)}</td><td>{e(s.run_id or '-')}</td><td>{e(s.line)}</td></tr>"
        for s in x.steps
    )
    body.append(f"<h2>Steps</h2><table><tr><th>step</th><th>status</th><th>run</th><th>result</th></tr>{rows}</table>")
    if x.reproducer is not None:
        title = f"Reproducer ({e(x.reproducer.via)}, {x.reproducer.lines} lines)"
        body.append(f"<h2>{title}</h2><pre>{e(_source(x))}</pre>")
    if x.evidence:
        body.append(f"<h2>Evidence</h2><pre>{e(chr(10).join(x.evidence))}</pre>")
    return page(f"threshold-probe explain {x.run_id}", "\n".join(body))


def render(x: Explanation, fmt: str) -> str:
    """The page in one of FORMATS."""
    if fmt == "rich":
        return to_text(x)
    if fmt == "json":
        return to_json(x)
    if fmt == "md":
        return to_markdown(x)
    if fmt == "html":
        return to_html(x)
    raise ValueError(fmt)


__all__ = ["FORMATS", "print_page", "render", "renderables"]
