"""SSH aliases resolve as OpenSSH resolves them: Include, Match, tokens, ProxyCommand, ProxyJump.

The integration tests write their own ssh config next to the testbed's and run `probe clusters
check` (and one probe) on a cluster that names only the alias.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.testbed.fixtures import write_config
from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app
from threshold_probe.clusters.sshconfig import resolve_target
from threshold_probe.errors import UserError

RELAY = """\
import os, socket, sys, threading
# A ProxyCommand like `nc %h %p`: stdin to the socket, the socket to stdout.
with open(sys.argv[3], "a") as log:
    log.write(f"{sys.argv[1]}:{sys.argv[2]}\\n")
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while True:
    data = s.recv(65536)
    if not data:
        break
    os.write(1, data)
"""


def invoke(config: Path, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--config", str(config), "--reports-dir", str(tmp_path / "reports"), *args])
    return result.exit_code, result.stdout, result.stderr


def alias_cluster(tb: Testbed, tmp_path: Path, host: str, ssh_config: Path) -> Path:
    """A probe.toml with one cluster `c` that names only an alias and the ssh config."""
    table = {
        "type": "ssh",
        "host": host,
        "ssh_config": str(ssh_config),
        "known_hosts": str(tb.known_hosts),
        "python": tb.python,
        "connect_timeout": 10.0,
    }
    return write_config(tmp_path / "probe.toml", {"c": table})


def check_ok(config: Path, tmp_path: Path) -> dict[str, object]:
    code, out, err = invoke(config, tmp_path, "clusters", "check", "c", "--json")
    assert code == 0, err + out
    report = json.loads(out)
    assert report["usable"] is True, report
    return report  # type: ignore[no-any-return]


def accepted_logins(tb: Testbed, host: str) -> int:
    return tb.host(host).log_path.read_text(errors="replace").count("Accepted publickey for")


@pytest.mark.ssh
def test_an_alias_from_an_included_config_d_folder_is_used(testbed: Testbed, tmp_path: Path) -> None:
    h = testbed.host("ssh")
    (tmp_path / "config.d").mkdir()
    (tmp_path / "config.d" / "cluster.conf").write_text(
        f"Host gpu-node\n    HostName {h.addr}\n    Port {h.port}\n    User {testbed.user}\n"
        f"    IdentityFile {testbed.client_key}\n    IdentitiesOnly yes\n"
    )
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"Include {tmp_path}/config.d/*.conf\n\nHost other\n    User nobody\n")
    report = check_ok(alias_cluster(testbed, tmp_path, "gpu-node", ssh_config), tmp_path)
    # Not root@gpu-node:22: the address, port and user the included file gives.
    assert report["describe"]["host"] == f"{testbed.user}@{h.addr}:{h.port}"  # type: ignore[index]


@pytest.mark.ssh
def test_match_host_and_tokens_are_applied(testbed: Testbed, tmp_path: Path) -> None:
    h = testbed.host("ssh")
    keys = tmp_path / "keys"
    keys.mkdir()
    # %n is the name as given on the command line: the key file is found through the token.
    shutil.copyfile(testbed.client_key, keys / "matched.key")
    (keys / "matched.key").chmod(0o600)
    # IdentityFile is a list: a key the host does not accept comes first, and is passed over.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "other.key")], check=True)
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host matched\n    HostName {h.addr}\n    IdentityFile {keys}/other.key\n\n"
        f"Match host {h.addr} originalhost matched\n    Port {h.port}\n    User {testbed.user}\n"
        f"    IdentityFile {keys}/%n.key\n    IdentitiesOnly yes\n"
    )
    report = check_ok(alias_cluster(testbed, tmp_path, "matched", ssh_config), tmp_path)
    assert report["describe"]["host"] == f"{testbed.user}@{h.addr}:{h.port}"  # type: ignore[index]


@pytest.mark.ssh
def test_proxycommand_ssh_w_through_a_bastion(testbed: Testbed, tmp_path: Path) -> None:
    h = testbed.host("ssh")
    ssh_config = tmp_path / "ssh_config"
    # The bastion is the testbed's second host, by its alias from the testbed's own config.
    ssh_config.write_text(
        f"Include {testbed.ssh_config}\n\n"
        f"Host behind-bastion\n    HostName {h.addr}\n    Port {h.port}\n    User {testbed.user}\n"
        f"    IdentityFile {testbed.client_key}\n    IdentitiesOnly yes\n"
        f"    ProxyCommand ssh -F {ssh_config} -W %h:%p testbed-host2\n\n"
        f"Host *\n    BatchMode yes\n    StrictHostKeyChecking yes\n"
        f"    UserKnownHostsFile {testbed.known_hosts}\n"
    )
    before = accepted_logins(testbed, "ssh2")
    report = check_ok(alias_cluster(testbed, tmp_path, "behind-bastion", ssh_config), tmp_path)
    assert report["describe"]["host"].startswith(f"{testbed.user}@{h.addr}:{h.port}")  # type: ignore[index]
    # The bastion saw the ProxyCommand's login.
    assert accepted_logins(testbed, "ssh2") == before + 1


@pytest.mark.ssh
def test_proxycommand_relay_runs_a_probe(testbed: Testbed, tmp_path: Path) -> None:
    h = testbed.host("ssh")
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    log = tmp_path / "relay.log"
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host relayed\n    HostName {h.addr}\n    Port {h.port}\n    User {testbed.user}\n"
        f"    IdentityFile {testbed.client_key}\n    IdentitiesOnly yes\n"
        f"    ProxyCommand {sys.executable} {relay} %h %p {log}\n"
    )
    config = alias_cluster(testbed, tmp_path, "relayed", ssh_config)
    check_ok(config, tmp_path)
    code, out, err = invoke(
        config, tmp_path, "sweep", "--cluster", "c", "--from", "1", "--to", "2", "--quiet", "--json"
    )
    assert code == 0, err + out
    assert log.read_text().splitlines()[0] == f"{h.addr}:{h.port}"


def test_fallback_parser_without_an_openssh_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host inner\n  HostName 10.0.0.5\n  User carol\n  Port 2022\n  ProxyCommand nc %h %p\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no `ssh` to run: paramiko's parser reads the file
    target = resolve_target("inner", ssh_config=str(cfg))
    assert (target.hostname, target.port, target.user) == ("10.0.0.5", 2022, "carol")
    assert target.proxy_command == "nc 10.0.0.5 2022"
    # An Include it cannot read is said, not ignored.
    cfg.write_text(f"Include {tmp_path}/config.d/*\n")
    with pytest.raises(UserError, match="Include"):
        resolve_target("inner", ssh_config=str(cfg))


def test_ssh_g_expands_tokens_in_proxycommand_and_identityfile(tmp_path: Path) -> None:
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        "Host tok-*\n  HostName %h.example\n  User bob\n  Port 2200\n"
        "  IdentityFile /keys/%n-%r-%p\n  ProxyCommand ssh -W %h:%p -l %r bastion %%\n"
    )
    target = resolve_target("tok-1", ssh_config=str(cfg))
    assert (target.hostname, target.port, target.user) == ("tok-1.example", 2200, "bob")
    assert target.identity_files[0] == "/keys/tok-1-bob-2200"
    assert target.proxy_command == "ssh -W tok-1.example:2200 -l bob bastion %"
    # probe.toml still wins over the file, as -l and -p do for ssh.
    t2 = resolve_target("tok-1", user="erin", port=23, ssh_config=str(cfg))
    assert (t2.user, t2.port, t2.identity_files[0]) == ("erin", 23, "/keys/tok-1-erin-23")


def test_a_failing_proxycommand_is_one_line_naming_it(tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh_config"
    # What `ssh -W` through a bastion that refuses says, and its exit status.
    ssh_config.write_text(
        "Host behind-bastion\n    HostName 127.0.0.1\n"
        "    ProxyCommand sh -c 'echo \"bastion: Connection refused\" >&2; exit 255'\n"
    )
    table = {"type": "ssh", "host": "behind-bastion", "ssh_config": str(ssh_config), "connect_timeout": 5.0}
    config = write_config(tmp_path / "probe.toml", {"c": table})
    code, out, err = invoke(config, tmp_path, "clusters", "check", "c")
    assert code == 3
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert "exited with status 255: bastion: Connection refused" in lines[0] and "fix:" in lines[0]
    assert "Traceback" not in err + out
