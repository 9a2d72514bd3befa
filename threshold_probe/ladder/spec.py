"""Ladder files: TOML specs of levels, as explicit rows, ramps, or both, validated with pydantic.

A ladder file has a `name`, a `description`, optional `[defaults]`, then a `[ramp]` with
`count = N` and a `{start, step[, every][, max][, from]}` table per dimension (a text
dimension takes only `{start = "value", from = K}`), and/or
`[[levels]]` rows. The ramp is built first; a row with `level = K` then overrides the given
values of level K, and a row without `level` (or with K = count + 1) appends a level. An
optional `extends = "default"` starts from another ladder's defaults, ramp and rows. See the
header of levels/default.toml for the user-facing description.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from threshold_probe.errors import UserError
from threshold_probe.ladder import dimensions
from threshold_probe.ladder.dimensions import DIMENSIONS, DimensionValue
from threshold_probe.ladder.generate import generate
from threshold_probe.ladder.workload import Workload

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def shipped_dir() -> Path:
    """Where the shipped ladders are: inside the wheel, or the repository's levels/ folder."""
    packaged = _PACKAGE_DIR / "_levels"
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent / "levels"


class Level(BaseModel):
    """One rung of a ladder: its 1-based number and a value for every dimension."""

    number: int
    values: dict[str, int | float | str]


class Ladder(BaseModel):
    """An ordered list of levels, loaded from a ladder file."""

    name: str
    path: Path
    description: str = ""
    levels: list[Level]

    def level(self, number: int) -> Level:
        """Level `number` (1-based); UserError when the ladder has no such level."""
        if not 1 <= number <= len(self.levels):
            raise UserError(f"ladder {self.name} has levels 1..{len(self.levels)}, not {number}")
        return self.levels[number - 1]

    def workload(self, number: int) -> Workload:
        """The generated workload of level `number`."""
        return generate(self.level(number).values, level=number)

    def numbers(self) -> list[int]:
        """The level numbers, in order."""
        return [lvl.number for lvl in self.levels]


# -- the file format -----------------------------------------------------------------------


class RampSpec(BaseModel):
    """How one dimension grows: start + step * ((level - from) // every), capped at max."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: int | float | str = 0
    step: int | float = 0
    every: int = Field(default=1, ge=1)
    max: int | float | None = None
    from_level: int = Field(default=1, ge=1, alias="from")


class LadderFile(BaseModel):
    """The top level of a ladder file (dimension tables are checked separately, for exact errors)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str = ""
    extends: str | None = None
    defaults: dict[str, Any] = Field(default_factory=dict)
    ramp: dict[str, Any] = Field(default_factory=dict)
    levels: list[dict[str, Any]] = Field(default_factory=list)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ": ".join(str(part) for part in err["loc"])
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    return f"{where}: {msg}" if where else msg


def _display(path: Path) -> str:
    """The path as a user would write it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read_toml(path: Path, shown: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"ladder file not found: {shown}") from None
    except OSError as exc:
        raise UserError(f"cannot read ladder file {shown}: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        line = getattr(exc, "lineno", None)
        if line is None and "(at line " in msg:
            line = int(msg.rsplit("(at line ", 1)[1].split(",")[0])
        msg = msg.split(" (at line ")[0]
        where = f"line {line}: " if line else ""
        raise UserError(f"{shown}: {where}invalid TOML: {msg}") from None


def _resolve(name_or_path: str) -> tuple[Path, str]:
    candidate = Path(name_or_path).expanduser()
    looks_like_path = name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path
    if looks_like_path or candidate.is_file():
        return candidate, name_or_path
    shipped = dict(list_ladders())
    if name_or_path in shipped:
        path = shipped[name_or_path]
        return path, _display(path)
    names = ", ".join(sorted(shipped)) or "none"
    raise UserError(f"unknown ladder {name_or_path!r}: give a path to a .toml file or one of: {names}")


def list_ladders() -> list[tuple[str, Path]]:
    """The shipped ladders as (name, path), sorted by name."""
    folder = shipped_dir()
    if not folder.is_dir():
        return []
    return sorted((p.stem, p) for p in folder.glob("*.toml"))


def _merged(path: Path, shown: str, seen: tuple[Path, ...] = ()) -> tuple[LadderFile, dict[str, Any]]:
    """The validated file, with an `extends` base merged under it."""
    raw = _read_toml(path, shown)
    try:
        spec = LadderFile.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{shown}: {_first_error(exc)}") from None
    if spec.extends is None:
        return spec, {"ramp": dict(spec.ramp), "defaults": dict(spec.defaults), "levels": list(spec.levels)}
    base_path, base_shown = _resolve(spec.extends)
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise UserError(f"{shown}: extends: {spec.extends} extends this ladder again (a cycle)")
    _, base = _merged(base_path, base_shown, (*seen, path.resolve()))
    ramp = {**base["ramp"], **spec.ramp}
    return spec, {
        "ramp": ramp,
        "defaults": {**base["defaults"], **spec.defaults},
        "levels": [*base["levels"], *spec.levels],
    }


def _ramp_value(dim_name: str, rs: RampSpec, number: int, default: DimensionValue) -> DimensionValue:
    if number < rs.from_level:
        return default
    if isinstance(rs.start, str):
        return rs.start
    value: int | float = rs.start + rs.step * ((number - rs.from_level) // rs.every)
    if rs.max is not None:
        value = min(value, rs.max)
    if isinstance(value, float):
        # 0.0125 * 39 is 0.48750000000000004 in binary: keep the written value readable.
        value = round(value, 9)
    return value


def _ramps(shown: str, ramp: Mapping[str, Any]) -> tuple[int, dict[str, RampSpec]]:
    count = ramp.get("count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise UserError(f"{shown}: ramp: count: must be a whole number >= 0, not {count!r}")
    specs: dict[str, RampSpec] = {}
    for name, entry in ramp.items():
        if name == "count":
            continue
        dim = DIMENSIONS.get(name)
        if dim is None:
            raise UserError(f"{shown}: ramp: {name}: unknown dimension{dimensions.suggest(name)}")
        if not isinstance(entry, dict):
            entry = {"start": entry}
        try:
            rs = RampSpec.model_validate(entry)
        except ValidationError as exc:
            raise UserError(f"{shown}: ramp: {name}: {_first_error(exc)}") from None
        if dim.type is str:
            # A text dimension cannot grow; it can switch to a value from a given level on.
            if not isinstance(rs.start, str) or rs.step != 0 or rs.max is not None or rs.every != 1:
                raise UserError(
                    f"{shown}: ramp: {name}: a text dimension takes only start (a value) and from (a level)"
                )
        elif isinstance(rs.start, str):
            raise UserError(f"{shown}: ramp: {name}: start: must be a number, not {rs.start!r}")
        if dim.type is int:
            for key in ("start", "step", "max"):
                x = getattr(rs, key)
                if isinstance(x, float) and not x.is_integer():
                    raise UserError(f"{shown}: ramp: {name}: {key}: must be a whole number, not {x!r}")
        specs[name] = rs
    return count, specs


def _check_values(shown: str, where: str, values: Mapping[str, Any]) -> dict[str, DimensionValue]:
    out: dict[str, DimensionValue] = {}
    for name, value in values.items():
        dim = DIMENSIONS.get(name)
        if dim is None:
            raise UserError(f"{shown}: {where}: {name}: unknown dimension{dimensions.suggest(name)}")
        try:
            out[name] = dim.check(value)
        except ValueError as exc:
            raise UserError(f"{shown}: {where}: {name}: {exc}") from None
    return out


def load_ladder(name_or_path: str) -> Ladder:
    """A shipped ladder by name ('default', 'seed', 'features') or a ladder file by path.

    Every error is a UserError of one line that names the file, the level and the field.
    """
    path, shown = _resolve(name_or_path)
    spec, merged = _merged(path, shown)
    defaults = _check_values(shown, "defaults", merged["defaults"])
    count, ramps = _ramps(shown, merged["ramp"])

    rows: list[dict[str, Any]] = []
    for number in range(1, count + 1):
        row: dict[str, Any] = {}
        for name, rs in ramps.items():
            base = defaults.get(name, DIMENSIONS[name].default)
            row[name] = _ramp_value(name, rs, number, base)
        rows.append(row)
    for index, given in enumerate(merged["levels"]):
        given = dict(given)
        number = given.pop("level", None)
        if number is None:
            number = len(rows) + 1
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= len(rows) + 1:
            raise UserError(
                f"{shown}: levels[{index}]: level: must be a level number from 1 to {len(rows) + 1}, not {number!r}"
            )
        if number == len(rows) + 1:
            rows.append({})
        rows[number - 1].update(given)

    if not rows:
        raise UserError(f"{shown}: no levels: add a [ramp] with count = N, or [[levels]] rows")
    levels: list[Level] = []
    for number, row in enumerate(rows, start=1):
        values = {**defaults, **_check_values(shown, f"level {number}", row)}
        full = {name: values.get(name, dim.default) for name, dim in DIMENSIONS.items()}
        levels.append(Level(number=number, values=full))
    return Ladder(name=spec.name or path.stem, path=path, description=spec.description.strip(), levels=levels)
