"""Open a paramiko connection chain (jump hosts first) with our own sockets and host-key checks.

Every hop is a paramiko SSHClient whose socket we create: a TCP socket with TCP_NODELAY for the
first hop, a `direct-tcpip` channel through the previous hop for the others. Host keys are checked
against one known_hosts file:

- `reject`: an unknown host is refused;
- `accept-new`: an unknown host is added to the file, once;
- a CHANGED key is refused under both policies, with the command that fixes it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import select
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paramiko

from threshold_probe.clusters.sshconfig import SSHTarget
from threshold_probe.clusters.transport import HostKeyError, TransportError

_append_lock = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """`SHA256:...` as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _Policy(paramiko.MissingHostKeyPolicy):
    """Decides about hosts absent from known_hosts; changed keys never reach this policy."""

    def __init__(self, policy: str, known_hosts: Path) -> None:
        self.policy = policy
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.policy != "accept-new":
            raise HostKeyError(
                f"host {hostname} is not in {self.known_hosts} (it offers {key.get_name()} {fingerprint(key)})",
                fix=f"check the fingerprint with the host's administrator, then connect once with "
                f"`ssh -o UserKnownHostsFile={self.known_hosts} ...`, "
                f'or set host_key_policy = "accept-new"',
            )
        client.get_host_keys().add(hostname, key.get_name(), key)
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _append_lock:
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as fh:
                fh.write(line)


def open_chain(
    target: SSHTarget,
    *,
    known_hosts: Path,
    policy: str,
    password: str | None,
    timeout: float,
    keepalive_s: int,
    allow_agent: bool = True,
) -> list[paramiko.SSHClient]:
    """Connect to every jump host, then the target; returns the clients, target last.

    Raises HostKeyError for an unknown (under `reject`) or changed key, TransportError for any
    other trouble. On failure every client already opened is closed.
    """
    clients: list[paramiko.SSHClient] = []
    hops = [*target.jumps, target]
    try:
        sock: Any = None
        for i, hop in enumerate(hops):
            if i > 0:
                sock = _tunnel(clients[-1], hop, timeout)
            elif hop.proxy_command:
                sock = _proxy_command(hop, timeout)
            else:
                sock = _tcp_connect(hop, timeout)
            try:
                client = _connect_hop(
                    hop,
                    sock,
                    known_hosts=known_hosts,
                    policy=policy,
                    # The password belongs to the target; jump hosts use keys or the agent.
                    password=password if hop is target else None,
                    timeout=timeout,
                    allow_agent=allow_agent,
                )
            except TransportError as exc:
                if isinstance(sock, _ProxySocket) and not isinstance(exc, HostKeyError) and exc.retryable:
                    sock.close()
                    raise _proxy_failure(hop, sock, exc) from exc
                raise
            clients.append(client)
            t = clients[-1].get_transport()
            if t is not None:
                t.set_keepalive(keepalive_s)
    except BaseException:
        for client in reversed(clients):
            with contextlib.suppress(Exception):
                client.close()
        raise
    return clients


def _tcp_connect(hop: SSHTarget, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((hop.hostname, hop.port), timeout=timeout)
    except TimeoutError as exc:
        raise TransportError(
            f"{hop.display()}: connection timed out after {timeout:g}s",
            fix="check that the host is up and reachable from here (VPN, firewall)",
        ) from exc
    except ConnectionRefusedError as exc:
        raise TransportError(
            f"{hop.display()}: connection refused",
            fix=f"start sshd on {hop.hostname}:{hop.port}, or correct host/port in probe.toml",
        ) from exc
    except socket.gaierror as exc:
        raise TransportError(
            f"{hop.display()}: cannot resolve host name: {exc.strerror}",
            fix="correct `host` in probe.toml or the HostName of the alias in the ssh config",
        ) from exc
    except OSError as exc:
        raise TransportError(f"{hop.display()}: cannot connect: {exc.strerror or exc}") from exc
    set_nodelay(sock)
    return sock


class _ProxySocket(paramiko.ProxyCommand):
    """paramiko's ProxyCommand, with an end of output that reads as a closed link.

    paramiko's own recv() loops on an exited command until the timeout, and close() signals a
    process that may be gone and never reaps it.
    """

    def recv(self, size: int) -> bytes:
        buffer = b""
        start = time.monotonic()
        out = self.process.stdout
        assert out is not None
        while len(buffer) < size:
            wait = None
            if self.timeout is not None:
                wait = self.timeout - (time.monotonic() - start)
                if wait <= 0:
                    if buffer:
                        return buffer
                    raise TimeoutError()
            ready, _, _ = select.select([out], [], [], wait)
            if ready:
                data = os.read(out.fileno(), size - len(buffer))
                if not data:
                    return buffer  # b"" tells paramiko the link is closed
                buffer += data
        return buffer

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=2)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def stderr_tail(self) -> str:
        """The last line the command wrote to stderr (read without blocking)."""
        err = self.process.stderr
        if err is None:
            return ""
        try:
            os.set_blocking(err.fileno(), False)
            data = err.read(65536) or b""
        except (OSError, ValueError):
            return ""
        lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1] if lines else ""


def _proxy_failure(hop: SSHTarget, proxy: _ProxySocket, exc: TransportError) -> TransportError:
    """Name the ProxyCommand, its exit status and its last stderr line instead of a bare handshake error."""
    status = proxy.process.poll()
    said = proxy.stderr_tail()
    if status is not None and status > 0:
        what = f"ProxyCommand {hop.proxy_command!r} exited with status {status}"
    else:
        what = f"no SSH server answered through ProxyCommand {hop.proxy_command!r}"
    detail = f": {said}" if said else ""
    return TransportError(
        f"{hop.user}@{hop.hostname}:{hop.port}: {what}{detail}",
        retryable=exc.retryable,
        fix=f"run the ProxyCommand of {hop.alias!r} by hand (see `ssh -G {hop.alias}`) and correct it "
        f"in the ssh config",
    )


def _proxy_command(hop: SSHTarget, timeout: float) -> _ProxySocket:
    """The ProxyCommand's stdin/stdout as the link; run as OpenSSH runs it (`$SHELL -c "exec CMD"`)."""
    assert hop.proxy_command is not None
    shell = os.environ.get("SHELL") or "/bin/sh"
    # paramiko splits its argument with shlex; this hands the whole command to the shell.
    argv = shlex.join([shell, "-c", f"exec {hop.proxy_command}"])
    try:
        proxy = _ProxySocket(argv)
    except (OSError, paramiko.SSHException) as exc:
        raise TransportError(
            f"{hop.display()}: cannot start ProxyCommand {hop.proxy_command!r}: {exc}",
            retryable=False,
            fix="correct the ProxyCommand of the alias in the ssh config",
        ) from exc
    proxy.settimeout(timeout)
    return proxy


def _tunnel(via: paramiko.SSHClient, hop: SSHTarget, timeout: float) -> paramiko.Channel:
    t = via.get_transport()
    if t is None:
        raise TransportError(f"jump host closed before reaching {hop.display()}")
    try:
        return t.open_channel("direct-tcpip", (hop.hostname, hop.port), ("127.0.0.1", 0), timeout=timeout)
    except paramiko.ChannelException as exc:
        raise TransportError(f"{hop.display()}: jump host cannot reach it: {exc.text}") from exc
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise TransportError(f"{hop.display()}: tunnel through jump host failed: {exc}") from exc


def _connect_hop(
    hop: SSHTarget,
    sock: Any,
    *,
    known_hosts: Path,
    policy: str,
    password: str | None,
    timeout: float,
    allow_agent: bool,
) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    if known_hosts.is_file():
        try:
            client.load_host_keys(str(known_hosts))
        except (OSError, paramiko.SSHException) as exc:
            raise TransportError(f"cannot read known_hosts {known_hosts}: {exc}", retryable=False) from exc
    client.set_missing_host_key_policy(_Policy(policy, known_hosts))
    identities = [p for p in hop.identity_files if Path(p).is_file()]
    try:
        client.connect(
            hostname=hop.hostname,
            port=hop.port,
            username=hop.user,
            password=password,
            key_filename=identities or None,  # type: ignore[arg-type]  # a list is accepted
            allow_agent=allow_agent and not hop.identities_only,
            look_for_keys=not hop.identities_only,
            # paramiko's `timeout` bounds the whole key exchange and, when it runs out first,
            # ends it silently ("No existing session"); so it gets more room than the banner.
            timeout=2 * timeout + 1,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            sock=sock,
        )
    except HostKeyError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        name = hop.known_hosts_name
        raise HostKeyError(
            f"host key for {name} has CHANGED: the server offers {exc.key.get_name()} "
            f"{fingerprint(exc.key)}, {known_hosts} has {fingerprint(exc.expected_key)}; "
            f"the connection was refused (a reinstalled host, or a man-in-the-middle attack)",
            fix=f"confirm the new fingerprint with the host's administrator, then run "
            f"`ssh-keygen -R '{name}' -f {known_hosts}` and connect again",
        ) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        tried = ", ".join(identities) if identities else "agent and default keys"
        raise TransportError(
            f"{hop.display()}: authentication failed ({exc}); tried {tried}" + (" and a password" if password else ""),
            retryable=False,
            fix="set identity_file, load the key into ssh-agent, or set password_env; check the user name",
        ) from exc
    except TimeoutError as exc:
        client.close()
        raise TransportError(f"{hop.display()}: timed out during SSH handshake ({timeout:g}s)") from exc
    except paramiko.SSHException as exc:
        client.close()
        text = str(exc)
        if "No authentication methods available" in text:
            raise TransportError(
                f"{hop.display()}: authentication failed: no key, agent or password to try",
                retryable=False,
                fix="set identity_file, load a key into ssh-agent, or set password_env to the NAME of "
                "an environment variable that holds the password (and set that variable)",
            ) from exc
        if "banner" in text.lower():
            raise TransportError(
                f"{hop.display()}: no SSH banner within {timeout:g}s ({text})",
                fix="the server accepts connections but does not answer: check sshd on the host "
                "(overloaded, stopped), or raise connect_timeout",
            ) from exc
        raise TransportError(f"{hop.display()}: SSH handshake failed: {text}") from exc
    except (EOFError, OSError) as exc:
        client.close()
        raise TransportError(f"{hop.display()}: connection dropped during login: {exc or type(exc).__name__}") from exc
    return client


def set_nodelay(sock: socket.socket) -> None:
    """TCP_NODELAY and keepalive on a connected socket (no-op for non-TCP sockets).

    TCP keepalive with short timers makes the kernel drop a silently dead link within about
    30 s. A frozen peer whose kernel still answers is caught by the SSH keepalives instead
    (see _Heartbeat).
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 15), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
