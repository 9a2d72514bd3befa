"""A ClustriX config file (what `clustrix.save_config` writes) as a probe.toml cluster table.

ClustriX 0.1.1 reads the first of these that exists and loads (its `_load_default_config`):
~/.clustrix/config.yml, ~/.clustrix/config.yaml, ~/.clustrix/config.json, then clustrix.yml,
clustrix.yaml and clustrix.json in the working folder. A `.yml`/`.yaml` file is YAML, any other
is JSON. Its keys are the fields of ClustriX's `ClusterConfig`.

What is carried over (see docs/clusters.md, "Import from ClustriX"):

- cluster_type `ssh` or `slurm` becomes the cluster's type; pbs, sge and kubernetes are refused;
- cluster_host, cluster_port (when not 22, so that an ssh config alias keeps its Port), username
  and key_file become host, port, user and identity_file;
- remote_work_dir, python_executable (run through `conda run` when conda_env_name is set),
  default_cores, default_memory, default_time and (slurm) default_partition;
- module_loads become `modules`; environment_variables become `export NAME=VALUE` setup lines,
  then pre_execution_commands, in the order ClustriX's job script runs them;
- a password is never copied: the table says to use `password_env`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from threshold_probe.config import ProbeConfig, SlurmClusterConfig, SSHClusterConfig
from threshold_probe.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def search_paths(cwd: Path | None = None) -> list[Path]:
    """Where ClustriX looks for its config, in its order."""
    home = Path.home() / ".clustrix"
    here = cwd or Path.cwd()
    return [
        home / "config.yml",
        home / "config.yaml",
        home / "config.json",
        here / "clustrix.yml",
        here / "clustrix.yaml",
        here / "clustrix.json",
    ]


#: ClusterConfig's fields in ClustriX 0.1.1 (ClustriX refuses a file with any other key).
CLUSTRIX_FIELDS = frozenset(
    {
        "api_key", "username", "password", "key_file", "cluster_type", "cluster_host", "cluster_port",
        "default_cores", "default_memory", "default_time", "default_partition", "default_queue",
        "remote_work_dir", "local_cache_dir", "conda_env_name", "python_executable", "auto_parallel",
        "max_parallel_jobs", "job_poll_interval", "cleanup_on_success", "prefer_local_parallel",
        "local_parallel_threshold", "environment_variables", "module_loads", "pre_execution_commands",
    }
)  # fmt: skip
UNSUPPORTED_TYPES = ("pbs", "sge", "kubernetes")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Imported:
    """A cluster table made from a ClustriX config, with the notes for the user."""

    source: Path
    name: str
    table: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    password_dropped: bool = False


def read_clustrix_config(path: Path) -> dict[str, Any]:
    """The file's mapping, read as ClustriX reads it (YAML for .yml/.yaml, JSON otherwise)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read ClustriX config {path}: {exc.strerror}") from None
    if path.suffix.lower() in (".yml", ".yaml"):
        try:
            import yaml
        except ImportError:
            raise UserError(f"{path} is YAML: reading it needs PyYAML (pip install pyyaml)") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a ClustriX config (a mapping of ClusterConfig fields)")
    unknown = sorted(str(k) for k in data if k not in CLUSTRIX_FIELDS)
    if unknown:
        raise UserError(f"{path}: not a ClustriX config: unknown field {unknown[0]!r}")
    return data


def find_clustrix_config(cwd: Path | None = None) -> Path:
    """The file ClustriX would load: the first that exists and reads; UserError when there is none."""
    candidates = [p for p in search_paths(cwd) if p.is_file()]
    first_error: UserError | None = None
    for path in candidates:
        try:
            read_clustrix_config(path)
        except UserError as exc:
            # ClustriX skips a file it cannot load and tries the next one.
            first_error = first_error or exc
            continue
        return path
    if first_error is not None:
        raise first_error
    where = ", ".join(str(p) for p in search_paths(cwd))
    raise UserError(f"no ClustriX config found (looked for {where}); give its path")


def _name_from(host: str | None) -> str:
    if not host or re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", host):
        return "clustrix"
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", host.split(".")[0]).strip("-")
    return label or "clustrix"


def _strings(path: Path, data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{path}: {key} must be a list of strings")
    return list(value)


def to_cluster_table(
    path: Path, data: dict[str, Any], *, name: str | None = None, known_hosts: str | None = None
) -> Imported:
    """Map ClustriX's fields to a `[clusters.NAME]` table; UserError for what probe cannot run."""
    kind = str(data.get("cluster_type") or "slurm")  # ClustriX's default type
    if kind in UNSUPPORTED_TYPES:
        raise UserError(f"{path}: cluster_type {kind!r} is not supported (probe runs on ssh and slurm clusters)")
    if kind not in ("ssh", "slurm"):
        raise UserError(f"{path}: cluster_type {kind!r} is not a ClustriX cluster type probe knows")
    host = data.get("cluster_host")
    if kind == "ssh" and not host:
        raise UserError(f"{path}: cluster_host is not set (an ssh cluster needs a host)")
    table: dict[str, Any] = {"type": kind}
    notes: list[str] = []
    if host:
        table["host"] = str(host)
    port = data.get("cluster_port")
    if port not in (None, 22):
        table["port"] = port
    if data.get("username"):
        table["user"] = str(data["username"])
    if data.get("key_file"):
        table["identity_file"] = str(data["key_file"])
    if known_hosts:
        table["known_hosts"] = known_hosts
    python = str(data.get("python_executable") or "python")
    if data.get("conda_env_name"):
        # ClustriX's own choice for a conda environment; --no-capture-output keeps output streaming.
        python = shlex.join(["conda", "run", "--no-capture-output", "-n", str(data["conda_env_name"]), python])
    table["python"] = python
    if data.get("remote_work_dir"):
        table["workdir"] = str(data["remote_work_dir"])
    if data.get("default_cores") is not None:
        table["cores"] = data["default_cores"]
    if data.get("default_memory"):
        table["memory"] = str(data["default_memory"])
    if data.get("default_time"):
        table["time"] = str(data["default_time"])
    if kind == "slurm" and data.get("default_partition"):
        table["partition"] = str(data["default_partition"])
    modules = _strings(path, data, "module_loads")
    if modules:
        table["modules"] = modules
    env = data.get("environment_variables") or {}
    if not isinstance(env, dict):
        raise UserError(f"{path}: environment_variables must be a mapping of names to values")
    setup: list[str] = []
    for var, value in env.items():
        if not _ENV_NAME.fullmatch(str(var)):
            raise UserError(f"{path}: environment_variables: {str(var)!r} is not a variable name")
        setup.append(f"export {var}={shlex.quote(str(value))}")
    setup += _strings(path, data, "pre_execution_commands")
    if setup:
        table["setup"] = setup
    dropped = bool(data.get("password"))
    if dropped:
        notes.append(
            "the password was not copied: put it in an environment variable and set "
            'password_env = "THAT_VARIABLE" (its name, never the password)'
        )
    model = SSHClusterConfig if kind == "ssh" else SlurmClusterConfig
    try:
        model.model_validate(table)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: {where}: {first['msg']}") from None
    return Imported(source=path, name=name or _name_from(host), table=table, notes=notes, password_dropped=dropped)


def _toml_table(imported: Imported) -> Any:
    import tomlkit

    tbl = tomlkit.table()
    tbl.add(tomlkit.comment(f"imported from {imported.source}"))
    for key, value in imported.table.items():
        tbl.add(key, value)
    if imported.password_dropped:
        tbl.add(tomlkit.comment("the ClustriX password was not copied: set password_env to the NAME of"))
        tbl.add(tomlkit.comment('an environment variable that holds it, e.g. password_env = "CLUSTER_PASSWORD"'))
    return tbl


def render_toml(imported: Imported) -> str:
    """The `[clusters.NAME]` table as TOML text."""
    import tomlkit

    doc = tomlkit.document()
    clusters = tomlkit.table(is_super_table=True)
    clusters.add(imported.name, _toml_table(imported))
    doc.add("clusters", clusters)
    return tomlkit.dumps(doc)


def write_cluster(config_path: Path, imported: Imported) -> None:
    """Add the table to probe.toml (or pyproject.toml's [tool.threshold-probe]), keeping its layout."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        text = config_path.read_text() if config_path.exists() else ""
    except OSError as exc:
        raise UserError(f"cannot read {config_path}: {exc.strerror}") from None
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise UserError(f"{config_path}: not valid TOML: {exc}") from None
    root: Any = doc
    if config_path.name == "pyproject.toml":
        tool = doc.setdefault("tool", tomlkit.table(is_super_table=True))
        root = tool.setdefault("threshold-probe", tomlkit.table())
    clusters = root.get("clusters")
    if clusters is None:
        clusters = tomlkit.table(is_super_table=True)
        root.add("clusters", clusters)
    if imported.name in clusters:
        raise UserError(f"{config_path} already has a cluster named {imported.name!r}: choose another with --name")
    clusters.add(imported.name, _toml_table(imported))
    new_text = tomlkit.dumps(doc)
    # The file must still be a valid config before it replaces the old one.
    data = tomllib.loads(new_text)
    if config_path.name == "pyproject.toml":
        data = data.get("tool", {}).get("threshold-probe", {})
    try:
        ProbeConfig.model_validate(data)
    except ValidationError as exc:
        why = exc.errors()[0]["msg"]
        raise UserError(f"{config_path}: would not be a valid config after the import: {why}") from None
    tmp = config_path.with_name(f".{config_path.name}.tmp")
    tmp.write_text(new_text)
    if config_path.exists():
        os.chmod(tmp, config_path.stat().st_mode & 0o7777)
    os.replace(tmp, config_path)
