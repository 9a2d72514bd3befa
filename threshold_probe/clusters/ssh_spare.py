"""A launcher started ahead of the next probe, so that its interpreter start is off that probe's path.

After each probe, the SSH cluster starts the next launcher on its own channel of the one
connection. It starts its interpreter, imports itself and waits for a header on stdin; the next
probe sends its header and files down that channel instead of starting a command of its own.
The job it then runs is still started afresh, under its limits, when the probe comes: only the
launcher (which stages the files, applies the limits and watches the job) is ready early.

A spare is used only for the session and command it was started for, and only while its channel
is open on the current connection and its launcher still waits; otherwise it is closed (the
launcher reads the end of its input and leaves, having made nothing) and the probe starts its
own. At most one spare waits at a time.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from threshold_probe.clusters.transport import TransportError

if TYPE_CHECKING:
    import paramiko

    from threshold_probe.clusters.ssh_transport import SSHTransport


class SpareLauncher:
    """At most one launcher waiting on its own channel, for one session and one command."""

    def __init__(self, transport: Callable[[], SSHTransport]) -> None:
        self._transport = transport
        self._lock = threading.Lock()
        self._spare: tuple[paramiko.Channel, str, str] | None = None
        self._stopped = False

    def take(self, session: str, command: str) -> paramiko.Channel | None:
        """The waiting launcher, when it still waits for this session and command; else None."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None:
            return None
        chan, for_session, for_command = spare
        if for_session == session and for_command == command and self._transport().waiting(chan):
            return chan
        with contextlib.suppress(Exception):
            chan.close()
        return None

    def start(self, session: str, command: str) -> None:
        """Start the next launcher in the background (nothing when one already waits)."""
        with self._lock:
            if self._spare is not None:
                return
            self._stopped = False

        def begin() -> None:
            try:
                chan = self._transport().begin(command)
            except TransportError:
                return
            with self._lock:
                if self._spare is None and not self._stopped:
                    self._spare = (chan, session, command)
                    return
            with contextlib.suppress(Exception):
                chan.close()

        threading.Thread(target=begin, name="tp-ssh-spare", daemon=True).start()

    def drop(self) -> None:
        """Close the waiting launcher, and any that is being started (closing or cancelling)."""
        with self._lock:
            spare, self._spare = self._spare, None
            self._stopped = True
        if spare is not None:
            with contextlib.suppress(Exception):
                spare[0].close()


__all__ = ["SpareLauncher"]
