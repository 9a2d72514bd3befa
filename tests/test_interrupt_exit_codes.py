"""Exit codes are documented for every command: in its --help and in docs/exit-codes.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from threshold_probe.cli.app import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "exit-codes.md"


def _commands() -> list[tuple[str, ...]]:
    """Every command path of the app, groups included (`clusters check`)."""
    # Duck typing: Typer may ship its own copy of click, so no isinstance against click's classes.
    root = typer.main.get_command(app)
    paths: list[tuple[str, ...]] = []
    for name, cmd in getattr(root, "commands", {}).items():
        if hasattr(cmd, "commands"):
            paths.extend((name, sub) for sub in cmd.commands)
        else:
            paths.append((name,))
    return sorted(paths)


COMMANDS = _commands()


def test_every_command_is_found() -> None:
    names = {path[0] for path in COMMANDS}
    assert {"run", "sweep", "bisect", "isolate", "report", "runs", "levels", "measure"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
def test_every_help_ends_with_its_exit_codes(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Exit codes: 0 " in text
    assert "2 bad input" in text
    assert "130/143 interrupted" in text
    if path[0] in {"sweep", "bisect", "isolate"}:
        assert "3 infrastructure" in text and "resume command printed" in text
    if path[0] == "run":
        assert "1 it failed" in text and "3 infrastructure" in text
    if path[0] == "nightly":
        assert "1 regression" in text


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
def test_docs_list_every_command(path: tuple[str, ...]) -> None:
    doc = DOC.read_text()
    name = "probe " + " ".join(path)
    assert re.search(rf"`{re.escape(name)}( [A-Z]+)?`", doc), f"{name} is missing from {DOC.name}"
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 130 |", "| 143 |"):
        assert code in doc
