"""The loopback testbed: real OpenSSH servers (and SLURM, when its module is present) for the tests.

What `up` starts, all as root, all recorded by PID in STATE_DIR/state.json:

- sshd "ssh"  on 127.0.0.1:PORT1, its own ed25519 host key;
- sshd "ssh2" on 127.0.0.2:PORT2, another host key (a second "host" for two-cluster tests and
  for ProxyJump).

Both accept the unprivileged user `tp-testbed` (created with useradd -m, password field `*` so the
account is not "locked") with a client key that only root can read. The far side's Python is a
venv built from /usr/bin/python3 with this interpreter's cloudpickle copied in (same version on
both sides, no network needed). The venv and authorized_keys live in a folder the test user can
reach: STATE_DIR itself when every parent folder is world-searchable, else a /tmp/tp-testbed-public-*
folder recorded in state.json and removed by `down`.

Files written:

- CONFIG_PATH (probe.toml): clusters `testbed-ssh` and `testbed-ssh2` (and `testbed-slurm`);
- STATE_DIR/ssh_config: aliases `testbed-alias` (HostName, Port, User, IdentityFile of "ssh") and
  `testbed-jump` (the same host, reached with ProxyJump through `testbed-host2`, the alias of "ssh2");
- STATE_DIR/known_hosts: both host keys, as `[127.0.0.x]:PORT`.

The probe.toml's second line records STATE_DIR (`# testbed state: ...`), so that the fixtures can
reuse a running testbed from TP_TESTBED_CONFIG alone. Faults for tests: SSHHost.kill() (listener
and per-connection sshds: links drop), .pause()/.resume() (SIGSTOP: banner timeout), .rekey().

STATE_DIR is $TP_TESTBED_DIR, or /tmp/threshold-probe-testbed. The pytest fixtures use a fresh
temporary STATE_DIR per session, so several test runs on one machine do not collide.

Extension hook (SLURM): when `tests/testbed/slurm.py` exists and `TP_TESTBED_SLURM` is not `0`,
`up` calls, after the sshds are ready::

    state = slurm.start(state_dir)                    # starts munged, slurmctld, slurmd
    table = slurm.cluster_config(state, host=..., port=..., user=..., identity_file=...,
                                 known_hosts=..., python=..., workdir=...)

and writes `table` as `[clusters.testbed-slurm]` (submission over SSH through sshd "ssh").
`down` calls `slurm.stop(state_dir)` first, before it stops the sshds. Both functions take the
STATE_DIR; slurm.py keeps its own files under STATE_DIR/slurm.

Command line: `python -m tests.testbed.testbed up CONFIG_PATH | down | status`
(wrapped by the `up` and `down` scripts beside this file).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEST_USER = "tp-testbed"
DEFAULT_STATE_DIR = Path("/tmp/threshold-probe-testbed")
STATE_FILE = "state.json"
#: The loopback addresses of the two hosts. Loopback only: never any other address.
HOSTS = {"ssh": "127.0.0.1", "ssh2": "127.0.0.2"}
CLUSTER_NAMES = {"ssh": "testbed-ssh", "ssh2": "testbed-ssh2"}
SLURM_CLUSTER = "testbed-slurm"


class TestbedError(RuntimeError):
    """The testbed could not be started or stopped."""

    __test__ = False


def state_dir_default() -> Path:
    """$TP_TESTBED_DIR or /tmp/threshold-probe-testbed."""
    return Path(os.environ.get("TP_TESTBED_DIR") or DEFAULT_STATE_DIR)


def _run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise TestbedError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def free_port(addr: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, on a loopback address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


def ensure_user(name: str = TEST_USER) -> pwd.struct_passwd:
    """Create the unprivileged test user once (home folder, bash, key auth only)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    proc = subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], capture_output=True, text=True)
    # 9: the user appeared meanwhile (another test run created it).
    if proc.returncode not in (0, 9):
        raise TestbedError(f"useradd {name} failed: {proc.stderr.strip()}")
    # Without a password field of '*' the account counts as locked and sshd refuses even keys.
    _run(["usermod", "-p", "*", name])
    return pwd.getpwnam(name)


def keygen(path: Path, comment: str) -> None:
    """An ed25519 key pair without passphrase at path / path.pub (replacing any old one)."""
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def wait_banner(addr: str, port: int, timeout: float = 10.0) -> None:
    """Wait until the port answers with an SSH banner."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((addr, port), timeout=1.0) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.01)
    raise TestbedError(f"sshd on {addr}:{port} gave no banner within {timeout}s ({last})")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    """Every descendant of pid (by walking /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out.extend(kids)
        todo.extend(kids)
    return out


def kill_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Send sig to pid and wait until it is gone; SIGKILL after timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.01)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


@dataclass
class SSHHost:
    """One sshd: its folder, address, port, host key and PID."""

    name: str
    dir: Path
    addr: str
    port: int
    authorized_keys: Path
    pid: int | None = None

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def config_path(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def log_path(self) -> Path:
        return self.dir / "sshd.log"

    def known_hosts_line(self) -> str:
        """`[addr]:port ssh-ed25519 AAAA...` for a client's known_hosts."""
        key_type, key_b64 = self.host_key.with_name(self.host_key.name + ".pub").read_text().split()[:2]
        return f"[{self.addr}]:{self.port} {key_type} {key_b64}\n"

    def prepare(self) -> None:
        """Folder (755: sshd reads it as the user), host key and sshd_config."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        if not self.host_key.exists():
            keygen(self.host_key, f"testbed-{self.name}")
        self.write_config()

    def write_config(self) -> None:
        """An sshd_config for loopback, key auth only, many sessions per connection."""
        self.config_path.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.addr}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile .ssh/authorized_keys {self.authorized_keys}",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin no",
                    f"AllowUsers {TEST_USER}",
                    "AllowTcpForwarding yes",
                    "Subsystem sftp internal-sftp",
                    "MaxSessions 100",
                    "MaxStartups 100:30:200",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start sshd in the foreground mode of a background process, and wait for its banner."""
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        os.chmod("/run/sshd", 0o755)
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not Path(sshd).exists():
            raise TestbedError("sshd not found: run .ci/install-system.sh (apt-get install openssh-server)")
        # Redirected stdio: without it a caller capturing our output would wait forever.
        with open(self.log_path, "ab") as log, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(self.config_path)],
                stdin=devnull,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.pid = proc.pid
        try:
            wait_banner(self.addr, self.port, timeout)
        except TestbedError:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            self.kill()
            raise TestbedError(f"sshd {self.name} did not start; log:\n{tail}") from None

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Stop sshd and every per-connection sshd it forked, as a crash of the host would."""
        if self.pid is None:
            return
        for child in _children(self.pid):
            # Only sshd processes: the users' own processes of a session are not ours to kill here.
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/comm").read_text().strip().startswith("sshd"):
                    os.kill(child, signal.SIGKILL)
        kill_pid(self.pid, sig)
        self.pid = None

    def pause(self) -> None:
        """SIGSTOP: connects still succeed (the kernel accepts), the banner never comes."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after pause()."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGCONT)

    def _sshd_processes(self) -> list[int]:
        """The listener and every per-connection sshd it forked (not the users' own processes)."""
        if self.pid is None:
            return []
        found = [self.pid]
        for child in _children(self.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/comm").read_text().strip().startswith("sshd"):
                    found.append(child)
        return found

    def freeze(self) -> None:
        """SIGSTOP every sshd of this host: open connections go silent, as on a frozen host."""
        for pid in self._sshd_processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT every sshd of this host after freeze()."""
        for pid in self._sshd_processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)

    def rekey(self) -> None:
        """A new host key, and sshd restarted with it (the 'reinstalled host' case)."""
        self.kill()
        keygen(self.host_key, f"testbed-{self.name}-new")
        self.start()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dir": str(self.dir),
            "addr": self.addr,
            "port": self.port,
            "authorized_keys": str(self.authorized_keys),
            "pid": self.pid,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SSHHost:
        return cls(
            name=data["name"],
            dir=Path(data["dir"]),
            addr=data["addr"],
            port=int(data["port"]),
            authorized_keys=Path(data["authorized_keys"]),
            pid=data.get("pid"),
        )


@dataclass
class Testbed:
    """A started testbed: where its files are, which clusters it wrote, how to fault it."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    state_dir: Path
    config_path: Path
    hosts: dict[str, SSHHost] = field(default_factory=dict)
    clusters: list[str] = field(default_factory=list)
    python: str = ""
    user: str = TEST_USER
    slurm: dict[str, Any] | None = None
    #: Folder the test user can reach (authorized_keys, the far side's venv): state_dir itself
    #: when every parent is world-searchable, else a separate folder in /tmp.
    public_dir: Path | None = None

    @property
    def client_key(self) -> Path:
        return self.state_dir / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    def home(self) -> Path:
        """The test user's home folder (the far side's `~`)."""
        return Path(pwd.getpwnam(self.user).pw_dir)

    def host(self, name: str = "ssh") -> SSHHost:
        """One of the sshds by its short name (`ssh`, `ssh2`)."""
        return self.hosts[name]

    def cluster_table(self, name: str = "ssh", **overrides: Any) -> dict[str, Any]:
        """The probe.toml table of an SSH cluster on host `name`, with overrides."""
        h = self.hosts[name]
        table: dict[str, Any] = {
            "type": "ssh",
            "host": h.addr,
            "port": h.port,
            "user": self.user,
            "identity_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "host_key_policy": "reject",
            "python": self.python,
            "workdir": "~/.threshold-probe",
            "connect_timeout": 5.0,
        }
        table.update(overrides)
        return {k: v for k, v in table.items() if v is not None}

    def save(self) -> None:
        data = {
            "state_dir": str(self.state_dir),
            "config_path": str(self.config_path),
            "hosts": {k: h.to_json() for k, h in self.hosts.items()},
            "clusters": self.clusters,
            "python": self.python,
            "user": self.user,
            "slurm": self.slurm,
            "public_dir": str(self.public_dir) if self.public_dir else None,
        }
        tmp = self.state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.state_dir / STATE_FILE)

    @classmethod
    def load(cls, state_dir: Path) -> Testbed:
        """The testbed recorded in state_dir/state.json."""
        path = state_dir / STATE_FILE
        if not path.is_file():
            raise TestbedError(f"no testbed state in {state_dir} (run tests/testbed/up first)")
        data = json.loads(path.read_text())
        return cls(
            state_dir=Path(data["state_dir"]),
            config_path=Path(data["config_path"]),
            hosts={k: SSHHost.from_json(v) for k, v in data["hosts"].items()},
            clusters=list(data["clusters"]),
            python=data["python"],
            user=data["user"],
            slurm=data.get("slurm"),
            public_dir=Path(data["public_dir"]) if data.get("public_dir") else None,
        )


def _reachable_by_others(path: Path) -> bool:
    """Every folder from / down to path is searchable by other users (sshd reads as the user)."""
    for folder in (path, *path.parents):
        try:
            if not os.stat(folder).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def build_remote_python(state_dir: Path) -> str:
    """A venv the test user can run, with the same cloudpickle as this interpreter."""
    venv = state_dir / "venv"
    base = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    if not (venv / "bin" / "python").exists():
        _run([base, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    try:
        import cloudpickle

        src = Path(cloudpickle.__file__).parent
        dest = site / "cloudpickle"
        if not dest.exists():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    except ImportError:
        # No cloudpickle here to copy: fetch it with pip, through the package registry.
        _run([str(venv / "bin" / "python"), "-m", "ensurepip"], timeout=300)
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "cloudpickle>=3,<4"], timeout=300)
    for root, dirs, files in os.walk(venv):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o444)
    return str(venv / "bin" / "python")


def write_ssh_config(tb: Testbed) -> None:
    """The aliases tests use: `testbed-alias` (HostName/Port/User/IdentityFile) and `testbed-jump`."""
    h1, h2 = tb.hosts["ssh"], tb.hosts["ssh2"]
    tb.ssh_config.write_text(
        f"""# Written by tests/testbed/testbed.py
Host testbed-alias
    HostName {h1.addr}
    Port {h1.port}
    User {tb.user}
    IdentityFile {tb.client_key}
    IdentitiesOnly yes

Host testbed-host2
    HostName {h2.addr}
    Port {h2.port}
    User {tb.user}
    IdentityFile {tb.client_key}
    IdentitiesOnly yes

Host testbed-jump
    HostName {h1.addr}
    Port {h1.port}
    User {tb.user}
    IdentityFile {tb.client_key}
    IdentitiesOnly yes
    ProxyJump testbed-host2
"""
    )


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


STATE_MARK = "# testbed state: "


def write_probe_toml(
    path: Path, clusters: dict[str, dict[str, Any]], *, extra: str = "", state_dir: Path | None = None
) -> None:
    """A probe.toml naming the given clusters (and, for `up`, where the testbed's state is)."""
    lines = ["# Written by tests/testbed: the clusters of the loopback testbed."]
    if state_dir is not None:
        lines.append(f"{STATE_MARK}{state_dir}")
    lines.append("")
    for name, table in clusters.items():
        lines.append(f"[clusters.{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + extra)
    os.replace(tmp, path)


def _slurm_module() -> Any | None:
    if os.environ.get("TP_TESTBED_SLURM", "1") == "0":
        return None
    if not (Path(__file__).with_name("slurm.py")).is_file():
        return None
    try:
        return importlib.import_module("tests.testbed.slurm")
    except ImportError:
        sys.path.insert(0, str(Path(__file__).parent))
        return importlib.import_module("slurm")


def start(config_path: Path, state_dir: Path | None = None, *, slurm: bool = True) -> Testbed:
    """Start both sshds (and SLURM when available), write the config files; returns the testbed."""
    state_dir = (state_dir or state_dir_default()).resolve()
    if (state_dir / STATE_FILE).exists():
        stop(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o755)
    ensure_user()
    tb = Testbed(state_dir=state_dir, config_path=config_path.resolve())
    if _reachable_by_others(state_dir):
        tb.public_dir = state_dir
    else:
        tb.public_dir = Path(tempfile.mkdtemp(prefix="tp-testbed-public-", dir="/tmp"))
        tb.public_dir.chmod(0o755)
    tb.save()
    try:
        if not tb.client_key.exists():
            keygen(tb.client_key, "threshold-probe-testbed-client")
        tb.client_key.chmod(0o600)
        authorized = tb.public_dir / "authorized_keys"
        shutil.copyfile(tb.client_key.with_name("client_key.pub"), authorized)
        authorized.chmod(0o644)
        tb.python = build_remote_python(tb.public_dir)
        for name, addr in HOSTS.items():
            host = SSHHost(name, state_dir / f"sshd-{name}", addr, free_port(addr), authorized)
            host.prepare()
            tb.hosts[name] = host
            host.start()
            tb.save()
        tb.known_hosts.write_text("".join(h.known_hosts_line() for h in tb.hosts.values()))
        write_ssh_config(tb)
        clusters = {CLUSTER_NAMES[n]: tb.cluster_table(n) for n in tb.hosts}
        module = _slurm_module() if slurm else None
        if module is not None:
            tb.slurm = {"started": True}
            tb.save()
            tb.slurm = module.start(state_dir)
            tb.save()
            h = tb.hosts["ssh"]
            clusters[SLURM_CLUSTER] = module.cluster_config(
                tb.slurm,
                host=h.addr,
                port=h.port,
                user=tb.user,
                identity_file=str(tb.client_key),
                known_hosts=str(tb.known_hosts),
                python=tb.python,
                workdir="~/.threshold-probe",
            )
        tb.clusters = list(clusters)
        write_probe_toml(tb.config_path, clusters, state_dir=state_dir)
        tb.save()
    except BaseException:
        stop(state_dir)
        raise
    return tb


def stop(state_dir: Path | None = None) -> None:
    """Stop what start() recorded in state_dir: SLURM first, then the sshds, by PID."""
    state_dir = (state_dir or state_dir_default()).resolve()
    try:
        tb = Testbed.load(state_dir)
    except TestbedError:
        return
    if tb.slurm is not None:
        module = _slurm_module()
        if module is not None:
            module.stop(state_dir)
    for host in tb.hosts.values():
        with contextlib.suppress(ProcessLookupError):
            host.resume()  # a paused sshd ignores SIGTERM until continued
        host.kill()
    if tb.public_dir is not None and tb.public_dir != state_dir:
        shutil.rmtree(tb.public_dir, ignore_errors=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)


def state_dir_of(config_path: Path) -> Path:
    """The state folder recorded in a probe.toml written by `up` (else the default one)."""
    try:
        for line in config_path.read_text().splitlines()[:5]:
            if line.startswith(STATE_MARK):
                return Path(line[len(STATE_MARK) :].strip())
    except OSError:
        pass
    return state_dir_default()


def status(state_dir: Path | None = None) -> dict[str, Any]:
    """Which daemons of the recorded testbed are alive."""
    tb = Testbed.load((state_dir or state_dir_default()).resolve())
    return {
        "config": str(tb.config_path),
        "clusters": tb.clusters,
        "sshd": {
            n: {"pid": h.pid, "alive": bool(h.pid and _alive(h.pid)), "port": h.port} for n, h in tb.hosts.items()
        },
    }


def main(argv: list[str]) -> int:
    """`up CONFIG_PATH`, `down`, `status`."""
    if not argv or argv[0] not in ("up", "down", "status") or (argv[0] == "up" and len(argv) != 2):
        sys.stderr.write("usage: testbed.py up CONFIG_PATH | down | status   (state in $TP_TESTBED_DIR)\n")
        return 2
    try:
        if argv[0] == "up":
            tb = start(Path(argv[1]))
            names = ", ".join(tb.clusters)
            sys.stdout.write(f"testbed up: {tb.config_path} (clusters: {names}); state in {tb.state_dir}\n")
        elif argv[0] == "down":
            stop()
            sys.stdout.write("testbed down\n")
        else:
            sys.stdout.write(json.dumps(status(), indent=2) + "\n")
    except TestbedError as exc:
        sys.stderr.write(f"testbed: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
