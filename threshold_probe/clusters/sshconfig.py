"""Resolve a cluster's `host` the way OpenSSH would: aliases, HostName, User, Port, IdentityFile, ProxyJump.

Values given in probe.toml win over the ssh config file; the file wins over the defaults (port 22,
the current user). The ssh config is `ssh_config` from probe.toml when set, else ~/.ssh/config.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

from threshold_probe.errors import UserError

#: OpenSSH allows long ProxyJump chains; a loop in a config file must not recurse forever.
MAX_JUMPS = 8


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

    def display(self) -> str:
        """`user@hostname:port`, with the jump chain, for messages and reports."""
        via = "".join(f" via {j.user}@{j.hostname}:{j.port}" for j in self.jumps)
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


def load_ssh_config(ssh_config: str | None, base_dir: Path | None = None) -> object | None:
    """The parsed ssh config (paramiko.SSHConfig), or None when there is none to read."""
    import paramiko

    if ssh_config is not None:
        path = _expand(ssh_config, base_dir)
        if not path.is_file():
            raise UserError(f"ssh config file not found: {path}")
    else:
        path = Path.home() / ".ssh" / "config"
        if not path.is_file():
            return None
    try:
        return paramiko.SSHConfig.from_path(str(path))
    except Exception as exc:  # paramiko raises several types for a malformed file
        raise UserError(f"cannot parse ssh config {path}: {exc}") from None


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
    cfg = load_ssh_config(ssh_config, base_dir)
    return _resolve(host, user, port, identity_file, cfg, base_dir, depth=0)


def _resolve(
    host: str,
    user: str | None,
    port: int | None,
    identity_file: str | None,
    cfg: object | None,
    base_dir: Path | None,
    depth: int,
) -> SSHTarget:
    if depth > MAX_JUMPS:
        raise UserError(f"ProxyJump chain for {host!r} is longer than {MAX_JUMPS} hosts (a loop?)")
    found: dict[str, object] = dict(cfg.lookup(host)) if cfg is not None else {}  # type: ignore[attr-defined]
    hostname = str(found.get("hostname", host))
    try:
        resolved_port = port if port is not None else int(str(found.get("port", 22)))
    except ValueError:
        raise UserError(f"ssh config: Port for {host!r} is not a number: {found.get('port')}") from None
    resolved_user = user or (str(found["user"]) if "user" in found else getpass.getuser())
    identities: list[str] = []
    if identity_file:
        identities.append(str(_expand(identity_file, base_dir)))
    for item in found.get("identityfile", []) or []:  # type: ignore[attr-defined]
        p = str(_expand(str(item), None))
        if p not in identities:
            identities.append(p)
    jumps: list[SSHTarget] = []
    proxy_jump = found.get("proxyjump")
    if proxy_jump and str(proxy_jump).lower() != "none":
        for hop in str(proxy_jump).split(","):
            hop_user, hop_host, hop_port = parse_jump(hop.strip())
            jump = _resolve(hop_host, hop_user, hop_port, None, cfg, base_dir, depth + 1)
            # A jump host's own jumps come before it, as with OpenSSH.
            jumps.extend(jump.jumps)
            jumps.append(SSHTarget(**{**jump.__dict__, "jumps": ()}))
    known = found.get("userknownhostsfile")
    return SSHTarget(
        alias=host,
        hostname=hostname,
        port=resolved_port,
        user=resolved_user,
        identity_files=tuple(identities),
        identities_only=str(found.get("identitiesonly", "no")).lower() == "yes",
        jumps=tuple(jumps),
        known_hosts=str(known).split()[0] if known else None,
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
