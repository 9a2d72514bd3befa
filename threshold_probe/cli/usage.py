"""How every command reads in --help and in a usage error, set once for the whole app.

- An option's value is named by a word (`--memory SIZE`, `--top N`); a flag shows none.
- Arguments read as words in the usage line (`compare [OPTIONS] RUN_A RUN_B`), not `{run_a}`.
- Help paragraphs are written as prose and wrapped once, by the help formatter, to the terminal.
- A usage error (an unknown option, a value out of range) keeps Typer's box on a terminal; when
  stderr is not a terminal it is one line, `probe: error: ...`, for logs and scripts. Exit 2.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from threshold_probe.textsafe import strip_control

#: Every program name the usage line and its errors show.
PROG = "probe"

#: The word for an option's value when its declaration gives none, by the value's Python type.
_TYPE_WORDS: dict[type, str] = {int: "N", float: "SECONDS", Path: "PATH"}


def reflow(text: str | None) -> str | None:
    """Help text with each paragraph on one line: the formatter then wraps it once, to the width.

    A paragraph whose lines start with `-` or `*` (a list) or with indentation keeps its breaks.
    """
    if not text:
        return text
    paragraphs = text.split("\n\n")
    out = []
    for para in paragraphs:
        lines = para.splitlines()
        listed = any(re.match(r"\s*[-*] |\s{2,}", line) for line in lines[1:])
        out.append(para if listed or para.startswith("\b") else " ".join(line.strip() for line in lines))
    return "\n\n".join(out)


#: ... and by the option's name, where a type alone says too little.
_NAME_WORDS = {
    "memory": "SIZE",
    "time": "DURATION",
    "function": "FILE:FUNC",
    "match": "TEXT",
    "output": "FILE",
    "write": "DIR",
    "older_than": "AGE",
    "pipelines": "P1,P2,...",
    "from_level": "N",
    "to_level": "N",
}


def _value_word(param: TyperOption) -> str:
    if param.name in _NAME_WORDS:
        return _NAME_WORDS[param.name]
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    word = _TYPE_WORDS.get(annotation) if isinstance(annotation, type) else None
    return word or str(param.name or "value").upper().replace("_", "-")


def _no_type(ctx: Any) -> None:
    """An argument's type column: its name already says what it is."""
    return None


def conform(command: Any) -> None:
    """Give a built command (and its parameters) the conventions above."""
    command.help = reflow(command.help)
    for param in command.params:
        conform_param(param)


def conform_param(param: Any) -> Any:
    """An option's value named by a word, none for a flag; an argument named by its metavar alone."""
    if isinstance(param, TyperOption):
        if param.is_flag or param.count:
            param.metavar = ""  # a flag takes no value: nothing to name
        elif param.metavar is None:
            param.metavar = _value_word(param)
    elif isinstance(param, TyperArgument):
        if param.metavar is None:
            param.metavar = str(param.name).upper()
        # Typer's help shows an argument's type (`<str>`) beside its name; the name is the word.
        setattr(param, "display_type_rich", _no_type)  # noqa: B010
    return param


def _usage_pieces(command: Any, ctx: Any) -> list[str]:
    """`[OPTIONS] RUN_A [RUN_ID] TARGET...`: required arguments bare, optional ones in brackets."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if not isinstance(param, TyperArgument):
            continue
        name = str(param.metavar or param.name).upper()
        if param.nargs != 1 and not name.endswith("..."):
            name += "..."
        pieces.append(name if param.required else f"[{name}]")
    return pieces


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def one_line(exc: Exception) -> str:
    """A usage error as one line: `no such option --frm (did you mean --from?)`."""
    option = getattr(exc, "option_name", None)
    if option:
        close = difflib.get_close_matches(option, list(getattr(exc, "possibilities", None) or []), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"no such option {option}{hint}"
    message = " ".join(str(getattr(exc, "format_message", lambda: str(exc))()).split())
    return message[:1].lower() + message[1:]


@contextmanager
def _usage_errors() -> Iterator[None]:
    """Piped, a usage error is one line on stderr and exit 2; on a terminal, Typer's own box."""
    try:
        yield
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" or _stderr_is_terminal():
            raise
        sys.stderr.write(f"{PROG}: error: {strip_control(one_line(exc))}\n")
        sys.stderr.flush()
        raise typer.Exit(int(getattr(exc, "exit_code", 2))) from None


class ProbeCommand(TyperCommand):
    """A command with the conventions of this module."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conform(self)

    def get_params(self, ctx: Any) -> list[Any]:
        # --help (and Typer's completion options) are added here, after the command was built.
        return [conform_param(p) for p in super().get_params(ctx)]

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage_pieces(self, ctx)


class ProbeGroup(TyperGroup):
    """A command group with the conventions of this module; it handles its commands' usage errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conform(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return [conform_param(p) for p in super().get_params(ctx)]

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*_usage_pieces(self, ctx), self.subcommand_metavar]

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with _usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors():
            return super().invoke(ctx)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        # `python -m threshold_probe` is the same program as `probe`: one name in usage lines,
        # errors and the completion variable (_PROBE_COMPLETE).
        return super().main(args, prog_name or PROG, complete_var, standalone_mode, windows_expand_args, **extra)
