"""Every command's --help says what docs/exit-codes.md says, and shows its text as written.

The help is rendered in-process (typer's CliRunner) at 200 columns, for every command and
subcommand the app mounts, so that a command added later is covered too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from threshold_probe.cli.app import app

DOCS = Path(__file__).resolve().parent.parent / "docs" / "exit-codes.md"


def _commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path of names, command) for every leaf command of `probe`."""

    def walk(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                yield from walk(sub, (*path, name))
        else:
            yield path, cmd

    yield from walk(typer.main.get_command(app), ())


COMMANDS = dict(_commands())


def _help(path: tuple[str, ...]) -> str:
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    return " ".join(res.output.replace("│", " ").split())


def _codes(text: str) -> set[int]:
    """The exit codes a help's 'Exit codes:' paragraph lists (130/143 counts as 130)."""
    tail = text.split("Exit codes:", 1)[1]
    return {int(m.group(1)) for m in re.finditer(r"(?:^|;)\s*(\d+)(?:/\d+)?\s", tail)}


def _documented() -> dict[tuple[str, ...], set[int]]:
    """Per command, the codes docs/exit-codes.md's 'By command' table gives it (a non-empty cell)."""
    table = DOCS.read_text().split("## By command", 1)[1].split("\n## ", 1)[0]
    out: dict[tuple[str, ...], set[int]] = {}
    for line in table.splitlines():
        if not line.startswith("| `probe "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        codes = {code for code, cell in zip((0, 1, 2, 3, 130), cells[1:], strict=True) if cell}
        for name in re.findall(r"`probe ([a-z][a-z -]*?)(?: [A-Z_]+)?`", cells[0]):
            out[tuple(name.split())] = codes
    return out


DOCUMENTED = _documented()


def test_the_docs_table_covers_every_command() -> None:
    missing = [" ".join(p) for p in COMMANDS if p not in DOCUMENTED]
    assert not missing, missing


@pytest.mark.parametrize("path", sorted(DOCUMENTED), ids=" ".join)
def test_help_lists_the_documented_exit_codes(path: tuple[str, ...]) -> None:
    assert _codes(_help(path)) == DOCUMENTED[path], _help(path)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_exit_codes_name_only_options_the_command_has(path: tuple[str, ...]) -> None:
    """A help never promises an exit code for an option the command does not take."""
    text = _help(path)
    named = set(re.findall(r"--[a-z][a-z-]+", text.split("Exit codes:", 1)[1].split("╭", 1)[0]))
    own = {opt for p in COMMANDS[path].params for opt in [*p.opts, *getattr(p, "secondary_opts", [])]}
    assert named <= own, (named - own, text)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_help_shows_every_bracket_of_its_text(path: tuple[str, ...]) -> None:
    """A `[nightly.baseline]` in a command's text is shown as written, never taken for markup."""
    written = COMMANDS[path].help or ""
    brackets = [b.replace("\\[", "[") for b in re.findall(r"\\?\[[a-z][^\]\s]*\]", written)]
    text = _help(path)
    for bracket in brackets:
        assert bracket in text, (bracket, text)


def test_top_level_help_names_every_exit_1() -> None:
    text = _help(())
    one = text.split("Exit codes:", 1)[1].split(", 2 ", 1)[0]
    for finding in ("run", "check", "nightly", "--expect-pass-through"):
        assert finding in one, one


VALUE_WORDS = [
    (("repro",), "--output", "DIR"),  # a folder is written, never a file
    (("clusters", "import"), "--known-hosts", "FILE"),
    (("check",), "--against", "RUN_ID|FILE"),
    (("compare-pipelines",), "--search", "sweep|bisect"),
    (("shrink",), "--reducer", "auto|statements|ast"),
    (("measure",), "--sort", "FIELD"),
]


@pytest.mark.parametrize(("path", "option", "word"), VALUE_WORDS, ids=lambda v: v if isinstance(v, str) else "")
def test_an_option_names_what_it_takes(path: tuple[str, ...], option: str, word: str) -> None:
    """The word after an option says what to give, not the option's own name again."""
    text = _help(path)
    assert re.search(rf"{re.escape(option)}(?: -\w)? {re.escape(word)} ", text), text
