"""Payloads that carry a shell or Python script as a multi-line string."""

import subprocess
import sys


def run_remote(func):
    raise RuntimeError("the runner is not installed here")


def module_level_script():
    script = """
import platform
print(platform.python_version())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    return out.returncode


def test_level4_embedded_script():
    def level4():
        script = """
import os
print(os.getpid())
"""
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        return out.returncode

    assert run_remote(level4) == 0


def test_level5_report_template():
    def level5():
        template = """
name: {name}
size: {size}
"""
        return template.format(name="probe", size=5)

    assert "probe" in run_remote(level5)


def test_level6_sql():
    def level6():
        query = """
SELECT name, size
FROM results
WHERE size > 5
"""
        return len(query.split())

    assert run_remote(level6) == 8
