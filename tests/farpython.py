"""A far-side Python of another minor version than the client's, for version-skew tests.

The interpreter comes from pyenv (`/root/.pyenv/versions/3.12.*`); when there is none, pyenv
installs the newest 3.12 it knows (`pyenv install --skip-existing 3.12`, several minutes the
first time). pyenv keeps it under /root, which the unprivileged far-side user of the testbed
cannot enter, so the tree is copied once to a public cache folder (without its test suite),
a venv is made from the copy, and the client's own cloudpickle is copied into the venv (the
same version on both sides: only the Python differs). pyenv links the interpreter against its
libpython by an absolute RUNPATH under /root, so the far side runs a small wrapper that points
LD_LIBRARY_PATH at the copy first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv"))
#: Readable by every user, kept between test runs (the copy takes a few seconds).
CACHE = Path("/var/tmp/threshold-probe-tests")


def _pyenv_python(minor: str) -> Path:
    """The newest installed pyenv CPython `minor` (e.g. "3.12"), installing it when missing."""

    def found() -> list[Path]:
        versions = PYENV_ROOT / "versions"
        hits = [p for p in versions.glob(f"{minor}.*") if (p / "bin" / f"python{minor}").exists()]
        return sorted(hits, key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")])

    if not found():
        pyenv = shutil.which("pyenv") or str(PYENV_ROOT / "bin" / "pyenv")
        if not Path(pyenv).exists():
            pytest.fail(f"no Python {minor} and no pyenv to install it: run .ci/install-system.sh", pytrace=False)
        done = subprocess.run([pyenv, "install", "--skip-existing", minor], capture_output=True, text=True, check=False)
        if done.returncode != 0 or not found():
            pytest.fail(f"pyenv install {minor} failed: {done.stderr.strip()[-500:]}", pytrace=False)
    return found()[-1]


def far_python(minor: str = "3.12") -> str:
    """A wrapper script that runs a venv of CPython `minor` with this client's cloudpickle."""
    if ".".join(map(str, sys.version_info[:2])) == minor:
        pytest.fail(f"the client itself is Python {minor}: pick another minor version", pytrace=False)
    source = _pyenv_python(minor)
    home = CACHE / f"cpython-{source.name}"
    wrapper = home / "python"
    if wrapper.exists():
        return str(wrapper)
    shutil.rmtree(home, ignore_errors=True)  # a build that stopped half way
    CACHE.mkdir(parents=True, exist_ok=True)
    CACHE.chmod(0o755)
    building = CACHE / f".cpython-{source.name}.{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(
        source,
        building / "base",
        symlinks=True,
        ignore=shutil.ignore_patterns("test", "__pycache__", "idlelib", "tkinter"),
    )
    # The venv is made from the copy where it will live, so its paths point there.
    os.rename(building, home)
    lib = home / "base" / "lib"
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib)}
    subprocess.run(
        [str(home / "base" / "bin" / f"python{minor}"), "-m", "venv", "--without-pip", str(home / "venv")],
        env=env,
        check=True,
    )
    import cloudpickle

    site = next((home / "venv" / "lib").glob("python3*/site-packages"))
    shutil.copytree(
        Path(cloudpickle.__file__).parent, site / "cloudpickle", ignore=shutil.ignore_patterns("__pycache__")
    )
    tmp = home / ".python.tmp"
    tmp.write_text(
        "#!/bin/sh\n"
        f"LD_LIBRARY_PATH={lib}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}} "
        f'exec {home / "venv" / "bin" / "python"} "$@"\n'
    )
    for root, dirs, files in os.walk(home):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o444)
    tmp.chmod(0o755)
    os.replace(tmp, wrapper)
    return str(wrapper)
