"""Render a run: Rich terminal text, JSON, Markdown, HTML or JUnit XML, all pure functions of its view.

The view (threshold_probe/view: RunView) is made before rendering, by whoever holds the store;
nothing in render/ reads the store or a run's files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from threshold_probe.errors import UserError
from threshold_probe.models import ProbeRecord
from threshold_probe.summary import RunSummary
from threshold_probe.view import RunView, run_view

Format = Literal["rich", "json", "md", "html", "junit"]
FORMATS: tuple[str, ...] = get_args(Format)

#: The file suffix each format is usually saved under.
SUFFIXES = {"rich": ".txt", "json": ".json", "md": ".md", "html": ".html", "junit": ".xml"}


def render(
    run: RunView | RunSummary, fmt: str, records: Sequence[ProbeRecord] = (), *, all_levels: bool = False
) -> str:
    """The run in one format, as text. Given a bare summary, its view is made first (with
    `records`, the run's probes, whose stderr html and junit show). `all_levels`: the rich
    report's level table has a row for every level, the ones not probed too.

    For "rich" this is the plain-text form of the terminal report; print it on a console with
    threshold_probe.render.terminal.print_report to keep its colours.
    """
    view = run if isinstance(run, RunView) else run_view(run, records)
    if fmt == "rich":
        from threshold_probe.render.terminal import to_text

        return to_text(view, all_levels=all_levels)
    if fmt == "json":
        from threshold_probe.render.json import to_json

        return to_json(view.summary)
    if fmt == "md":
        from threshold_probe.render.markdown import to_markdown

        return to_markdown(view)
    if fmt == "html":
        from threshold_probe.render.html import to_html

        return to_html(view)
    if fmt == "junit":
        from threshold_probe.render.junit import to_junit

        return to_junit(view)
    raise UserError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")
