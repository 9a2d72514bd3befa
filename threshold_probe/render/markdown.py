"""The Markdown report, for pasting into an issue or a pull request: verdict, level table, evidence."""

from __future__ import annotations

import datetime as dt
import re

from threshold_probe.render.common import fmt_mb, fmt_number, fmt_seconds
from threshold_probe.view import (
    METRIC_COLUMNS,
    RunView,
    answer_failed,
    first_fail,
    isolate_dimensions,
    isolate_drivers,
    isolate_probes,
    level_name,
    level_views,
    limits_text,
    metric,
    probe_label,
    reuse_text,
    threshold_record,
    threshold_sentence,
)

#: Lines of stderr quoted per failing probe; Markdown is for reading, the HTML report has it all.
STDERR_LINES = 30


def _cell(text: object) -> str:
    # A pipe or newline would break the table row; an unknown value is a dash, never "None".
    if text is None:
        return "-"
    return str(text).replace("|", "\\|").replace("\n", " ")


# Characters that start emphasis, code, links, HTML, entities or table cells anywhere in a line
# (CommonMark lets any ASCII punctuation be backslash-escaped).
_MD_SPECIAL = frozenset("\\`*_[]<>|~&")
# What starts a heading, list, quote or rule only at the start of a line.
_MD_LINE_START = re.compile(r"^(\s*)([#+=>-]|\d+(?=[.)]))")


def _md(text: object) -> str:
    """Text from a user file or the far side, shown literally inline (no emphasis, links or HTML);
    an unknown value is a dash."""
    if text is None:
        return "-"
    flat = " ".join(str(text).split("\n"))
    out = []
    for i, ch in enumerate(flat):
        if ch == "_" and 0 < i < len(flat) - 1 and flat[i - 1].isalnum() and flat[i + 1].isalnum():
            out.append(ch)  # inside a word (memory_mb) an underscore never starts emphasis
        else:
            out.append(f"\\{ch}" if ch in _MD_SPECIAL else ch)
    escaped = "".join(out)
    match = _MD_LINE_START.match(escaped)
    if match:
        head = match.group(2)
        if head[0].isdigit():  # "1." or "1)" starts a list: escape the mark after the digits
            cut = match.end()
            escaped = f"{escaped[:cut]}\\{escaped[cut:]}"
        else:
            escaped = f"{match.group(1)}\\{escaped[len(match.group(1)) :]}"
    return escaped


def _code(text: object) -> str:
    """An inline code span that holds any text, backticks included (CommonMark's longer delimiter)."""
    flat = " ".join(str(text).split("\n"))
    longest, run = 0, 0
    for ch in flat:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    tick = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or longest else ""
    return f"{tick}{pad}{flat}{pad}{tick}"


def _yes_no(value: object) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _fence(text: str) -> str:
    # A fence longer than any backtick run inside keeps the block closed where we mean it to be.
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def to_markdown(run: RunView) -> str:
    """The report as GitHub-flavoured Markdown."""
    summary = run.summary
    out: list[str] = []
    ff = first_fail(summary)
    undecided = summary.status != "completed" or summary.search_status == "inconclusive"
    icon = "❌" if answer_failed(summary) else ("❔" if undecided else "✅")
    out.append(f"## threshold-probe: {_md(summary.cluster)} / {_md(summary.pipeline)} / {_md(summary.ladder)}")
    out.append("")
    out.append(f"**{icon} {_md(threshold_sentence(summary))}**")
    if summary.message and not threshold_sentence(summary).startswith(summary.message.rstrip(".")):
        out.append("")
        out.append(_md(summary.message))
    out.append("")
    started = dt.datetime.fromtimestamp(summary.started_at, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = [f"run {_code(summary.run_id)} ({summary.kind}, {summary.status})", started]
    if summary.limits:
        facts.append("limits " + _md(limits_text(summary.limits, summary.limits_enforced_by) or "none"))
    if summary.versions:
        facts.append(_md(", ".join(f"{k} {v}" for k, v in sorted(summary.versions.items()))))
    facts.append(_cell(reuse_text(summary)))
    out.append(" · ".join(facts))
    out.append("")

    failure = summary.failure
    if failure is not None:
        out.append(
            f"**Cause:** {_code(failure.failure_class)}"
            + (f" - {_md(failure.explanation)}" if failure.explanation else "")
        )
        if failure.signature:
            out.append("")
            out.append(f"**Signature:** {_code(failure.signature)}")
        if failure.evidence:
            body = "\n".join(failure.evidence)
            fence = _fence(body)
            out += ["", "**Evidence:**", "", f"{fence}text", body, fence]
        out.append("")
    if summary.flaky_band:
        out.append(f"**Flaky band:** levels {summary.flaky_band[0]}..{summary.flaky_band[-1]}")
        out.append("")

    labels = [label for _k, label in METRIC_COLUMNS]
    out.append("| level | " + " | ".join(labels) + " | verdict | wall | peak MB | failure class |")
    out.append("|---:|" + "---:|" * len(labels) + "---|---:|---:|---|")
    for view in level_views(summary):
        metrics = [fmt_number(metric(view.metrics, key)) for key, _l in METRIC_COLUMNS]
        verdict = f"**{view.verdict}**" if view.verdict == "fail" else view.verdict
        name = level_name(summary, view.level)
        level = f"**{name}**" if view.level == ff else name
        row = [
            level,
            *metrics,
            verdict,
            fmt_seconds(view.wall_s),
            fmt_mb(view.peak_mb),
            _md(view.failure_class or ""),
        ]
        out.append("| " + " | ".join(_cell(c) for c in row) + " |")
    out.append("")

    dims = isolate_dimensions(summary.isolate)
    if dims:
        drivers = set(isolate_drivers(summary.isolate))
        out += [
            "### Isolate",
            "",
            "| dimension | sufficient | necessary | threshold | driver |",
            "|---|---|---|---:|---|",
        ]
        for name, f in dims:
            row = [_md(name), _yes_no(f.sufficient), _yes_no(f.necessary), _md(f.threshold)]
            row.append("yes" if name in drivers else "")
            out.append("| " + " | ".join(_cell(c) for c in row) + " |")
        out.append("")
        probes = isolate_probes(summary)
        if probes:
            # Each probe named by the value it tried alone, as the isolate table reads.
            out += ["#### Isolate probes", "", "| probe | verdict | wall | peak MB | failure class |"]
            out.append("|---|---|---:|---:|---|")
            for p in probes:
                name = probe_label(summary, p.level, p.spec, p.probe_id)
                cells = [_md(name), p.verdict, fmt_seconds(p.wall_s), fmt_mb(p.peak_rss_mb), _md(p.failure_class or "")]
                out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
            out.append("")

    # The stderr of the threshold level, not of whichever failing probe ran first (a bisect
    # probes the top of the ladder before it finds the threshold).
    first = threshold_record(summary, run.records)
    if first is not None:
        tail = first.observation.job.stderr_tail.rstrip().splitlines()[-STDERR_LINES:]
        if tail:
            body = "\n".join(tail)
            fence = _fence(body)
            what = probe_label(summary, first.level, first.spec, first.probe_id)
            out.append(f"<details><summary>stderr of {_md(what)} (last {len(tail)} lines)</summary>")
            out += ["", f"{fence}text", body, fence, "", "</details>", ""]
    return "\n".join(out)
