"""Resolve a cluster's `host` the way OpenSSH does: aliases, Include, Match, tokens, ProxyJump, ProxyCommand.

How a host is resolved:

- When an OpenSSH client (`ssh`) is on PATH, `ssh -G [-F ssh_config] [-l user] [-p port] HOST`
  prints the configuration OpenSSH itself would use: Include, Match, Host patterns, HostName
  tokens, CanonicalizeHostname and the system-wide /etc/ssh/ssh_config are all applied by OpenSSH.
  `ssh -G` leaves the `%` tokens of IdentityFile and ProxyCommand as written (OpenSSH expands
  them at connect time); they are expanded here the same way.
- Otherwise paramiko's SSHConfig parser reads `ssh_config` (or ~/.ssh/config). It knows Host,
  Match, HostName, User, Port, IdentityFile, ProxyJump and ProxyCommand, but not Include: a file
  that uses Include is refused with a message rather than read wrongly.

Values given in probe.toml win over the ssh config (as `-l` and `-p` do for ssh); the file wins over
the defaults (port 22, the current user). The ssh config is `ssh_config` from probe.toml when set
(like `ssh -F`), else the user's and the system's, as OpenSSH reads them.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from threshold_probe.errors import UserError

#: OpenSSH allows long ProxyJump chains; a loop in a config file must not recurse forever.
MAX_JUMPS = 8
#: `ssh -G` only reads files (and runs `Match exec` commands, as ssh would): a few seconds at most.
SSH_G_TIMEOUT_S = 15.0

#: One host's settings: lower-case keyword to its values, in the order OpenSSH gives them.
Settings = dict[str, list[str]]
Lookup = Callable[[str, "str | None", "int | None"], Settings]


@dataclass(frozen=True)
class SSHTarget:
    """One host to connect to, fully resolved, with the jump hosts to go through first."""

    alias: str
    hostname: str
    port: int = 22
    user: str = field(default_factory=getpass.getuser)
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    #: Jump hosts, outermost first (the order of ProxyJump).
    jumps: tuple[SSHTarget, ...] = ()
    #: UserKnownHostsFile from the ssh config, if any.
    known_hosts: str | None = None
    #: ProxyCommand with its tokens expanded: run through the shell, its stdin/stdout is the link.
    proxy_command: str | None = None

    def display(self) -> str:
        """`user@hostname:port`, with the jump chain or proxy command, for messages and reports."""
        via = "".join(f" via {j.user}@{j.hostname}:{j.port}" for j in self.jumps)
        if self.proxy_command:
            via += " via ProxyCommand"
        return f"{self.user}@{self.hostname}:{self.port}{via}"

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH and paramiko use for this host in known_hosts."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def _expand(path: str, base_dir: Path | None) -> Path:
    p = Path(os.path.expandvars(os.path.expanduser(path)))
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return p


def _config_path(ssh_config: str | None, base_dir: Path | None) -> Path | None:
    """The file named by `ssh_config`, checked; None when probe.toml names none."""
    if ssh_config is None:
        return None
    path = _expand(ssh_config, base_dir)
    if not path.is_file():
        raise UserError(f"ssh config file not found: {path}")
    return path


def load_ssh_config(ssh_config: str | None, base_dir: Path | None = None) -> object | None:
    """The config parsed by paramiko (the fallback without `ssh`), or None when there is none."""
    import paramiko

    path = _config_path(ssh_config, base_dir)
    if path is None:
        path = Path.home() / ".ssh" / "config"
        if not path.is_file():
            return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read ssh config {path}: {exc.strerror}") from None
    if re.search(r"^\s*include\b", text, re.IGNORECASE | re.MULTILINE):
        raise UserError(
            f"ssh config {path} uses Include, which only OpenSSH reads: install an OpenSSH client "
            f"(`ssh`, e.g. the openssh-client package) so that `ssh -G` resolves hosts"
        )
    try:
        return paramiko.SSHConfig.from_text(text)
    except Exception as exc:  # paramiko raises several types for a malformed file
        raise UserError(f"cannot parse ssh config {path}: {exc}") from None


def _paramiko_lookup(cfg: object | None) -> Lookup:
    def lookup(host: str, user: str | None, port: int | None) -> Settings:
        found: dict[str, object] = dict(cfg.lookup(host)) if cfg is not None else {}  # type: ignore[attr-defined]
        out: Settings = {}
        for key, value in found.items():
            out[key] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        # paramiko has already expanded the tokens it knows (with the file's user and port).
        out.setdefault("_expanded", ["yes"])
        return out

    return lookup


def _ssh_g_lookup(ssh: str, path: Path | None) -> Lookup:
    def lookup(host: str, user: str | None, port: int | None) -> Settings:
        argv = [ssh, "-G"]
        if path is not None:
            argv += ["-F", str(path)]
        if user:
            argv += ["-l", user]
        if port is not None:
            argv += ["-p", str(port)]
        argv += ["--", host]
        try:
            res = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=SSH_G_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise UserError(
                f"`ssh -G {host}` did not finish in {SSH_G_TIMEOUT_S:g}s (a Match exec that hangs?)"
            ) from None
        except OSError as exc:
            raise UserError(f"cannot run {ssh} -G: {exc.strerror or exc}") from None
        if res.returncode != 0:
            lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "Pseudo-terminal" not in ln]
            why = lines[-1] if lines else f"exit status {res.returncode}"
            where = f"ssh config {path}" if path is not None else "ssh config"
            raise UserError(f"{where}: `ssh -G {host}` fails: {why}")
        out: Settings = {}
        for line in res.stdout.splitlines():
            key, _, value = line.partition(" ")
            if key:
                out.setdefault(key.lower(), []).append(value)
        return out

    return lookup


def make_lookup(ssh_config: str | None, base_dir: Path | None = None) -> Lookup:
    """How hosts are looked up: `ssh -G` when an OpenSSH client is on PATH, else paramiko's parser."""
    ssh = shutil.which("ssh")
    if ssh is not None:
        return _ssh_g_lookup(ssh, _config_path(ssh_config, base_dir))
    return _paramiko_lookup(load_ssh_config(ssh_config, base_dir))


def expand_tokens(text: str, *, hostname: str, port: int, user: str, original: str, what: str) -> str:
    """OpenSSH's `%` tokens of IdentityFile and ProxyCommand (%h %p %r %n %u %l %L %d %i %k %%)."""
    local = socket.gethostname()
    values = {
        "%": "%",
        "h": hostname,
        "p": str(port),
        "r": user,
        "n": original,
        "k": original,
        "u": getpass.getuser(),
        "l": local,
        "L": local.split(".")[0],
        "d": str(Path.home()),
        "i": str(os.getuid()),
    }

    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise UserError(f"ssh config: {what} {text!r}: unknown token %{key}")
        return values[key]

    return re.sub(r"%(.)", one, text)


def resolve_target(
    host: str,
    *,
    user: str | None = None,
    port: int | None = None,
    identity_file: str | None = None,
    ssh_config: str | None = None,
    base_dir: Path | None = None,
) -> SSHTarget:
    """Resolve `host` (a name or an ssh config alias) into a target with its jump hosts."""
    lookup = make_lookup(ssh_config, base_dir)
    return _resolve(host, user, port, identity_file, lookup, base_dir, depth=0)


def _first(found: Settings, key: str) -> str | None:
    values = found.get(key)
    return values[0] if values else None


def _resolve(
    host: str,
    user: str | None,
    port: int | None,
    identity_file: str | None,
    lookup: Lookup,
    base_dir: Path | None,
    depth: int,
) -> SSHTarget:
    if depth > MAX_JUMPS:
        raise UserError(f"ProxyJump chain for {host!r} is longer than {MAX_JUMPS} hosts (a loop?)")
    found = lookup(host, user, port)
    hostname = _first(found, "hostname") or host
    try:
        resolved_port = port if port is not None else int(_first(found, "port") or 22)
    except ValueError:
        raise UserError(f"ssh config: Port for {host!r} is not a number: {_first(found, 'port')}") from None
    resolved_user = user or _first(found, "user") or getpass.getuser()
    # paramiko has already expanded its tokens; `ssh -G` leaves them to connect time.
    raw = "_expanded" not in found

    def tokens(text: str, what: str) -> str:
        if not raw:
            return text
        return expand_tokens(text, hostname=hostname, port=resolved_port, user=resolved_user, original=host, what=what)

    identities: list[str] = []
    if identity_file:
        identities.append(str(_expand(identity_file, base_dir)))
    for item in found.get("identityfile", []):
        p = str(_expand(tokens(item, "IdentityFile"), None))
        if p not in identities:
            identities.append(p)
    jumps: list[SSHTarget] = []
    proxy_jump = _first(found, "proxyjump")
    if proxy_jump and proxy_jump.lower() != "none":
        for hop in proxy_jump.split(","):
            hop_user, hop_host, hop_port = parse_jump(hop.strip())
            jump = _resolve(hop_host, hop_user, hop_port, None, lookup, base_dir, depth + 1)
            # A jump host's own jumps come before it, as with OpenSSH.
            jumps.extend(jump.jumps)
            jumps.append(SSHTarget(**{**jump.__dict__, "jumps": ()}))
    proxy_command = _first(found, "proxycommand")
    # OpenSSH uses the first of ProxyJump and ProxyCommand it reads; `ssh -G` prints only that one.
    if jumps or not proxy_command or proxy_command.strip().lower() == "none":
        proxy_command = None
    else:
        proxy_command = tokens(proxy_command, "ProxyCommand")
    known = _first(found, "userknownhostsfile")
    return SSHTarget(
        alias=host,
        hostname=hostname,
        port=resolved_port,
        user=resolved_user,
        identity_files=tuple(identities),
        identities_only=(_first(found, "identitiesonly") or "no").lower() == "yes",
        jumps=tuple(jumps),
        known_hosts=known.split()[0] if known else None,
        proxy_command=proxy_command,
    )


def parse_jump(hop: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` (or an `ssh://` URL) from a ProxyJump list into its parts."""
    if hop.startswith("ssh://"):
        hop = hop[len("ssh://") :]
    user = None
    if "@" in hop:
        user, hop = hop.rsplit("@", 1)
    port: int | None = None
    if hop.startswith("["):  # [ipv6]:port
        host, _, rest = hop[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif hop.count(":") == 1:
        host, _, p = hop.partition(":")
        try:
            port = int(p)
        except ValueError:
            raise UserError(f"ProxyJump entry {hop!r}: port is not a number") from None
    else:
        host = hop
    if not host:
        raise UserError(f"ProxyJump entry {hop!r} names no host")
    return user, host, port


def resolve_known_hosts(known_hosts: str | None, target: SSHTarget, base_dir: Path | None = None) -> Path:
    """The known_hosts file to check host keys against (and to add to under `accept-new`)."""
    if known_hosts:
        return _expand(known_hosts, base_dir)
    if target.known_hosts:
        return _expand(target.known_hosts, None)
    return Path.home() / ".ssh" / "known_hosts"


def password_from_env(password_env: str | None) -> str | None:
    """The password held by the environment variable NAMED in the config, if it is set."""
    if not password_env:
        return None
    return os.environ.get(password_env) or None
