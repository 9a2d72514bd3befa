"""The JUnit XML report: one testcase per level and cluster, for CI dashboards.

A search (sweep, bisect, isolate) is run to find failing levels, so its threshold is a suite
property and its failing levels pass as testcases, unless a gate is set: with
`--expect-pass-through N`, a failing level at or below N is a `failure` whose type is the failure
class and whose message carries the signature. Nightly suites keep every new failure a
`failure`. An infrastructure skip is `skipped`; the probe's stderr goes into `system-err`.
The output is valid against the common JUnit schema (the Jenkins/Surefire junit-10 shape;
tests/assets/junit-10.xsd).
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from threshold_probe.models import ProbeRecord
from threshold_probe.render.common import fmt_mb, fmt_number
from threshold_probe.summary import RunSummary
from threshold_probe.view import (
    METRIC_COLUMNS,
    RunView,
    cell_name,
    isolate_probes,
    level_views,
    metric,
    probe_label,
    reuse_text,
    threshold_sentence,
)

# XML 1.0 forbids most control characters, and remote stderr is full of them (ANSI colours, NULs).
_XML_BAD = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Text that XML 1.0 can hold: forbidden characters become visible \\xNN escapes."""
    return _XML_BAD.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _secs(value: float | None) -> str:
    return f"{(value or 0.0):.3f}"


def _classname(summary: RunSummary) -> str:
    # Dots group testcases in CI dashboards: threshold_probe.<cluster>.<pipeline>.<ladder>.
    parts = [summary.cluster, summary.pipeline, summary.ladder]
    return "threshold_probe." + ".".join(re.sub(r"[^A-Za-z0-9_-]", "_", p) for p in parts)


def testsuite(
    run: RunView,
    *,
    name: str | None = None,
    expected_failures: Iterable[int] = (),
    findings: bool = False,
) -> ET.Element:
    """One <testsuite> for a run: a testcase per level, with failures, skips and stderr.

    Levels in `expected_failures` (a nightly's known failures, already failing in the baseline)
    are reported as `skipped` with their class, as pytest reports an xfail, so that only new
    failures turn a dashboard red.

    With `findings`, a failing level is what the search was run to find, not a broken test: it
    is a passing testcase, and the threshold is a suite property. Only the levels at or below the
    run's gate (`--expect-pass-through N`) fail the suite.
    """
    summary = run.summary
    expected = set(expected_failures)
    gate = expect_pass_through(summary)
    by_id = {rec.probe_id: rec for rec in run.records}
    views = level_views(summary)
    stamp = dt.datetime.fromtimestamp(summary.started_at, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    suite = ET.Element("testsuite")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("run_id", summary.run_id),
        ("kind", summary.kind),
        ("cluster", summary.cluster),
        ("pipeline", summary.pipeline),
        ("ladder", summary.ladder),
        ("threshold", threshold_sentence(summary)),
        *((("first_fail", str(summary.first_fail)),) if summary.first_fail is not None else ()),
        *((("last_pass", str(summary.last_pass)),) if summary.last_pass is not None else ()),
        *((("failure_class", summary.failure.failure_class or ""),) if summary.failure else ()),
        *((("expect_pass_through", str(gate)),) if gate is not None else ()),
        *((f"limit.{k}", str(v)) for k, v in summary.limits.items() if v is not None),
        *((f"version.{k}", v) for k, v in sorted(summary.versions.items())),
        ("reused", reuse_text(summary)),
    ):
        ET.SubElement(props, "property", name=key, value=xml_text(str(value)))
    classname = _classname(summary)
    for view in views:
        if view.verdict == "-":
            continue  # a bisect leaves levels unprobed: they are not tests that ran
        wall = view.wall_s or 0.0
        total_time += wall
        case = ET.SubElement(
            suite, "testcase", name=f"level {view.level:03d} on {summary.cluster}", classname=classname
        )
        case.set("time", _secs(wall))
        counts["tests"] += 1
        facts = ", ".join(f"{label}={fmt_number(metric(view.metrics, key))}" for key, label in METRIC_COLUMNS)
        recs = [by_id[p.probe_id] for p in view.probes if p.probe_id in by_id]
        notes: list[str] = []
        if view.verdict in ("fail", "flaky"):
            failed = next((r for r in recs if r.verdict.status == "fail"), None)
            fclass = view.failure_class or "unknown"
            signature = view.signature or (failed.verdict.signature if failed else None) or ""
            body = [f"level {view.level}: {view.verdict} ({facts})"]
            if failed is not None:
                if failed.verdict.explanation:
                    body.append(failed.verdict.explanation)
                body += failed.verdict.evidence
            message = f"{fclass}: {signature}" if signature else fclass
            if view.level in expected:
                el = ET.SubElement(case, "skipped", message=xml_text(f"known failure (also in baseline): {message}"))
                counts["skipped"] += 1
                el.text = xml_text("\n".join(body))
            elif findings and (gate is None or view.level > gate):
                notes = [f"finding, not a test failure: {message}", *body]
            else:
                el = ET.SubElement(case, "failure", type=xml_text(fclass), message=xml_text(message))
                counts["failures"] += 1
                el.text = xml_text("\n".join(body))
        elif view.verdict == "skip":
            skipped = next((r for r in recs if r.verdict.status == "skip"), None)
            why = (skipped.verdict.explanation if skipped else None) or "infrastructure trouble"
            ET.SubElement(case, "skipped", message=xml_text(f"infrastructure skip: {why}"))
            counts["skipped"] += 1
        out_lines = [*notes, facts, *(_probe_line(rec) for rec in recs)]
        ET.SubElement(case, "system-out").text = xml_text("\n".join(out_lines))
        _stderr(case, run, recs)
    # Isolate probes ran workloads off the ladder: each is a testcase named by the value it tried
    # alone (memory_mb=276); a failing one is a finding of the search, like a failing level.
    seen: dict[str, int] = {}
    for p in isolate_probes(summary):
        label = probe_label(summary, p.level, p.spec, p.probe_id)
        name = f"{label} on {summary.cluster}"
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:  # the same value probed again (a repeat): dashboards keep names apart
            name += f" #{seen[name]}"
        case = ET.SubElement(suite, "testcase", name=xml_text(name), classname=classname)
        case.set("time", _secs(p.wall_s))
        total_time += p.wall_s or 0.0
        counts["tests"] += 1
        rec = by_id.get(p.probe_id)
        # A probe of the user's own function has a spec too, but no isolation made it.
        lines = [f"{'isolate probe ' if summary.isolate is not None else ''}{label}: {p.verdict}"]
        if p.verdict == "fail":
            message = f"{p.failure_class or 'unknown'}: {p.signature}" if p.signature else p.failure_class or "unknown"
            if findings:
                lines.insert(0, f"finding, not a test failure: {message}")
            else:
                el = ET.SubElement(
                    case, "failure", type=xml_text(p.failure_class or "unknown"), message=xml_text(message)
                )
                counts["failures"] += 1
        elif p.verdict == "skip":
            ET.SubElement(case, "skipped", message="infrastructure skip")
            counts["skipped"] += 1
        if rec is not None:
            lines.append(_probe_line(rec))
        ET.SubElement(case, "system-out").text = xml_text("\n".join(lines))
        _stderr(case, run, [rec] if rec is not None else [])
    suite.set("name", xml_text(name or cell_name(summary)))
    for key, count in counts.items():
        suite.set(key, str(count))
    suite.set("time", _secs(total_time))
    suite.set("timestamp", stamp)
    suite.set("id", summary.run_id)
    suite.set("package", classname)
    # Element order does not matter to the schema; attributes first keeps the file readable.
    return suite


def _probe_line(rec: ProbeRecord) -> str:
    # Rounded as people read them: seconds to the millisecond, megabytes to one decimal.
    return (
        f"probe {rec.probe_id} attempt {rec.attempt}: {rec.verdict.status}"
        f" wall={rec.observation.wall_s:.3f}s peak_mb={fmt_mb(rec.observation.peak_rss_mb)}"
    )


def _stderr(case: ET.Element, run: RunView, recs: Sequence[ProbeRecord]) -> None:
    errs = [run.stderr_of(r) for r in recs]
    errs = [e for e in errs if e.strip()]
    if errs:
        ET.SubElement(case, "system-err").text = xml_text("\n----\n".join(errs))


def document(suites: Sequence[ET.Element], name: str = "threshold-probe") -> str:
    """A <testsuites> document around the given suites, with totals."""
    root = ET.Element("testsuites", name=name)
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for suite in suites:
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        total_time += float(suite.get("time", "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _secs(total_time))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def expect_pass_through(summary: RunSummary) -> int | None:
    """The run's gate: every level up to it must pass (`--expect-pass-through N`), or None."""
    return summary.expect_pass_through


def to_junit(run: RunView) -> str:
    """The run as a JUnit XML document with one testsuite.

    A search's failing levels are findings (see `testsuite`); a single `probe run` that failed
    is a test failure.
    """
    return document([testsuite(run, findings=run.summary.kind != "run")])
