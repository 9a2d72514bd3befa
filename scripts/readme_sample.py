"""The README's sample output of `probe bisect`, from a real run.

    python scripts/readme_sample.py           # run it, and write its output into README.md
    python scripts/readme_sample.py --check   # exit 1 when README.md no longer has its shape

The run is the README's main job as a new user meets it: `probe bisect` with no config, in a
new folder, on the built-in local cluster and the default ladder, printed at 100 columns. The
interpreter is called through a link at a fixed path (SAMPLE_DIR/.venv), so the sample shows
that path rather than where this checkout happens to be.

The block in README.md is the fenced block after the line MARKER. tests/test_after_run.py
compares its shape with a fresh run's (`shape`: run ids, numbers, timings, column widths and
the machine's own facts in the header may differ; every other line must be the same).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = "<!-- the output below is written by scripts/readme_sample.py from a real run -->"
SAMPLE_DIR = Path("/tmp/threshold-probe")
COLUMNS = 100
COMMAND = ("bisect",)

_RUN_ID = re.compile(r"\d{8}-\d{6}-[a-z-]+-[0-9a-f]{4}")
_NUMBER = re.compile(r"\d[\d,.]*(?: ?(?:ms|s|MB|GB|MiB))?")
_RULE = re.compile(r"([━─═])\1+")


def run_sample(folder: Path = SAMPLE_DIR) -> str:
    """The stdout of `probe bisect` run in a new `folder` (emptied first), as a user reads it."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "probe.toml").write_text("")  # no config from the folders above: the defaults
    venv = folder / ".venv"
    venv.symlink_to(Path(sys.prefix), target_is_directory=True)
    python = venv / "bin" / Path(sys.executable).name
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR", "FORCE_COLOR")}
    env["COLUMNS"] = str(COLUMNS)
    done = subprocess.run(
        [str(python), "-m", "threshold_probe", *COMMAND],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"probe {' '.join(COMMAND)} exited {done.returncode}:\n{done.stderr}")
    return "\n".join(line.rstrip() for line in done.stdout.splitlines()) + "\n"


def readme_block(text: str) -> str:
    """The fenced block after MARKER in the README's text."""
    start = text.index(MARKER)
    fence = text.index("```", start)
    body = text.index("\n", fence) + 1
    end = text.index("\n```", body)
    return text[body : end + 1]


def with_block(text: str, block: str) -> str:
    """The README's text with the fenced block after MARKER replaced by `block`."""
    old = readme_block(text)
    start = text.index(old, text.index(MARKER))
    return text[:start] + block + text[start + len(old) :]


def shape(output: str) -> list[str]:
    """The lines of an output with what differs between two real runs of it taken out: run ids,
    numbers and times, the widths of columns, and the header's facts about the machine (only
    its keys are kept, as their values wrap differently on each machine)."""
    shaped = []
    in_header = False
    for line in output.splitlines():
        if "threshold-probe report" in line and line.startswith("╭"):
            in_header = True
            shaped.append("╭ threshold-probe report")
            continue
        if in_header:
            if line.startswith("╰"):
                in_header = False
                shaped.append("╰")
                continue
            key = line.strip("│ ").split(" ", 1)[0]
            if line.startswith("│ ") and not line.startswith("│  "):
                shaped.append(f"│ {key}")
            continue
        line = _RUN_ID.sub("RUN", line)
        line = _NUMBER.sub("N", line)
        line = _RULE.sub(r"\1", line)
        shaped.append(" ".join(line.split()))
    return shaped


def main(argv: list[str]) -> int:
    output = run_sample()
    text = README.read_text()
    if "--check" in argv:
        if shape(readme_block(text)) != shape(output):
            print("README.md's sample does not have the shape of a real run: run scripts/readme_sample.py")
            return 1
        return 0
    README.write_text(with_block(text, output))
    print(output, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
