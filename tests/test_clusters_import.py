"""`probe clusters import`: configs written by ClustriX's own save_config become working clusters.

Each config is written by the real ClustriX 0.1.1 (`configure` then `save_config`), in a child
interpreter whose HOME is the test's, so that ClustriX's global config and the user's own
~/.clustrix are never touched. The imported cluster must then pass `probe clusters check` on the
loopback testbed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import clustrix  # noqa: F401  - the extra must be installed: these tests are never skipped
import pytest
import yaml
from typer.testing import CliRunner

from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app
from threshold_probe.clusters import make_cluster
from threshold_probe.config import load_config
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.clustrix import ClustrixSerialPipeline

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ORIGINAL_TOML = """\
# Team config: keep this comment.
reports_dir = "reports"   # where runs go

[defaults]
cluster = "local"

[clusters.old]
type = "ssh"
host = "old.example.org"  # retired, but kept
"""


def save_with_clustrix(path: Path, home: Path, **fields: Any) -> Path:
    """Write `path` with ClustriX's own configure() and save_config(), as a ClustriX user would."""
    code = (
        "import json, sys\n"
        "from clustrix.config import configure, save_config\n"
        "configure(**json.loads(sys.argv[1]))\n"
        "save_config(sys.argv[2])\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", code, json.dumps(fields), str(path)],
        check=True,
        env={**os.environ, "HOME": str(home)},
        cwd=home,
        timeout=60,
    )
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def fields_for_testbed(tb: Testbed, **extra: Any) -> dict[str, Any]:
    h = tb.host("ssh")
    fields: dict[str, Any] = {
        "cluster_type": "ssh",
        "cluster_host": h.addr,
        "cluster_port": h.port,
        "username": tb.user,
        "key_file": str(tb.client_key),
        "default_cores": 1,
        "default_memory": "1GB",
        "default_time": "00:05:00",
    }
    fields.update(extra)
    return fields


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own (where ClustriX looks for ~/.clustrix) and a working folder."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return home


@pytest.mark.ssh
def test_yaml_config_from_the_clustrix_home_is_imported_written_and_checked(
    testbed: Testbed, home: Path, tmp_path: Path
) -> None:
    save_with_clustrix(
        home / ".clustrix" / "config.yml",
        home,
        **fields_for_testbed(
            testbed,
            password="hunter2-not-copied",
            python_executable=testbed.python,
            remote_work_dir="~/tp-imported-yaml",
            pre_execution_commands=["umask 077"],
        ),
    )
    # ClustriX reads ~/.clustrix first: a clustrix.yml in the working folder is not the one.
    save_with_clustrix(Path.cwd() / "clustrix.yml", home, cluster_type="ssh", cluster_host="decoy.invalid")
    config = Path.cwd() / "probe.toml"
    config.write_text(ORIGINAL_TOML)

    code, out, err = invoke(
        "--config", str(config), "clusters", "import", "--name", "imported",
        "--known-hosts", str(testbed.known_hosts), "--write",
    )  # fmt: skip
    assert code == 0, err + out
    assert "[clusters.imported]" in out and f'host = "{testbed.host("ssh").addr}"' in out
    assert "decoy" not in out
    # The password is never copied anywhere; the user is told what to use instead.
    text = config.read_text()
    assert "hunter2" not in out + err + text
    assert "password_env" in err and "password_env" in text
    # The file keeps its comments and layout: the old text is untouched, the table follows it.
    assert text.startswith(ORIGINAL_TOML)
    cfg = load_config(config)
    imported = cfg.cluster("imported")
    assert imported.type == "ssh" and imported.workdir == "~/tp-imported-yaml"  # type: ignore[union-attr]
    assert cfg.cluster("old").host == "old.example.org"  # type: ignore[union-attr]

    code, out, err = invoke("--config", str(config), "clusters", "check", "imported", "--json")
    assert code == 0, err + out
    assert json.loads(out)["usable"] is True

    # The clustrix pipeline drives ClustriX with the settings it was imported from.
    cluster = make_cluster("imported", cfg)
    cx = ClustrixSerialPipeline().clustrix_config(cluster, "/r")
    saved = yaml.safe_load((home / ".clustrix" / "config.yml").read_text())
    for key in ("cluster_type", "cluster_host", "cluster_port", "username", "key_file", "python_executable"):
        assert cx[key] == saved[key], key
    assert cx["pre_execution_commands"] == saved["pre_execution_commands"] == ["umask 077"]
    assert cx["module_loads"] == saved["module_loads"] == []
    cluster.open()
    try:
        workload = Workload(name="ok", source="def workload():\n    return 6 * 7\n", func_name="workload")
        obs = make_pipeline("clustrix-serial").dispatch(
            workload, cluster, f"imp-{os.getpid()}", Limits(memory_bytes=1024**3, time_s=60), tmp_path / "cx"
        )
    finally:
        cluster.close()
    assert diagnose(obs).status == "pass", (diagnose(obs), obs.notes)


@pytest.mark.ssh
def test_json_config_setup_lines_prepare_the_far_side(testbed: Testbed, home: Path, tmp_path: Path) -> None:
    venv_bin = str(Path(testbed.python).parent)
    # ClustriX's default interpreter is a bare `python`, which the testbed user does not have on
    # PATH: only the imported setup lines (a pre-execution command) make it the testbed's venv.
    save_with_clustrix(
        Path.cwd() / "clustrix.json",
        home,
        **fields_for_testbed(
            testbed,
            environment_variables={"TP_IMPORTED": "from clustrix, with spaces"},
            pre_execution_commands=[f"export PATH={venv_bin}:$PATH"],
            remote_work_dir="~/tp-imported-json",
        ),
    )
    config = Path.cwd() / "probe.toml"
    code, out, err = invoke(
        "--config", str(config), "clusters", "import", "--known-hosts", str(testbed.known_hosts), "--write"
    )
    assert code == 0, err + out
    assert "password_env" not in err
    cfg = load_config(config)
    assert list(cfg.clusters) == ["clustrix"]  # a host address names no cluster: the default name
    imported = cfg.cluster("clustrix")
    assert imported.python == "python"
    assert imported.setup == [  # type: ignore[union-attr]
        "export TP_IMPORTED='from clustrix, with spaces'",
        f"export PATH={venv_bin}:$PATH",
    ]

    code, out, err = invoke("--config", str(config), "clusters", "check", "clustrix", "--json")
    assert code == 0, err + out
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["python"]["status"] == "ok" and checks["cloudpickle"]["status"] == "ok", checks

    # Every probe runs after the same lines: the variable is there for the function.
    cluster = make_cluster("clustrix", cfg)
    source = "import os\n\ndef workload():\n    assert os.environ['TP_IMPORTED'] == 'from clustrix, with spaces'\n"
    with cluster:
        local_dir = tmp_path / "p"
        local_dir.mkdir()
        obs = make_pipeline("native").dispatch(
            Workload(name="env", source=source, func_name="workload", level=1), cluster, "env", Limits(), local_dir
        )
    assert diagnose(obs).status == "pass", obs.job


@pytest.mark.ssh
def test_module_loads_on_a_host_without_modules_fail_the_check_in_one_line(
    testbed: Testbed, home: Path, tmp_path: Path
) -> None:
    save_with_clustrix(
        Path.cwd() / "clustrix.yml",
        home,
        **fields_for_testbed(testbed, module_loads=["python/3.11"], python_executable=testbed.python),
    )
    config = Path.cwd() / "probe.toml"
    code, out, err = invoke(
        "--config", str(config), "clusters", "import", "--name", "mods", "--known-hosts", str(testbed.known_hosts),
        "--write",
    )  # fmt: skip
    assert code == 0, err + out
    code, out, err = invoke("--config", str(config), "clusters", "check", "mods")
    assert code == 3
    failed = [ln for ln in out.splitlines() if ln.startswith("fail")]
    assert len(failed) == 1 and "setup" in failed[0] and "module: command not found" in failed[0], out
    assert "clusters.mods.modules" in failed[0]


@pytest.mark.parametrize("kind", ["pbs", "sge", "kubernetes"])
def test_schedulers_probe_cannot_run_are_one_line_and_exit_2(home: Path, kind: str) -> None:
    path = save_with_clustrix(Path.cwd() / "clustrix.yaml", home, cluster_type=kind, cluster_host="hpc.example.org")
    code, out, err = invoke("clusters", "import", str(path))
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not supported" in lines[0] and kind in lines[0], err
    assert "Traceback" not in err and out == ""


def test_slurm_config_maps_partition_modules_and_conda(home: Path) -> None:
    save_with_clustrix(
        home / ".clustrix" / "config.json",
        home,
        cluster_type="slurm",
        cluster_host="login.hpc.example.org",
        username="jdoe",
        default_partition="gpu",
        default_cores=8,
        default_memory="16GB",
        default_time="02:00:00",
        module_loads=["python/3.11", "cuda"],
        conda_env_name="research",
        cluster_port=22,
    )
    code, out, err = invoke("clusters", "import")
    assert code == 0, err + out
    assert "[clusters.login]" in out
    table = tomllib.loads(out)["clusters"]["login"]
    assert table["type"] == "slurm" and table["host"] == "login.hpc.example.org" and "port" not in table
    assert table["partition"] == "gpu" and table["cores"] == 8 and table["memory"] == "16GB"
    assert table["modules"] == ["python/3.11", "cuda"]
    assert table["python"] == "conda run --no-capture-output -n research python"
    assert not (Path.cwd() / "probe.toml").exists(), "nothing is written without --write"


def test_no_config_anywhere_and_a_second_import_are_clear_user_errors(home: Path) -> None:
    code, _, err = invoke("clusters", "import")
    assert code == 2 and "no ClustriX config found" in err and ".clustrix/config.yml" in err
    path = save_with_clustrix(Path.cwd() / "clustrix.yml", home, cluster_type="ssh", cluster_host="a.example.org")
    assert invoke("clusters", "import", str(path), "--write")[0] == 0
    code, _, err = invoke("clusters", "import", str(path), "--write")
    assert code == 2 and "already has a cluster named 'a'" in err
