"""Text from the far side or from user files is data: strip what a terminal would obey.

Logs, exception messages, signatures, host facts and user file names reach every report and
error line. A terminal obeys escape sequences in them (clear the screen, set the window title,
move the cursor, rewrite a line with a carriage return), so they are removed before any text is
rendered; each renderer then escapes its own syntax (Rich markup, Markdown, HTML, XML).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel

# Order matters: whole sequences first (CSI, OSC with its BEL/ST terminator, DCS/SOS/PM/APC
# strings, two-byte escapes), then any lone control character left over. Tab and newline stay;
# a carriage return goes (it lets a line overwrite what was printed before it, CRLF included),
# and so do the bidirectional overrides that make text read differently from what it is.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|\x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)

T = TypeVar("T")


def strip_control(text: str) -> str:
    """`text` without terminal control sequences or control characters (tab and newline stay)."""
    if text.isprintable():  # the common case costs one scan
        return text
    return _CONTROL.sub("", text)


def clean(value: T) -> T:
    """A copy of `value` (str, list, tuple, dict or pydantic model, nested) with every string stripped."""
    return _clean(value)  # type: ignore[no-any-return]


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return strip_control(value)
    if isinstance(value, BaseModel):
        updates = {name: _clean(getattr(value, name)) for name in type(value).model_fields}
        return value.model_copy(update=updates)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_clean(v) for v in value)
    return value
