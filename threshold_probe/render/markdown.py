"""The Markdown report, for pasting into an issue or a pull request: verdict, level table, evidence."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from threshold_probe.models import ProbeRecord
from threshold_probe.render.common import (
    METRIC_COLUMNS,
    failing_records,
    first_fail,
    fmt_mb,
    fmt_number,
    fmt_seconds,
    isolate_dimensions,
    isolate_drivers,
    level_views,
    limits_text,
    metric,
    threshold_sentence,
)
from threshold_probe.summary import RunSummary

#: Lines of stderr quoted per failing probe; Markdown is for reading, the HTML report has it all.
STDERR_LINES = 30


def _cell(text: object) -> str:
    # A pipe or newline would break the table row.
    return str(text).replace("|", "\\|").replace("\n", " ")


def _yes_no(value: object) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _fence(text: str) -> str:
    # A fence longer than any backtick run inside keeps the block closed where we mean it to be.
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def to_markdown(summary: RunSummary, records: Sequence[ProbeRecord] = ()) -> str:
    """The report as GitHub-flavoured Markdown."""
    out: list[str] = []
    ff = first_fail(summary)
    undecided = summary.status != "completed" or summary.search_status == "inconclusive"
    icon = "❌" if ff is not None else ("❔" if undecided else "✅")
    out.append(f"## threshold-probe: {summary.cluster} / {summary.pipeline} / {summary.ladder}")
    out.append("")
    out.append(f"**{icon} {threshold_sentence(summary)}**")
    if summary.message and not threshold_sentence(summary).startswith(summary.message.rstrip(".")):
        out.append("")
        out.append(summary.message)
    out.append("")
    started = dt.datetime.fromtimestamp(summary.started_at, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = [f"run `{summary.run_id}` ({summary.kind}, {summary.status})", started]
    if summary.limits:
        facts.append("limits " + (limits_text(summary.limits) or "none"))
    if summary.versions:
        facts.append(", ".join(f"{k} {v}" for k, v in sorted(summary.versions.items())))
    out.append(" · ".join(facts))
    out.append("")

    failure = summary.failure
    if failure is not None:
        out.append(
            f"**Cause:** `{failure.failure_class}`" + (f" - {failure.explanation}" if failure.explanation else "")
        )
        if failure.signature:
            out.append("")
            out.append(f"**Signature:** `{_cell(failure.signature)}`")
        if failure.evidence:
            body = "\n".join(failure.evidence)
            fence = _fence(body)
            out += ["", "**Evidence:**", "", f"{fence}text", body, fence]
        out.append("")
    if summary.flaky_band:
        out.append(f"**Flaky band:** levels {summary.flaky_band[0]}..{summary.flaky_band[-1]}")
        out.append("")

    labels = [label for _k, label, _n in METRIC_COLUMNS]
    out.append("| level | " + " | ".join(labels) + " | verdict | wall | peak MB | failure class |")
    out.append("|---:|" + "---:|" * len(labels) + "---|---:|---:|---|")
    for view in level_views(summary):
        metrics = [fmt_number(metric(view.metrics, key)) for key, _l, _n in METRIC_COLUMNS]
        verdict = f"**{view.verdict}**" if view.verdict == "fail" else view.verdict
        level = f"**{view.level}**" if view.level == ff else str(view.level)
        row = [
            level,
            *metrics,
            verdict,
            fmt_seconds(view.wall_s),
            fmt_mb(view.peak_mb),
            view.failure_class or "",
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
            row = [name, _yes_no(f.get("sufficient")), _yes_no(f.get("necessary")), f.get("threshold", "-")]
            row.append("yes" if name in drivers else "")
            out.append("| " + " | ".join(_cell(c) for c in row) + " |")
        out.append("")

    fails = failing_records(records)
    if fails:
        first = fails[0]
        tail = first.observation.job.stderr_tail.rstrip().splitlines()[-STDERR_LINES:]
        if tail:
            body = "\n".join(tail)
            fence = _fence(body)
            out.append(f"<details><summary>stderr of level {first.level} (last {len(tail)} lines)</summary>")
            out += ["", f"{fence}text", body, fence, "", "</details>", ""]
    return "\n".join(out)
