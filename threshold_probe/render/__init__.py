"""Render a run: Rich terminal text, JSON, Markdown, HTML or JUnit XML, all from one RunSummary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from threshold_probe.errors import UserError
from threshold_probe.models import ProbeRecord
from threshold_probe.summary import RunSummary
from threshold_probe.textsafe import clean

Format = Literal["rich", "json", "md", "html", "junit"]
FORMATS: tuple[str, ...] = get_args(Format)

#: The file suffix each format is usually saved under.
SUFFIXES = {"rich": ".txt", "json": ".json", "md": ".md", "html": ".html", "junit": ".xml"}


def render(summary: RunSummary, fmt: str, records: Sequence[ProbeRecord] = ()) -> str:
    """The run in one format, as text. `records` (the run's probes) add full stderr to html and junit.

    For "rich" this is the plain-text form of the terminal report; print it on a console with
    threshold_probe.render.terminal.print_report to keep its colours.
    """
    # Far-side text (logs, messages, signatures) loses its terminal control sequences here, once
    # for every format; each format then escapes its own syntax.
    summary, records = clean(summary), clean(list(records))
    if fmt == "rich":
        from threshold_probe.render.terminal import to_text

        return to_text(summary, records)
    if fmt == "json":
        from threshold_probe.render.json import to_json

        return to_json(summary)
    if fmt == "md":
        from threshold_probe.render.markdown import to_markdown

        return to_markdown(summary, records)
    if fmt == "html":
        from threshold_probe.render.html import to_html

        return to_html(summary, records)
    if fmt == "junit":
        from threshold_probe.render.junit import to_junit

        return to_junit(summary, records)
    raise UserError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")
