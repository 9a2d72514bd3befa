"""A user's own function through `probe run --function`: loading, naming, arguments, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app

ASSETS = Path(__file__).parent / "assets" / "functions"
LOCALDEP = ASSETS / "localdep"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # Run from another folder than the user's file: its siblings must still load.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    monkeypatch.delenv("PROBE_REPORTS_DIR", raising=False)
    return CliRunner()


def invoke(cli: CliRunner, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["--reports-dir", str(tmp_path / "reports"), *args])
    return result.exit_code, result.stdout, result.stderr


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_sibling_import_loads_here_and_is_missing_there(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(cli, tmp_path, "run", "-f", f"{LOCALDEP / 'localdep.py'}:uses_local_module", "--json", "-q")
    # The file loads (its folder is on sys.path), so nothing failed to pickle: the far side
    # runs in its own folder and has no copy of the sibling module.
    assert code == 1, err
    data = json.loads(out)
    assert data["failure"]["class"] == "import"
    explanation = data["failure"]["explanation"]
    assert "'mylocalhelper' is missing on the far side" in explanation
    assert "--ship-local-modules" in explanation and "register_pickle_by_value" in explanation


def test_ship_local_modules_passes(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(
        cli,
        tmp_path,
        "run",
        "-f",
        f"{LOCALDEP / 'localdep.py'}:uses_local_module",
        "--ship-local-modules",
        "--json",
        "-q",
    )
    assert code == 0, out + err
    (probe,) = json.loads(out)["probes"]
    assert probe["verdict"] == "pass"


def test_missing_name_has_did_you_mean(cli: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(cli, tmp_path, "run", "-f", f"{LOCALDEP / 'localdep.py'}:uses_local_modul")
    assert code == 2
    line = one_line(err)
    assert "no 'uses_local_modul'" in line and "did you mean 'uses_local_module'" in line
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").glob("*-run-*"))


def test_non_callable_name_is_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(cli, tmp_path, "run", "-f", f"{LOCALDEP / 'localdep.py'}:NOT_A_FUNCTION")
    assert code == 2
    assert "not a function" in one_line(err)


def test_unreadable_target_is_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(cli, tmp_path, "run", "-f", f"{LOCALDEP}:f")
    assert code == 2
    assert "is a folder" in one_line(err)
    code, _, err = invoke(cli, tmp_path, "run", "-f", "no_such_module_here.sub:f")
    assert code == 2
    assert "no_such_module_here" in one_line(err)


def test_required_arguments_are_refused_before_dispatch(cli: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(cli, tmp_path, "run", "-f", f"{LOCALDEP / 'localdep.py'}:scaled")
    assert code == 2
    line = one_line(err)
    assert "needs n" in line and "--arg n=VALUE" in line
    code, _, err = invoke(cli, tmp_path, "run", "-f", f"{LOCALDEP / 'localdep.py'}:scaled", "--arg", "m=3")
    assert code == 2
    assert "takes no argument 'm'" in one_line(err)


def test_arg_values_are_json_else_strings(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(
        cli,
        tmp_path,
        "run",
        "-f",
        f"{LOCALDEP / 'localdep.py'}:scaled",
        "--arg",
        "n=5",
        "--arg",
        "label=hello",
        "--json",
        "-q",
    )
    assert code == 0, out + err
    data = json.loads(out)
    (probe,) = data["probes"]
    assert probe["verdict"] == "pass"
    assert probe["spec"]["args"] == {"n": 5, "label": "hello"}


def test_method_notebook_and_module_targets(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(cli, tmp_path, "run", "-f", f"{LOCALDEP / 'localdep.py'}:Trainer.step", "--json", "-q")
    assert code == 0, out + err
    code, out, err = invoke(cli, tmp_path, "run", "-f", f"{LOCALDEP / 'nb.ipynb'}:area", "--json", "-q")
    assert code == 0, out + err
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("def base():\n    return 40\n")
    (pkg / "jobs.py").write_text("from .helpers import base\n\n\ndef total():\n    return {'total': base() + 2}\n")
    # Its helper is imported by reference: the far side lacks the package until it is shipped.
    code, out, err = invoke(cli, tmp_path, "run", "-f", "mypkg.jobs:total", "--json", "-q")
    assert code == 1, out + err
    assert json.loads(out)["failure"]["class"] == "import"
    code, out, err = invoke(cli, tmp_path, "run", "-f", "mypkg.jobs:total", "--ship-local-modules", "--json", "-q")
    assert code == 0, out + err
    assert json.loads(out)["probes"][0]["verdict"] == "pass"


def test_run_exit_code_follows_the_verdict(cli: CliRunner, tmp_path: Path) -> None:
    code, _, _ = invoke(cli, tmp_path, "run", "-f", f"{ASSETS / 'faults.py'}:fine", "-q")
    assert code == 0
    code, _, _ = invoke(cli, tmp_path, "run", "-f", f"{ASSETS / 'faults.py'}:raises", "-q")
    assert code == 1


def test_loading_failure_here_is_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "needs_missing.py"
    src.write_text("import surely_not_installed_anywhere\n\n\ndef f():\n    return 1\n")
    code, _, err = invoke(cli, tmp_path, "run", "-f", f"{src}:f")
    assert code == 2
    assert "surely_not_installed_anywhere" in one_line(err)
    shutil.rmtree(tmp_path / "reports", ignore_errors=True)
