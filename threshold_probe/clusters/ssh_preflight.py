"""SSH preflight: Python and cloudpickle there, a private writable workdir, and the round trip."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import threshold_probe.clusters.pickle_check as pickle_check
from threshold_probe.clusters.base import Check, disk_check
from threshold_probe.clusters.staging import UNSAFE_WORKDIR, remote_workdir_guard
from threshold_probe.clusters.transport import Transport, quote_path

#: Round trip above which preflight warns: every probe pays it at least once.
SLOW_RTT_S = 0.25


def check_python(
    transport: Transport,
    command: str,
    *,
    name: str,
    python: str,
    setup_failed: Callable[[int | None], bool],
) -> tuple[list[Check], dict[str, str] | None]:
    """Python and cloudpickle there, and whether they load a pickle made here; with the facts seen."""
    res = transport.run(
        command,
        stdin=pickle_check.check_script().encode(),
        timeout=60,
    )
    facts, outcome = pickle_check.parse_output(res.text())
    if facts is None:
        last = (res.error_text().splitlines() or [f"exit status {res.exit_code}"])[-1]
        if setup_failed(res.exit_code):
            return [
                Check(
                    name="setup",
                    status="fail",
                    detail=f"a module or setup line fails on the far side: {last}",
                    fix=f"correct clusters.{name}.modules / setup (they run before {python})",
                )
            ], None
        return [
            Check(
                name="python",
                status="fail",
                detail=f"{python} does not run on the far side: {last}",
                fix=f"set clusters.{name}.python to an interpreter there (e.g. /usr/bin/python3)",
            )
        ], None
    far_side = {
        "python": str(facts.get("python")),
        "cloudpickle": str(facts.get("cloudpickle")),
        "hostname": str(facts.get("hostname")),
    }
    # paramiko does not pass on the signal that ended a command: a crash shows as no status.
    ended = f"exit status {res.exit_code}" if res.exit_code is not None else "killed by a signal"
    checks = pickle_check.version_checks(facts, outcome, python_label=str(python), where="there", ended=ended)
    return checks, far_side


def check_workdir(transport: Transport, workdir: str, name: str) -> list[Check]:
    """The workdir there: private, writable, and its free space."""
    w = quote_path(workdir)
    res = transport.run(
        f"umask 077 && mkdir -p -- {w} && cd -- {w} && {{ {remote_workdir_guard()}; }} "
        f'&& t=$(mktemp .tp-check-XXXXXXXX) && rm -f -- "$t" && df -Pk . | tail -n 1',
        timeout=60,
    )
    if res.exit_code == UNSAFE_WORKDIR:
        return [
            Check(
                name="workdir",
                status="fail",
                detail=f"{workdir} there is {res.error_text()}",
                fix=f"set clusters.{name}.workdir to a folder that only the user owns and can write",
            )
        ]
    if not res.ok:
        return [
            Check(
                name="workdir",
                status="fail",
                detail=f"{workdir} is not writable there: {res.error_text() or res.exit_code}",
                fix=f"set clusters.{name}.workdir to a folder the user can write",
            )
        ]
    checks = [Check(name="workdir", status="ok", detail=f"{workdir} is writable")]
    fields = res.text().split()
    try:
        free = int(fields[3]) * 1024
    except (IndexError, ValueError):
        return checks
    checks.append(disk_check(free, workdir, "free some space there or set a different workdir"))
    return checks


def check_latency(transport: Transport) -> Check:
    """The round trip of a command on the open connection (median of 5)."""
    times = [transport.run("true", timeout=30).duration_s for _ in range(5)]
    rtt = statistics.median(times)
    return Check(
        name="latency",
        status="ok" if rtt <= SLOW_RTT_S else "warn",
        detail=f"round trip {rtt * 1000:.1f} ms (median of 5 commands on the open connection)",
        fix=None if rtt <= SLOW_RTT_S else "probes will be slow; a closer host or a faster link helps",
    )
