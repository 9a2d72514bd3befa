"""probe.toml (or [tool.threshold-probe] in pyproject.toml), validated with pydantic."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from threshold_probe.errors import UserError
from threshold_probe.models import Limits
from threshold_probe.units import parse_memory_limit, parse_time_limit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAMES = ("probe.toml", "pyproject.toml")
#: The entry-point group a distribution uses to offer clusters (a PBS or Kubernetes runner):
#: `[project.entry-points."threshold_probe.clusters"] pbs = "pkg.mod:PBSCluster"`.
CLUSTER_ENTRY_POINT_GROUP = "threshold_probe.clusters"
#: Cluster types this package provides; an entry point of the same name never replaces them.
BUILTIN_CLUSTER_TYPES = ("local", "ssh", "slurm")


class ClusterConfigBase(BaseModel):
    """What every cluster's config has: its type and the limits it applies by default.

    A cluster plugin subclasses this for its own fields (see docs/clusters.md).
    """

    model_config = ConfigDict(extra="forbid")

    memory: str | None = None
    time: str | None = None
    cores: int | None = Field(default=None, ge=1)
    #: The cluster type: `local`, `ssh`, `slurm`, or one a plugin provides.
    type: str

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_number_is_mb(cls, v: object) -> object:
        # `memory = 1024` in TOML is an integer; a bare number means MB, as in "1024".
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v}MB"
        return v

    @field_validator("memory")
    @classmethod
    def _check_memory(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_memory_limit(v, name="memory")
            except UserError as exc:  # pydantic names the field only for a ValueError
                raise ValueError(str(exc)) from None
        return v

    @field_validator("time")
    @classmethod
    def _check_time(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_time_limit(v, name="time")
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return v

    def limits(self) -> Limits:
        """The limits this cluster applies when the command line does not override them."""
        return Limits(
            memory_bytes=parse_memory_limit(self.memory, name="memory") if self.memory else None,
            time_s=parse_time_limit(self.time, name="time") if self.time else None,
            cores=self.cores,
        )


class LocalClusterConfig(ClusterConfigBase):
    """This machine: every probe in a fresh interpreter."""

    type: Literal["local"] = "local"
    python: str = sys.executable
    workdir: str | None = None
    # Defaults give a real, fast threshold on the default ladder (see README: "the main job").
    memory: str | None = "1GB"
    time: str | None = "120s"


class SSHClusterConfig(ClusterConfigBase):
    """A host reached over SSH (a hostname or an alias from ~/.ssh/config)."""

    type: Literal["ssh"]
    host: str
    user: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    identity_file: str | None = None
    python: str = "python3"
    workdir: str = "~/.threshold-probe"
    host_key_policy: Literal["reject", "accept-new"] = "reject"
    password_env: str | None = None
    ssh_config: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 600.0
    #: `module load` lines, then shell lines, run before the interpreter of every probe and check.
    modules: list[str] = Field(default_factory=list)
    setup: list[str] = Field(default_factory=list)
    #: Infrastructure trouble (a refused or dropped connection) is retried this many times per
    #: probe, with exponential backoff from retry_backoff seconds, before the probe is a skip.
    retries: int = Field(default=2, ge=0)
    retry_backoff: float = Field(default=1.0, ge=0)


class SlurmClusterConfig(ClusterConfigBase):
    """A SLURM cluster, reached through its login node over SSH, or on this machine."""

    type: Literal["slurm"]
    host: str | None = None
    user: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    identity_file: str | None = None
    host_key_policy: Literal["reject", "accept-new"] = "reject"
    password_env: str | None = None
    ssh_config: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 10.0
    python: str = "python3"
    workdir: str = "~/.threshold-probe"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gres: str | None = None
    modules: list[str] = Field(default_factory=list)
    setup: list[str] = Field(default_factory=list)
    sbatch_args: list[str] = Field(default_factory=list)
    slurm_conf: str | None = None
    poll_interval: float = 0.5
    array_throttle: int | None = None
    #: The watcher's poll interval grows up to this while nothing changes (a long queue wait).
    max_poll_interval: float = Field(default=15.0, gt=0)
    #: A controller unreachable this long ends the watch of live jobs with a skip.
    controller_timeout: float = Field(default=120.0, gt=0)
    #: Bound on every command sent to the submit host (sbatch, squeue, the fetch).
    command_timeout: float = Field(default=120.0, gt=0)
    #: A job still pending this long after submission is cancelled and becomes a skip (None: wait).
    queue_timeout: float | None = Field(default=None, gt=0)


ClusterConfig = Annotated[LocalClusterConfig | SSHClusterConfig | SlurmClusterConfig, Field(discriminator="type")]


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: str = "local"
    pipeline: str = "native"
    ladder: str = "default"


class NightlyConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    clusters: list[str] | None = None
    #: sweep finds every level that flipped; bisect is cheaper and finds the threshold only.
    kind: Literal["sweep", "bisect"] = "sweep"
    pipelines: list[str] = Field(default_factory=lambda: ["native"])
    ladders: list[str] = Field(default_factory=lambda: ["default"])
    #: Scaled user functions, each a cell beside the ladders:
    #: {function = "FILE:FUNC", scale = "NAME=LO..HI", steps = N, values = [...], args = {...}}.
    functions: list[dict[str, Any]] = Field(default_factory=list)
    output: str = "reports/nightly"
    baseline: dict[str, Any] = Field(default_factory=dict)


class ProbeConfig(BaseModel):
    """The whole configuration. Every field has a default, so no file at all is valid."""

    model_config = ConfigDict(extra="forbid")

    reports_dir: str = "reports"
    defaults: Defaults = Field(default_factory=Defaults)
    clusters: dict[str, ClusterConfig] = Field(default_factory=dict)
    nightly: NightlyConfig = Field(default_factory=NightlyConfig)
    #: Folder the config was read from; relative paths in it are relative to this.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    #: Clusters of a type an installed plugin provides, each checked against the plugin's model.
    _plugin_clusters: dict[str, ClusterConfigBase] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _with_plugin_clusters(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Tables whose type a plugin provides are validated by that plugin's config model.

        Any other type stays in `clusters`, where validation names the built-in types.
        """
        plugins: dict[str, ClusterConfigBase] = {}
        tables = data.get("clusters") if isinstance(data, dict) else None
        if isinstance(tables, dict):
            kept = dict(tables)
            for name, table in tables.items():
                kind = table.get("type") if isinstance(table, dict) else None
                if not isinstance(kind, str) or kind in BUILTIN_CLUSTER_TYPES:
                    continue
                model = plugin_config_model(kind)
                if model is None:
                    continue
                try:
                    plugins[name] = model.model_validate(table)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    keys = [str(p) for p in first["loc"]]
                    # Raised as is (not a ValueError), so that pydantic does not wrap it.
                    raise UserError(describe_config_error(first, ["clusters", name], model, keys)) from None
                del kept[name]
            data = {**data, "clusters": kept}
        config = handler(data)
        if isinstance(config, ProbeConfig):
            config._plugin_clusters.update(plugins)
        return config

    def cluster(self, name: str) -> ClusterConfigBase:
        """The named cluster's config; `local` exists even when no file names it."""
        if name in self.clusters:
            return self.clusters[name]
        if name in self._plugin_clusters:
            return self._plugin_clusters[name]
        if name == "local":
            return LocalClusterConfig()
        known = ", ".join(self.cluster_names())
        raise UserError(f"unknown cluster {name!r}: known clusters are {known}")

    def cluster_names(self) -> list[str]:
        return sorted({"local", *self.clusters, *self._plugin_clusters})


def plugin_config_model(kind: str) -> type[ClusterConfigBase] | None:
    """The config model of the installed cluster plugin of this type, or None when there is none.

    Loading the entry point imports the plugin; a plugin that does not load is a one-line error.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group=CLUSTER_ENTRY_POINT_GROUP):
        if ep.name != kind:
            continue
        try:
            cls = ep.load()
        except Exception as exc:
            raise UserError(
                f"cannot load cluster type {kind!r}: entry point {ep.value!r} raised {type(exc).__name__}: {exc}"
            ) from None
        model = getattr(cls, "config_model", None)
        if not (isinstance(model, type) and issubclass(model, ClusterConfigBase)):
            raise UserError(f"cluster type {kind!r} ({ep.value}) has no config_model (a ClusterConfigBase subclass)")
        return model
    return None


def cluster_type_names() -> list[str]:
    """Every cluster type probe.toml may name: the built-in ones, then those installed plugins offer."""
    from importlib.metadata import entry_points

    extra = sorted({ep.name for ep in entry_points(group=CLUSTER_ENTRY_POINT_GROUP)} - set(BUILTIN_CLUSTER_TYPES))
    return [*BUILTIN_CLUSTER_TYPES, *extra]


_BUILTIN_CLUSTER_MODELS: dict[str, type[BaseModel]] = {
    "local": LocalClusterConfig,
    "ssh": SSHClusterConfig,
    "slurm": SlurmClusterConfig,
}


def _table_and_model(loc: tuple[int | str, ...]) -> tuple[list[str], type[BaseModel] | None, list[str]]:
    """Split an error location into the TOML table it is in, that table's model, and the key path in it.

    Pydantic's location of a cluster field carries the union's tag (`clusters.local.local.memroy`);
    the user wrote `[clusters.local]` and `memroy`.
    """
    parts = [str(p) for p in loc]
    if parts[:1] == ["clusters"] and len(parts) >= 2:
        rest = parts[2:]
        model: type[BaseModel] | None = None
        if rest and rest[0] in _BUILTIN_CLUSTER_MODELS:
            model = _BUILTIN_CLUSTER_MODELS[rest[0]]
            rest = rest[1:]
        return parts[:2], model, rest
    table: list[str] = []
    current: type[BaseModel] | None = ProbeConfig
    while len(parts) > 1 and current is not None:
        field = current.model_fields.get(parts[0])
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        table.append(parts.pop(0))
        current = annotation
    return table, current, parts


def _format_validation_error(path: Path, err: ValidationError) -> str:
    """The first problem of the config in the words of the file: its table, its key, what is wrong."""
    first = err.errors()[0]
    table, model, keys = _table_and_model(tuple(first["loc"]))
    return f"{path}: {describe_config_error(first, table, model, keys)}"


def describe_config_error(first: Any, table: list[str], model: type[BaseModel] | None, keys: list[str]) -> str:
    """One pydantic error as `[table] unknown key 'k' (did you mean ...)`, `[table] key: problem`."""
    where = f"[{'.'.join(table)}] " if table else ""
    kind = first["type"]
    if kind == "union_tag_not_found":
        return f"{where}needs a type (one of {', '.join(cluster_type_names())})"
    if kind == "union_tag_invalid":
        tag = (first.get("ctx") or {}).get("tag", first["input"])
        return f"{where}type {str(tag)!r} is not one of {', '.join(cluster_type_names())}"
    key = ".".join(keys)
    if kind == "extra_forbidden":
        known = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(keys[-1], known, n=1) if keys else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}unknown key {key!r}{hint}"
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}{key}: {msg}" if key else f"{where}{msg}"


def find_config(start: Path | None = None) -> Path | None:
    """probe.toml, or a pyproject.toml with [tool.threshold-probe], in start or its parents."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        p = folder / "probe.toml"
        if p.is_file():
            return p
        pp = folder / "pyproject.toml"
        if pp.is_file():
            try:
                data = tomllib.loads(pp.read_text())
            except (OSError, tomllib.TOMLDecodeError):
                continue
            if "threshold-probe" in data.get("tool", {}):
                return pp
    return None


def load_config(path: Path | None = None) -> ProbeConfig:
    """Load and validate the config; with no path, search upwards from the current folder."""
    if path is None:
        path = find_config()
        if path is None:
            return ProbeConfig()
    elif not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("threshold-probe", {})
    try:
        cfg = ProbeConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(_format_validation_error(path, exc)) from None
    except UserError as exc:  # a plugin's cluster table: its own model found the problem
        raise UserError(f"{path}: {exc}") from None
    cfg.base_dir = path.parent.resolve()
    return cfg
