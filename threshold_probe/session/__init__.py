"""A run: one command's search over a ladder, through one pipeline, on one cluster, journalled.

The package splits a run along its jobs, each module saying in its first line what it does:

- options.py: what the user asked for (limit overrides, search options, the progress sink);
- workloads.py: the ladder or the user's function, as probe requests with metrics;
- outcomes.py: verdicts as a search reads them (the failure hunted) and the oracles;
- searches.py: which strategy a kind of run uses, and its typed SearchResult;
- checks.py: preflight, fingerprint and limits before the first probe;
- report.py: the RunSummary built from the probe records;
- ownership.py: leftovers of dead processes, status, which run a resume or isolate picks;
- run.py: the orchestration of one run (Run);
- entry.py: the entry points every command calls (run_search, resume_search, isolate_from).
"""

from __future__ import annotations

from threshold_probe.session.entry import execute_logged, isolate_from, resume_search, run_search
from threshold_probe.session.options import (
    Kind,
    LimitOverrides,
    ProgressSink,
    SearchOptions,
    limit_origins,
    run_limits,
    with_partition,
)
from threshold_probe.session.outcomes import different_failures_text, pass_rate_text
from threshold_probe.session.ownership import bisect_to_isolate, display_status
from threshold_probe.session.report import probe_summary, versions
from threshold_probe.session.run import Run
from threshold_probe.session.searches import SearchResult
from threshold_probe.session.workloads import function_request

__all__ = [
    "Kind",
    "LimitOverrides",
    "ProgressSink",
    "Run",
    "SearchOptions",
    "SearchResult",
    "bisect_to_isolate",
    "different_failures_text",
    "display_status",
    "execute_logged",
    "function_request",
    "isolate_from",
    "limit_origins",
    "pass_rate_text",
    "probe_summary",
    "resume_search",
    "run_limits",
    "run_search",
    "versions",
    "with_partition",
]
