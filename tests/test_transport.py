"""Transports: shell commands and files on this machine and over a real SSH connection."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.testbed import Testbed, free_port
from threshold_probe.clusters.local_transport import LocalTransport
from threshold_probe.clusters.ssh_transport import SSHTransport
from threshold_probe.clusters.sshconfig import parse_jump, resolve_target
from threshold_probe.clusters.transport import Transport, TransportError
from threshold_probe.config import SSHClusterConfig
from threshold_probe.errors import InfraError


def ssh_transport(tb: Testbed, **overrides: object) -> SSHTransport:
    table = {**tb.cluster_table("ssh"), **overrides}
    return SSHTransport.from_settings(SSHClusterConfig.model_validate(table))


@pytest.fixture(params=["local", "ssh"])
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    if request.param == "local":
        t: Transport = LocalTransport()
    else:
        t = ssh_transport(request.getfixturevalue("testbed"))
    try:
        yield t
    finally:
        t.close()


def test_exit_code_and_both_streams(transport: Transport) -> None:
    res = transport.run("echo out; echo err >&2; exit 3")
    assert (res.exit_code, res.stdout, res.stderr, res.timed_out) == (3, b"out\n", b"err\n", False)


def test_stdin_larger_than_any_window(transport: Transport) -> None:
    data = bytes(range(256)) * (5 * 4096)  # 5 MiB
    res = transport.run("cat | sha256sum | cut -c1-64", stdin=data)
    import hashlib

    assert res.text().strip() == hashlib.sha256(data).hexdigest()


def test_32_mib_on_both_streams_into_files_does_not_hang(transport: Transport, tmp_path: Path) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    res = transport.run(
        "head -c 33554432 /dev/zero; head -c 33554432 /dev/zero >&2; echo done >&2",
        stdout_path=out,
        stderr_path=err,
        timeout=60,
    )
    assert res.ok and not res.timed_out
    assert out.stat().st_size == 32 * 1024**2 and err.stat().st_size == 32 * 1024**2 + 5


def test_timeout_stops_waiting(transport: Transport) -> None:
    started = time.monotonic()
    res = transport.run("sleep 30", timeout=0.5)
    assert res.timed_out and res.exit_code is None
    assert time.monotonic() - started < 5


def test_put_and_get_with_a_shell_hostile_path(transport: Transport, tmp_path: Path) -> None:
    base = f"/tmp/tp transport 'q' $x; `id` {time.time_ns()}"
    remote = f"{base}/sub dir/file name.bin"
    data = b"\x00payload\xff" * 1000
    try:
        transport.put(data, remote, mode=0o600)
        assert transport.get(remote, tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == data
        assert not transport.get(f"{base}/missing", tmp_path / "missing.bin")
        assert not (tmp_path / "missing.bin").exists()
    finally:
        subprocess.run(["rm", "-rf", base], check=False)


def test_local_timeout_kills_the_whole_process_group() -> None:
    marker = f"tp-transport-orphan-{time.time_ns()}"
    LocalTransport().run(f"bash -c 'exec -a {marker} sleep 60' & sleep 60", timeout=0.5)
    time.sleep(0.2)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1


# -- SSH specifics ----------------------------------------------------------------------------


@pytest.mark.ssh
def test_ssh_socket_has_tcp_nodelay_and_the_connection_is_reused(testbed: Testbed) -> None:
    t = ssh_transport(testbed)
    try:
        assert t.connect() > 0
        sock = t._clients[-1].get_transport().sock  # type: ignore[union-attr]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 15
        assert t.connect() == 0.0, "an open connection is reused"
        times = [t.run("true").duration_s for _ in range(10)]
        # Nagle plus delayed ACKs cost ~40 ms a command; with TCP_NODELAY it is a few ms.
        assert sorted(times)[5] < 0.035, times
    finally:
        t.close()


@pytest.mark.ssh
def test_refused_connection_is_a_retryable_infra_error(testbed: Testbed) -> None:
    t = ssh_transport(testbed, port=free_port())
    with pytest.raises(TransportError) as info:
        t.run("true")
    assert isinstance(info.value, InfraError) and info.value.retryable
    assert "connection refused" in str(info.value) and info.value.fix


@pytest.mark.ssh
def test_wrong_key_is_an_auth_failure_that_is_not_retried(testbed: Testbed, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    t = SSHTransport(
        resolve_target(
            testbed.host("ssh").addr,
            user=testbed.user,
            port=testbed.host("ssh").port,
            identity_file=str(other),
            ssh_config=str(testbed.ssh_config),
        ),
        known_hosts=testbed.known_hosts,
        allow_agent=False,
        connect_timeout=5,
    )
    with pytest.raises(TransportError) as info:
        t.connect()
    assert "authentication failed" in str(info.value) and not info.value.retryable


@pytest.mark.ssh
def test_reconnects_after_the_server_drops_the_connection(testbed: Testbed) -> None:
    t = ssh_transport(testbed)
    try:
        assert t.run("true").ok
        # Kill this connection's own sshd process on the far side: the link drops.
        with pytest.raises(TransportError, match="connection lost"):
            t.run("kill -9 $PPID")
        assert not t.connected
        assert t.run("echo again").text() == "again\n"
    finally:
        t.close()


def test_proxyjump_parsing_and_alias_resolution(tmp_path: Path) -> None:
    assert parse_jump("alice@gate:2200") == ("alice", "gate", 2200)
    assert parse_jump("gate") == (None, "gate", None)
    assert parse_jump("ssh://bob@[::1]:22") == ("bob", "::1", 22)
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        "Host inner\n  HostName 10.0.0.5\n  User carol\n  Port 2022\n  IdentityFile ~/k1\n  ProxyJump outer,middle\n"
        "Host outer\n  HostName 127.0.0.9\n  User dave\n"
        "Host middle\n  HostName 127.0.0.10\n  Port 2222\n"
    )
    target = resolve_target("inner", ssh_config=str(cfg))
    assert (target.hostname, target.port, target.user) == ("10.0.0.5", 2022, "carol")
    assert target.identity_files == (str(Path("~/k1").expanduser()),)
    assert [(j.hostname, j.port) for j in target.jumps] == [("127.0.0.9", 22), ("127.0.0.10", 2222)]
    assert target.jumps[0].user == "dave"
    # probe.toml wins over the ssh config.
    assert resolve_target("inner", user="erin", port=23, ssh_config=str(cfg)).user == "erin"
