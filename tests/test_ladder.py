"""Ladder files: the shipped ladders, the format (ramps, rows, defaults, extends) and its errors."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import threshold_probe
from threshold_probe.errors import UserError
from threshold_probe.ladder import DIMENSIONS, Ladder, list_ladders, load_ladder, shipped_dir
from threshold_probe.metrics import measure_workload

SIZE = [name for name, d in DIMENSIONS.items() if d.kind == "size"]
RESOURCE = [name for name, d in DIMENSIONS.items() if d.kind == "resource"]


@pytest.fixture
def in_tmp(tmp_path: Path) -> Path:
    """Work in tmp_path so that error messages show the short relative path a user types."""
    old = Path.cwd()
    os.chdir(tmp_path)
    yield tmp_path  # type: ignore[misc]
    os.chdir(old)


def write(folder: Path, name: str, text: str) -> str:
    (folder / "levels").mkdir(exist_ok=True)
    path = folder / "levels" / name
    path.write_text(text)
    return f"levels/{name}"


def test_shipped_ladders_are_listed() -> None:
    names = [name for name, _ in list_ladders()]
    assert {"default", "seed"} <= set(names)
    assert shipped_dir().name in ("levels", "_levels")


def test_default_ladder_grows_smoothly_in_every_size_and_resource_dimension() -> None:
    ladder = load_ladder("default")
    assert isinstance(ladder, Ladder) and ladder.name == "default"
    assert len(ladder.levels) >= 40
    assert ladder.numbers() == list(range(1, len(ladder.levels) + 1))
    for level in ladder.levels:
        assert set(level.values) == set(DIMENSIONS)
    for name in SIZE + RESOURCE:
        series = [lvl.values[name] for lvl in ladder.levels]
        assert all(a <= b for a, b in itertools.pairwise(series)), name  # type: ignore[operator]
        assert series[-1] > series[0], name  # type: ignore[operator]
    last = ladder.level(40).values
    assert 550 <= last["loc"] <= 650  # type: ignore[operator]
    assert 15 <= last["subprocess_calls"] <= 25  # type: ignore[operator]
    assert last["runtime_s"] <= 0.5  # type: ignore[operator]
    assert last["output_kb"] <= 512  # type: ignore[operator]


def test_default_memory_crosses_one_gib_in_the_high_twenties() -> None:
    mem = {lvl.number: int(lvl.values["memory_mb"]) for lvl in load_ladder("default").levels}
    # The local cluster's default limit is RLIMIT_AS = 1 GiB, and an interpreter needs tens of MiB.
    assert mem[24] < 900
    assert 1024 - 60 < mem[30] < 1024 + 60
    assert mem[32] > 1024


def test_seed_ladder_matches_the_published_table() -> None:
    ladder = load_ladder("seed")
    rows = [(lvl.values["loc"], lvl.values["subprocess_calls"], lvl.values["data_structures"]) for lvl in ladder.levels]
    assert rows == [(10, 1, 1), (20, 2, 2), (30, 3, 3), (80, 7, 4), (150, 10, 5)]
    measured = [measure_workload(ladder.workload(n)) for n in ladder.numbers()]
    assert [m.subprocess_calls for m in measured] == [1, 2, 3, 7, 10]
    assert [m.data_structures for m in measured] == [1, 2, 3, 4, 5]
    for m, (loc, _, _) in zip(measured, rows, strict=True):
        assert abs(m.loc - loc) <= max(2, loc // 10), (m.loc, loc)


def test_ramp_rows_defaults_every_max_from(in_tmp: Path) -> None:
    path = write(
        in_tmp,
        "mine.toml",
        """
name = "mine"
description = "a test ladder"

[defaults]
branches = 2
loops = 9

[ramp]
count = 5
loc = { start = 10, step = 5 }
phases = { start = 0, step = 1, every = 2 }
memory_mb = { start = 10, step = 100, max = 250 }
loops = { start = 1, step = 1, from = 4 }
runtime_s = { start = 0.0, step = 0.1 }
data_structures = 3

[[levels]]
level = 2
loc = 99

[[levels]]
subprocess_calls = 4
""",
    )
    ladder = load_ladder(path)
    assert ladder.name == "mine" and ladder.description == "a test ladder"
    assert ladder.path == Path(path)
    v = [lvl.values for lvl in ladder.levels]
    assert len(v) == 6
    assert [x["loc"] for x in v] == [10, 99, 20, 25, 30, 10]
    assert [x["phases"] for x in v] == [0, 0, 1, 1, 2, 0]
    assert [x["memory_mb"] for x in v] == [10, 110, 210, 250, 250, 0]
    assert [x["loops"] for x in v] == [9, 9, 9, 1, 2, 9]
    assert [x["branches"] for x in v] == [2] * 6
    assert [x["data_structures"] for x in v] == [3, 3, 3, 3, 3, 0]
    assert [x["runtime_s"] for x in v] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.0]
    assert v[5]["subprocess_calls"] == 4 and v[0]["subprocess_calls"] == 0
    assert isinstance(v[0]["loc"], int) and isinstance(v[0]["runtime_s"], float)
    workload = ladder.workload(2)
    assert workload.level == 2 and workload.func_name == "workload_2" and workload.spec["loc"] == 99


def test_extends_a_shipped_ladder(in_tmp: Path) -> None:
    path = write(in_tmp, "more.toml", 'extends = "default"\n[ramp]\nmemory_mb = 0\n[defaults]\nloops = 1\n')
    ladder = load_ladder(path)
    assert ladder.name == "more"
    assert len(ladder.levels) == len(load_ladder("default").levels)
    assert {lvl.values["memory_mb"] for lvl in ladder.levels} == {0}
    assert ladder.level(40).values["loc"] == load_ladder("default").level(40).values["loc"]


def test_level_out_of_range() -> None:
    with pytest.raises(UserError, match=r"^ladder seed has levels 1\.\.5, not 6$"):
        load_ladder("seed").level(6)


BAD = [
    (
        "[[levels]]\nloc = 10\n[[levels]]\nloc = 20\n[[levels]]\nmemory_mb = -5\n",
        "levels/bad.toml: level 3: memory_mb: must be >= 0",
    ),
    ("[[levels]]\nmemry_mb = 5\n", "levels/bad.toml: level 1: memry_mb: unknown dimension (did you mean memory_mb?)"),
    ("[defaults]\nloc = 1.5\n[ramp]\ncount = 2\n", "levels/bad.toml: defaults: loc: must be a whole number, not 1.5"),
    ("[[levels]]\nruntime_s = 'fast'\n", "levels/bad.toml: level 1: runtime_s: must be a number, not 'fast'"),
    ("[[levels]]\nnesting_depth = 31\n", "levels/bad.toml: level 1: nesting_depth: must be <= 30"),
    ("[[levels]]\nloops = true\n", "levels/bad.toml: level 1: loops: must be a whole number, not True"),
    (
        "[ramp]\ncount = 3\nloc = { start = 10, step = 2.5 }\n",
        "levels/bad.toml: ramp: loc: step: must be a whole number, not 2.5",
    ),
    (
        "[ramp]\ncount = 3\nloc = { start = 10, stride = 2 }\n",
        "levels/bad.toml: ramp: loc: stride: unknown key",
    ),
    (
        "[ramp]\ncount = 3\nmemory_mb = { start = 100, step = -60 }\n",
        "levels/bad.toml: level 3: memory_mb: must be >= 0",
    ),
    ("[ramp]\ncount = 3\nlocs = { start = 1 }\n", "levels/bad.toml: ramp: locs: unknown dimension (did you mean loc?)"),
    (
        '[ramp]\ncount = 2\ndefinition_scope = { start = "nested", step = 1 }\n',
        "levels/bad.toml: ramp: definition_scope: a text dimension takes only start (a value) and from (a level)",
    ),
    (
        '[[levels]]\ndefinition_scope = "global"\n',
        "levels/bad.toml: level 1: definition_scope: must be one of module, nested, method, not 'global'",
    ),
    ('[ramp]\ncount = 2\nloc = { start = "ten" }\n', "levels/bad.toml: ramp: loc: start: must be a number, not 'ten'"),
    ("[ramp]\ncount = -1\n", "levels/bad.toml: ramp: count: must be a whole number >= 0, not -1"),
    ("colour = 'blue'\n[[levels]]\nloc = 3\n", "levels/bad.toml: colour: unknown key"),
    ('name = "x"\n', "levels/bad.toml: no levels: add a [ramp] with count = N, or [[levels]] rows"),
    (
        "[ramp]\ncount = 2\n[[levels]]\nlevel = 5\nloc = 3\n",
        "levels/bad.toml: levels[0]: level: must be a level number from 1 to 3, not 5",
    ),
    (
        "name = 'x'\n\n[ramp\ncount = 2\n",
        "levels/bad.toml: line 3: invalid TOML: Expected ']' at the end of a table declaration",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_ladder_files_give_one_exact_line(in_tmp: Path, text: str, message: str) -> None:
    path = write(in_tmp, "bad.toml", text)
    with pytest.raises(UserError) as info:
        load_ladder(path)
    assert str(info.value) == message


def test_missing_file_and_unknown_name(in_tmp: Path) -> None:
    with pytest.raises(UserError) as info:
        load_ladder("levels/nope.toml")
    assert str(info.value) == "ladder file not found: levels/nope.toml"
    with pytest.raises(UserError) as info:
        load_ladder("defualt")
    assert str(info.value).startswith("unknown ladder 'defualt': give a path to a .toml file or one of: ")
    assert "default" in str(info.value)


def test_extends_cycle(in_tmp: Path) -> None:
    a = write(in_tmp, "a.toml", 'extends = "levels/b.toml"\n')
    write(in_tmp, "b.toml", 'extends = "levels/a.toml"\n')
    with pytest.raises(UserError, match="a cycle"):
        load_ladder(a)


def test_an_installed_wheel_layout_finds_its_ladders_in_the_package(tmp_path: Path) -> None:
    """pyproject force-includes levels/ as threshold_probe/_levels: that copy wins over any repo."""
    site = tmp_path / "site"
    package = Path(threshold_probe.__file__).parent
    shutil.copytree(package, site / "threshold_probe", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(shipped_dir(), site / "threshold_probe" / "_levels")
    code = (
        "import threshold_probe, json\n"
        "from threshold_probe.ladder import list_ladders, load_ladder\n"
        "print(json.dumps([threshold_probe.__file__, [str(p) for _, p in list_ladders()],"
        " len(load_ladder('default').levels)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, paths, count = json.loads(out.stdout)
    assert module_file.startswith(str(site))
    assert paths and all(p.startswith(str(site / "threshold_probe" / "_levels")) for p in paths)
    assert count == 40
