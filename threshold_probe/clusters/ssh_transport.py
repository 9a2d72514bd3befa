"""The transport over SSH: commands and files over one reused paramiko connection, with keepalives.

sshconnect.py opens the connection (jump hosts, host keys, auth); this module runs commands on it,
draining both streams concurrently, and notices a frozen or vanished host by keepalives.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from threshold_probe.clusters.transport import CHUNK, CommandResult, Transport, TransportError, quote_path
from threshold_probe.errors import UserError

if TYPE_CHECKING:
    import paramiko

    from threshold_probe.clusters.sshconfig import SSHTarget

#: An open SSH connection asks the server for an answer this often (seconds), and counts the
#: server as dead when KEEPALIVE_COUNT intervals pass without one: OpenSSH's ServerAliveInterval
#: and ServerAliveCountMax. A frozen host (its sshd stopped) keeps the TCP link up, so neither
#: TCP keepalive nor paramiko's own keepalive (which never waits for an answer) notices it.
KEEPALIVE_INTERVAL_S = 5.0
KEEPALIVE_COUNT = 3


class SSHSettings(Protocol):
    """The connection fields SSH and SLURM cluster configs share (read-only)."""

    @property
    def host(self) -> str | None: ...
    @property
    def user(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def identity_file(self) -> str | None: ...
    @property
    def host_key_policy(self) -> str: ...
    @property
    def password_env(self) -> str | None: ...
    @property
    def ssh_config(self) -> str | None: ...
    @property
    def known_hosts(self) -> str | None: ...
    @property
    def connect_timeout(self) -> float: ...


def _ask(t: paramiko.Transport, answered: threading.Event) -> None:
    """One keepalive that wants an answer; OpenSSH answers an unknown request with a failure,
    which is an answer all the same."""
    with contextlib.suppress(Exception):
        t.global_request("keepalive@openssh.com", wait=True)
    answered.set()


class _Heartbeat:
    """Keepalives that expect an answer, on one open connection; closes it when none comes.

    Closing the paramiko transport wakes every thread that waits on it (a command being
    drained, a channel being opened), so that they fail at once instead of waiting for their
    timeouts.
    """

    def __init__(self, transport: paramiko.Transport, interval: float, count: int) -> None:
        self.transport = transport
        self.interval = interval
        self.count = count
        #: Why the connection was closed, once the server stopped answering.
        self.dead: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ssh-keepalive", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t = self.transport
        wait = self.interval * self.count
        while not self._stop.wait(self.interval):
            if not t.is_active():
                return
            answered = threading.Event()
            threading.Thread(target=_ask, args=(t, answered), name="ssh-keepalive-ask", daemon=True).start()
            if not answered.wait(wait) and not self._stop.is_set():
                self.dead = (
                    f"no answer to keepalives for {wait:g}s (the host or its sshd is frozen, or the link is down)"
                )
                with contextlib.suppress(Exception):
                    t.close()
                return

    def stop(self) -> None:
        self._stop.set()


class SSHTransport(Transport):
    """Commands and files over one reused paramiko connection (jump hosts included).

    The connection is opened lazily and again after it drops; a command that finds it dead
    raises TransportError, and the next call reconnects. Sockets are connected here with
    TCP_NODELAY (paramiko leaves Nagle on, which costs ~40 ms per round trip) and keepalive.
    """

    def __init__(
        self,
        target: SSHTarget,
        *,
        known_hosts: Path,
        host_key_policy: str = "reject",
        password: str | None = None,
        connect_timeout: float = 10.0,
        command_timeout: float = 600.0,
        keepalive_s: int = 15,
        allow_agent: bool = True,
        keepalive_interval: float = KEEPALIVE_INTERVAL_S,
        keepalive_count: int = KEEPALIVE_COUNT,
    ) -> None:
        self.target = target
        self.known_hosts = known_hosts
        self.host_key_policy = host_key_policy
        self._password = password
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.keepalive_s = keepalive_s
        self.allow_agent = allow_agent
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count
        self.host = target.display()
        self._clients: list[paramiko.SSHClient] = []
        self._heartbeat: _Heartbeat | None = None
        self._lock = threading.Lock()
        self._channels: set[paramiko.Channel] = set()
        #: Seconds the last (re)connection took; 0 when the connection was reused.
        self.last_connect_s = 0.0

    @classmethod
    def from_settings(
        cls, settings: SSHSettings, base_dir: Path | None = None, command_timeout: float = 600.0
    ) -> SSHTransport:
        """A transport from a cluster config's host, user, port, identity, known_hosts and policy."""
        from threshold_probe.clusters.sshconfig import password_from_env, resolve_known_hosts, resolve_target

        if not settings.host:
            raise UserError("an SSH connection needs `host` (a host name or an ssh config alias)")
        target = resolve_target(
            settings.host,
            user=settings.user,
            port=settings.port,
            identity_file=settings.identity_file,
            ssh_config=settings.ssh_config,
            base_dir=base_dir,
        )
        return cls(
            target,
            known_hosts=resolve_known_hosts(settings.known_hosts, target, base_dir),
            host_key_policy=settings.host_key_policy,
            password=password_from_env(settings.password_env),
            connect_timeout=settings.connect_timeout,
            command_timeout=command_timeout,
        )

    # -- connection ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """The connection is open and its transport alive."""
        if not self._clients:
            return False
        t = self._clients[-1].get_transport()
        return t is not None and t.is_active()

    def connect(self) -> float:
        """Open the connection if it is not open; returns the seconds it took (0 when reused)."""
        with self._lock:
            if self.connected:
                self.last_connect_s = 0.0
                return 0.0
            self._drop()
            started = time.monotonic()
            from threshold_probe.clusters.sshconnect import open_chain

            self._clients = open_chain(
                self.target,
                known_hosts=self.known_hosts,
                policy=self.host_key_policy,
                password=self._password,
                timeout=self.connect_timeout,
                keepalive_s=self.keepalive_s,
                allow_agent=self.allow_agent,
            )
            t = self._clients[-1].get_transport()
            if t is not None and self.keepalive_interval > 0:
                self._heartbeat = _Heartbeat(t, self.keepalive_interval, self.keepalive_count)
            self.last_connect_s = time.monotonic() - started
            return self.last_connect_s

    def _drop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        for client in reversed(self._clients):
            with contextlib.suppress(Exception):
                client.close()
        self._clients = []

    def close_channels(self) -> None:
        """Close every open channel (their commands end early); the connection stays up."""
        for chan in list(self._channels):
            with contextlib.suppress(Exception):
                chan.close()

    def close(self) -> None:
        """Close every channel and the connection chain; safe to call twice."""
        self.close_channels()
        with self._lock:
            self._drop()

    def _transport(self) -> paramiko.Transport:
        self.connect()
        t = self._clients[-1].get_transport()
        if t is None or not t.is_active():  # pragma: no cover - raced with a drop
            raise TransportError(f"{self.host}: connection lost")
        return t

    @contextlib.contextmanager
    def _session(self) -> Iterator[paramiko.Channel]:
        import paramiko

        t = self._transport()
        try:
            chan = t.open_session(timeout=self.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            why = self._why_dead() or f"cannot open a channel: {_describe(exc)}"
            self._mark_dead()
            raise TransportError(f"{self.host}: {why}") from exc
        self._channels.add(chan)
        try:
            yield chan
        finally:
            self._channels.discard(chan)
            with contextlib.suppress(Exception):
                chan.close()

    @contextlib.contextmanager
    def _adopted(self, chan: paramiko.Channel) -> Iterator[paramiko.Channel]:
        try:
            yield chan
        finally:
            self._channels.discard(chan)
            with contextlib.suppress(Exception):
                chan.close()

    def begin(self, command: str) -> paramiko.Channel:
        """Start `command` on a channel of the open connection, to be fed and drained later by
        run_streaming(begun=...). Never connects: TransportError when the connection is not open."""
        import paramiko

        with self._lock:
            t = self._clients[-1].get_transport() if self._clients else None
        if t is None or not t.is_active():
            raise TransportError(f"{self.host}: not connected")
        try:
            chan = t.open_session(timeout=self.connect_timeout)
            self._channels.add(chan)
            chan.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise TransportError(f"{self.host}: cannot start a command: {_describe(exc)}") from exc
        return chan

    def waiting(self, chan: paramiko.Channel) -> bool:
        """`chan` (from begin()) is still open on the current connection, its command not ended."""
        with self._lock:
            t = self._clients[-1].get_transport() if self._clients else None
        return (
            t is not None
            and t.is_active()
            and chan.get_transport() is t
            and not chan.closed
            and not chan.eof_received
            and not chan.exit_status_ready()
        )

    def _why_dead(self) -> str | None:
        """Why the keepalives closed the connection, when they did."""
        beat = self._heartbeat
        return beat.dead if beat is not None else None

    def _mark_dead(self) -> None:
        # Close the chain so that the next call reconnects instead of reusing a half-dead link.
        with self._lock:
            self._drop()

    # -- commands -----------------------------------------------------------------------------

    def run_streaming(
        self,
        command: str,
        on_stdout: Callable[[bytes], None],
        on_stderr: Callable[[bytes], None],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        begun: paramiko.Channel | None = None,
    ) -> CommandResult:
        """Run a command on the far side; drains stdout and stderr concurrently.

        `begun` is a channel from begin() on which `command` already runs, waiting for its stdin.

        On timeout the channel is closed (the far side may keep running: clusters bound their
        jobs remotely too) and `timed_out` is set.
        """
        import paramiko

        timeout = self.command_timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + timeout
        with self._session() if begun is None else self._adopted(begun) as chan:
            try:
                if begun is None:
                    chan.exec_command(command)
                feeder = self._send_stdin(chan, stdin)
                timed_out = _drain(chan, on_stdout, on_stderr, deadline)
                if feeder is not None:
                    feeder.join(timeout=max(0.0, deadline - time.monotonic()))
                    if feeder.is_alive():
                        timed_out = True
                if not timed_out:
                    left = max(0.0, deadline - time.monotonic())
                    if not chan.status_event.wait(left):
                        timed_out = True
            except (paramiko.SSHException, EOFError, OSError) as exc:
                why = self._why_dead() or f"connection lost: {_describe(exc)}"
                self._mark_dead()
                raise TransportError(f"{self.host}: {why}") from exc
            if not timed_out and not chan.exit_status_ready():
                why = self._why_dead() or "connection lost before the command finished"
                self._mark_dead()
                raise TransportError(f"{self.host}: {why}")
            if timed_out:
                return CommandResult(exit_code=None, timed_out=True, duration_s=time.monotonic() - started)
            status = chan.exit_status
            if status < 0 and not self.connected:
                raise TransportError(f"{self.host}: connection lost before the command finished")
        # paramiko ignores OpenSSH's exit-signal message: a command killed by a signal has no
        # exit status (-1) and no signal number here. Wrap the command if the signal matters.
        return CommandResult(
            exit_code=None if status < 0 else status,
            duration_s=time.monotonic() - started,
        )

    def _send_stdin(self, chan: paramiko.Channel, stdin: bytes | None) -> threading.Thread | None:
        if stdin is None:
            chan.shutdown_write()
            return None
        if len(stdin) <= 64 * 1024:
            # Fits in any window: no thread needed, and no risk of blocking on a full window.
            chan.sendall(stdin)
            chan.shutdown_write()
            return None

        def feed() -> None:
            with contextlib.suppress(Exception):
                chan.sendall(stdin)
                chan.shutdown_write()

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        return thread

    # -- files --------------------------------------------------------------------------------

    def put(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        """Write a file on the far side atomically, through `cat` on one channel (no SFTP)."""
        q = quote_path(remote_path)
        tmp = quote_path(f"{remote_path}.tmp{os.getpid()}")
        cmd = (
            f'umask 077 && mkdir -p -- "$(dirname -- {q})" && cat > {tmp} && chmod {mode:o} {tmp} && mv -f -- {tmp} {q}'
        )
        res = self.run(cmd, stdin=data, timeout=self.command_timeout)
        if not res.ok:
            raise TransportError(f"{self.host}: cannot write {remote_path}: {res.error_text()}")

    def get(self, remote_path: str, local_path: Path) -> bool:
        """Copy a far-side file here through `cat`; False when it does not exist."""
        q = quote_path(remote_path)
        tmp = local_path.with_name(f".{local_path.name}.part")
        res = self.run(f"test -f {q} || exit 3; exec cat -- {q}", stdout_path=tmp, timeout=self.command_timeout)
        if res.exit_code == 3:
            tmp.unlink(missing_ok=True)
            return False
        if not res.ok:
            tmp.unlink(missing_ok=True)
            raise TransportError(f"{self.host}: cannot read {remote_path}: {res.error_text()}")
        os.replace(tmp, local_path)
        return True


def _drain(
    chan: paramiko.Channel,
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
    deadline: float,
) -> bool:
    """Read both streams as data arrives until both end; True when the deadline passed first."""
    sel = selectors.DefaultSelector()
    # paramiko's fileno() is a pipe set whenever either buffer has data or the channel closes.
    sel.register(chan.fileno(), selectors.EVENT_READ)
    try:
        while True:
            progressed = False
            while chan.recv_ready():
                on_stdout(chan.recv(CHUNK))
                progressed = True
            while chan.recv_stderr_ready():
                on_stderr(chan.recv_stderr(CHUNK))
                progressed = True
            if chan.eof_received or chan.closed:
                # Whatever arrived between the last check and EOF is still in the buffers.
                while data := chan.recv(CHUNK) if chan.recv_ready() else b"":
                    on_stdout(data)
                while data := chan.recv_stderr(CHUNK) if chan.recv_stderr_ready() else b"":
                    on_stderr(data)
                if chan.closed or not chan.get_transport() or chan.eof_received:
                    return False
            if progressed:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            # Bounded waits so a dropped link (which may never set the pipe) is noticed.
            sel.select(min(left, 1.0))
            t = chan.get_transport()
            if t is None or not t.is_active():
                raise EOFError("transport closed")
    finally:
        sel.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
