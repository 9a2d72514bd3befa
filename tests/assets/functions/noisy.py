"""A user function whose output is hostile to terminals and report formats."""

import sys

#: Rich markup (a bare closing tag, a style), a clear-screen and an OSC window-title sequence,
#: a backtick, HTML and a table pipe: everything a report must show as plain text.
HOSTILE = "[/] [bold red]boom[/] \x1b[2J\x1b]0;pwned\x07 `tick` <script>alert(1)</script> | pipe \x9b31m"


def noisy():
    print(HOSTILE)
    print(HOSTILE, file=sys.stderr)
    raise RuntimeError(HOSTILE)
