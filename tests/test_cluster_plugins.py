"""Cluster types as plugins: a small installed package adds a type that probe.toml then names.

The package lives in tests/assets/plugins/tp_example_cluster. "Installing" it means what an
installer leaves behind: the package and a `*.dist-info` folder (METADATA, entry_points.txt built
from the package's own pyproject.toml) in a folder on sys.path, as tests/test_plugins.py does for
pipelines. importlib.metadata then finds its entry point as it finds a pip-installed one.
"""

from __future__ import annotations

import json
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_plugins import install
from threshold_probe.cli.app import app
from threshold_probe.clusters import BUILTIN, available_cluster_types, make_cluster
from threshold_probe.config import load_config
from threshold_probe.errors import UserError
from threshold_probe.models import PYTHON, JobSpec

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = ROOT / "tests" / "assets" / "plugins" / "tp_example_cluster"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install(
        site,
        PLUGIN_DIR / "pyproject.toml",
        PLUGIN_DIR / "tp_example_cluster",
        extra_entry_points={"broken": "tp_example_cluster.missing:Nothing", "ssh": "tp_example_cluster:NiceCluster"},
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "tp_example_cluster", raising=False)
    return site


def write_config(folder: Path, table: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "probe.toml"
    path.write_text(f'[clusters.low]\n{table}\nworkdir = "{folder / "wd"}"\n')
    return path


def test_builtin_types_are_registered_by_entry_point() -> None:
    installed_eps = {ep.name: ep.value for ep in entry_points(group="threshold_probe.clusters")}
    assert {name: installed_eps.get(name) for name in BUILTIN} == BUILTIN


def test_a_plugin_type_named_in_probe_toml_runs_jobs(installed: Path, tmp_path: Path) -> None:
    assert available_cluster_types()["nice"] == "tp_example_cluster:NiceCluster"
    config = load_config(write_config(tmp_path / "proj", 'type = "nice"\nniceness = 7\nmemory = "512MB"'))
    cluster = make_cluster("low", config)
    assert type(cluster).__module__ == "tp_example_cluster"
    assert cluster.config.limits().memory_bytes == 512 * 1024**2
    with cluster:
        result = cluster.execute(
            JobSpec(probe_id="nice", argv=[PYTHON, "-c", "import os; print(os.nice(0))"], local_dir=tmp_path / "job")
        )
    # The plugin's own field reached the job: it ran at niceness 7, through the local cluster.
    assert result.exit_code == 0 and result.stdout_tail.strip() == "7", result


def test_a_plugin_cluster_from_the_cli(installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "proj"
    write_config(project, 'type = "nice"\nniceness = 3')
    monkeypatch.chdir(project)
    listed = CliRunner().invoke(app, ["clusters", "list", "--json"])
    assert listed.exit_code == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "low")
    assert row["type"] == "nice" and row["host"] == "localhost"
    ran = CliRunner().invoke(
        app, ["--reports-dir", str(tmp_path / "r"), "run", "--cluster", "low", "--level", "2", "--json", "-q"]
    )
    assert ran.exit_code == 0, ran.stderr
    data = json.loads(ran.stdout)
    assert data["cluster"] == "low" and data["probes"][0]["verdict"] == "pass"


def test_plugin_config_errors_are_one_line_user_errors(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(write_config(tmp_path / "bad", 'type = "nice"\nniceness = 99').parent)
    result = CliRunner().invoke(app, ["clusters", "list"])
    assert result.exit_code == 2
    assert "probe.toml: [clusters.low] niceness: Input should be less than or equal to 19" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(UserError, match=r"cannot load cluster type 'broken'"):
        load_config(write_config(tmp_path / "broken", 'type = "broken"'))


def test_unknown_types_and_shadowed_builtins(installed: Path, tmp_path: Path) -> None:
    # A type nobody provides: the message names every type, the installed plugins' too.
    with pytest.raises(UserError, match=r"\[clusters\.low\] type 'pbs' is not one of local, ssh, slurm, "):
        load_config(write_config(tmp_path / "pbs", 'type = "pbs"'))
    # An entry point named like a built-in does not replace it.
    assert available_cluster_types()["ssh"] == "threshold_probe.clusters.ssh:SSHCluster"


def test_docs_example_is_the_tested_plugin() -> None:
    """docs/clusters.md shows the example plugin; it must be the very code these tests run."""
    docs = (ROOT / "docs" / "clusters.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", docs, re.DOTALL)
    assert (PLUGIN_DIR / "tp_example_cluster" / "__init__.py").read_text() in blocks
    toml_blocks = re.findall(r"```toml\n(.*?)```", docs, re.DOTALL)
    entry = '[project.entry-points."threshold_probe.clusters"]\nnice = "tp_example_cluster:NiceCluster"\n'
    assert any(entry in block for block in toml_blocks)
