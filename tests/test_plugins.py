"""Pipeline plugins: by import path, and by entry point from a small installed test package.

The package lives in tests/assets/plugins/tp_example_plugin. "Installing" it here means what an
installer leaves behind: the package and a `*.dist-info` folder (METADATA, entry_points.txt built
from the package's own pyproject.toml) in a folder on sys.path. importlib.metadata then finds its
entry point exactly as it finds those of a pip-installed distribution; no network is needed.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from threshold_probe.cli.app import app
from threshold_probe.clusters import make_cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.diagnose import diagnose
from threshold_probe.errors import UserError
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits
from threshold_probe.pipelines import available_pipelines, make_pipeline

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = ROOT / "tests" / "assets" / "plugins" / "tp_example_plugin"
IMPORT_PATH = "tp_example_plugin.module_file:ModuleFilePipeline"
LIMITS = Limits(memory_bytes=1024**3, time_s=60)

# A helper and a constant at module level: the whole-file plugin carries them, source shipping does not.
MODULE = """
BASE = 40

def helper():
    return BASE + 2

def workload():
    return helper()
"""


def install(site: Path, pyproject: Path, package: Path, extra_entry_points: dict[str, str] | None = None) -> None:
    """Put `package` and a dist-info for it in `site`, as an installer would."""
    meta = tomllib.loads(pyproject.read_text())["project"]
    shutil.copytree(package, site / package.name)
    dist = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    lines = []
    for group, items in meta.get("entry-points", {}).items():
        items = {**items, **(extra_entry_points or {})}
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in items.items())
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (dist / "RECORD").write_text("")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install(
        site,
        PLUGIN_DIR / "pyproject.toml",
        PLUGIN_DIR / "tp_example_plugin",
        # A broken entry point in the same distribution, for the error message test.
        extra_entry_points={"broken-plugin": "tp_example_plugin.missing_module:Nothing"},
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "tp_example_plugin", raising=False)
    monkeypatch.delitem(sys.modules, "tp_example_plugin.module_file", raising=False)
    return site


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    monkeypatch.delitem(sys.modules, "tp_example_plugin", raising=False)
    monkeypatch.delitem(sys.modules, "tp_example_plugin.module_file", raising=False)


def test_plugin_by_import_path_runs_a_probe(on_path: None, tmp_path: Path) -> None:
    pipeline = make_pipeline(IMPORT_PATH)
    assert pipeline.name == "module-file"
    workload = Workload(name="m", source=MODULE, func_name="workload")
    obs = pipeline.dispatch(workload, make_cluster("local", ProbeConfig()), "p", LIMITS, tmp_path / "plugin")
    verdict = diagnose(obs)
    assert verdict.status == "pass", verdict
    assert obs.result is not None and obs.result["repr"] == "42"
    # The same function through source shipping: the helper does not travel.
    src = make_pipeline("source").dispatch(workload, make_cluster("local", ProbeConfig()), "s", LIMITS, tmp_path / "s")
    assert diagnose(src).failure_class == "name"


def test_plugin_failure_is_diagnosed_like_any_other(on_path: None, tmp_path: Path) -> None:
    source = "def workload():\n    return {}['missing']\n"
    obs = make_pipeline(IMPORT_PATH).dispatch(
        Workload(name="k", source=source, func_name="workload"),
        make_cluster("local", ProbeConfig()),
        "p",
        LIMITS,
        tmp_path,
    )
    verdict = diagnose(obs)
    assert verdict.failure_class == "exception" and verdict.evidence[0] == "KeyError: 'missing'"
    assert obs.job.exit_code == 12


def test_plugin_by_import_path_from_the_cli(on_path: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["--reports-dir", str(tmp_path / "r"), "run", "--level", "2", "--pipeline", IMPORT_PATH, "--json", "-q"]
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["pipeline"] == "module-file" and data["probes"][0]["verdict"] == "pass"


def test_plugin_by_entry_point_from_an_installed_package(installed: Path, tmp_path: Path) -> None:
    assert available_pipelines()["module-file"] == IMPORT_PATH
    pipeline = make_pipeline("module-file")
    assert type(pipeline).__module__ == "tp_example_plugin.module_file"
    assert Path(sys.modules["tp_example_plugin"].__file__ or "").is_relative_to(installed)
    obs = pipeline.dispatch(
        Workload(name="m", source=MODULE, func_name="workload"),
        make_cluster("local", ProbeConfig()),
        "e",
        LIMITS,
        tmp_path / "ep",
    )
    assert diagnose(obs).status == "pass"


def test_entry_point_plugin_in_compare_pipelines(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "--reports-dir",
            str(tmp_path / "r"),
            "compare-pipelines",
            "--pipelines",
            "native,module-file",
            "--from",
            "1",
            "--to",
            "2",
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["pipelines"] == ["native", "module-file"]
    assert all(row["cells"]["module-file"]["verdict"] == "pass" for row in data["matrix"])


def test_broken_and_unknown_plugins_are_one_line_user_errors(installed: Path) -> None:
    with pytest.raises(UserError, match=r"cannot load pipeline 'broken-plugin' \(from tp-example-plugin\)"):
        make_pipeline("broken-plugin")
    with pytest.raises(UserError, match=r"unknown pipeline 'nothing-here'.*module-file"):
        make_pipeline("nothing-here")
    with pytest.raises(UserError, match="has no attribute 'Nope'"):
        make_pipeline("tp_example_plugin.module_file:Nope")
    with pytest.raises(UserError, match=r"not a threshold_probe\.pipelines\.base\.Pipeline subclass"):
        make_pipeline("tp_example_plugin.module_file:Path")
    with pytest.raises(UserError, match="No module named 'no_such_package'"):
        make_pipeline("no_such_package.mod:Cls")


def test_a_pipeline_of_neither_kind_is_a_one_line_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The bare base class ships nothing and drives nothing: naming it is a user error, exit 2.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "--reports-dir",
            str(tmp_path / "r"),
            "run",
            "--pipeline",
            "threshold_probe.pipelines.base:Pipeline",
            "--ladder",
            "default",
            "--level",
            "1",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "neither kind" in result.stderr and "Traceback" not in result.output + result.stderr


def test_every_builtin_pipeline_has_an_explicit_kind() -> None:
    kinds = {name: make_pipeline(name).kind for name in ("native", "source", "inline", "clustrix", "submitit")}
    assert kinds == {
        "native": "shipping",
        "source": "shipping",
        "inline": "shipping",
        "clustrix": "runner",
        "submitit": "runner",
    }


def test_builtins_cannot_be_replaced_by_an_entry_point(installed: Path) -> None:
    assert available_pipelines()["native"] == "threshold_probe.pipelines.native:NativePipeline"


def test_docs_example_is_the_tested_plugin() -> None:
    """docs/pipelines.md shows the example plugin; it must be the very code these tests run."""
    docs = (ROOT / "docs" / "pipelines.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", docs, re.DOTALL)
    module = (PLUGIN_DIR / "tp_example_plugin" / "module_file.py").read_text()
    assert module in blocks
    toml_blocks = re.findall(r"```toml\n(.*?)```", docs, re.DOTALL)
    entry = (
        '[project.entry-points."threshold_probe.pipelines"]\n'
        'module-file = "tp_example_plugin.module_file:ModuleFilePipeline"\n'
    )
    assert any(entry in block for block in toml_blocks)


def test_a_bisect_through_a_plugin_by_import_path_resumes(
    on_path: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = ["--reports-dir", str(tmp_path / "r")]
    first = CliRunner().invoke(
        app, [*base, "bisect", "--hi", "4", "--pipeline", IMPORT_PATH, "--memory", "2GB", "--json", "-q"]
    )
    assert first.exit_code == 0, first.stderr
    run_id = json.loads(first.stdout)["run_id"]
    # Resuming loads the pipeline the way it was given; its finished probes come from the journal.
    again = CliRunner().invoke(app, [*base, "bisect", "--resume", run_id, "--json", "-q"])
    assert again.exit_code == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["run_id"] == run_id and data["pipeline"] == "module-file"
    assert data["search_status"] == "highest_passes"
