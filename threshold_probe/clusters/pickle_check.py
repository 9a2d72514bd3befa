"""The preflight's version check: the far side loads and runs a real pickle made here.

A function pickled by value carries bytecode, which only the Python minor version that wrote it
runs reliably; another minor version may raise, or crash outright (SIGSEGV) without a word. So
the check script prints the far side's versions first (flushed: they survive a crash), then
loads the pickle and calls it, and prints what came of it. The client compares both sides and
says what to install.
"""

from __future__ import annotations

import base64
import json
import sys
import types
from typing import Any

from threshold_probe.clusters.base import Check

#: The value the pickled check function returns for CHECK_ARG.
CHECK_ARG = 20
EXPECTED = sum(range(CHECK_ARG + 1)) + 7
#: Prefix of the script's output lines, so that login banners or module noise do not confuse it.
MARK = "TPCHECK "


def probe_pickle() -> bytes:
    """A function pickled BY VALUE (as the native pipeline ships workloads), with a loop whose
    bytecode differs between Python minor versions."""
    import cloudpickle

    module = types.ModuleType("threshold_probe_preflight_check")
    source = (
        "OFFSET = 7\n"
        "def check(n):\n"
        "    total = 0\n"
        "    for i in range(n + 1):\n"
        "        total += i\n"
        "    return total + OFFSET\n"
    )
    exec(compile(source, "<preflight>", "exec"), module.__dict__)
    # The module is not in sys.modules, so cloudpickle must ship the function by value.
    data: bytes = cloudpickle.dumps(module.check)
    return data


def check_script() -> str:
    """Python source (3.8+, stdlib and cloudpickle) that reports versions, then loads and runs the pickle."""
    blob = base64.b64encode(probe_pickle()).decode()
    return (
        "import base64, json, socket, sys\n"
        "out = {'python': '%d.%d.%d' % sys.version_info[:3], 'executable': sys.executable,"
        " 'hostname': socket.gethostname()}\n"
        "try:\n"
        "    import cloudpickle\n"
        "    out['cloudpickle'] = cloudpickle.__version__\n"
        "except Exception as e:\n"
        "    out['cloudpickle_error'] = '%s: %s' % (type(e).__name__, e)\n"
        f"print({MARK!r} + json.dumps(out))\n"
        "sys.stdout.flush()\n"
        "if 'cloudpickle' in out:\n"
        "    res = {}\n"
        "    try:\n"
        f"        f = cloudpickle.loads(base64.b64decode('{blob}'))\n"
        f"        res['loaded'] = f({CHECK_ARG})\n"
        "    except Exception as e:\n"
        "        res['load_error'] = '%s: %s' % (type(e).__name__, e)\n"
        f"    print({MARK!r} + json.dumps(res))\n"
    )


def parse_output(text: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(facts, outcome) from the script's output; None for a part that was not printed."""
    found: list[dict[str, Any]] = []
    for line in text.splitlines():
        if line.startswith(MARK):
            try:
                value = json.loads(line[len(MARK) :])
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return (found[0] if found else None), (found[1] if len(found) > 1 else None)


def version_checks(
    facts: dict[str, Any],
    outcome: dict[str, Any] | None,
    *,
    python_label: str,
    where: str,
    ended: str,
) -> list[Check]:
    """The `python` and `cloudpickle` checks from what the far side printed.

    `where` names the far side ("there", "on a compute node"); `ended` says how the script
    ended when it printed no outcome (for example "exit status None" or "signal 11").
    """
    import cloudpickle

    here_py = ".".join(str(v) for v in sys.version_info[:3])
    here_minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    here_cp = str(cloudpickle.__version__)
    there_py = str(facts.get("python") or "unknown")
    try:
        there = tuple(int(x) for x in there_py.split(".")[:2])
    except ValueError:
        there = (0, 0)
    checks = [
        Check(
            name="python",
            status="ok" if there >= (3, 8) else "fail",
            detail=f"{python_label} {where} is Python {there_py} ({facts.get('executable')})",
            fix=None if there >= (3, 8) else "the runner needs Python 3.8 or newer on the far side",
        )
    ]
    install = (
        f"install Python {here_minor} with cloudpickle {here_cp} on the far side and point "
        f"python at it, or run probe here with Python {'.'.join(there_py.split('.')[:2])}"
    )
    if "cloudpickle" not in facts:
        checks.append(
            Check(
                name="cloudpickle",
                status="fail",
                detail=f"cloudpickle does not import {where}: {facts.get('cloudpickle_error')}",
                fix=f"{python_label} -m pip install 'cloudpickle=={here_cp}' on the far side",
            )
        )
        return checks
    cp = str(facts["cloudpickle"])
    pair = f"Python {here_py} / cloudpickle {here_cp} here, Python {there_py} / cloudpickle {cp} {where}"
    same = cp == here_cp and there == tuple(sys.version_info[:2])
    if outcome is not None and outcome.get("loaded") == EXPECTED:
        checks.append(
            Check(
                name="cloudpickle",
                status="ok" if same else "warn",
                detail=f"cloudpickle {cp} {where} loads what cloudpickle {here_cp} writes here, and runs it ({pair})",
                fix=None if same else install,
            )
        )
    elif outcome is not None:
        checks.append(
            Check(
                name="cloudpickle",
                status="fail",
                detail=f"a function pickled here does not load {where}: "
                f"{outcome.get('load_error') or outcome.get('loaded')} ({pair})",
                fix=install,
            )
        )
    else:
        checks.append(
            Check(
                name="cloudpickle",
                status="fail",
                detail=f"the interpreter crashed ({ended}) loading a function pickled here ({pair})",
                fix=install,
            )
        )
    return checks


__all__ = ["check_script", "parse_output", "probe_pickle", "version_checks"]
