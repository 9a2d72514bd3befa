"""The HTML report of a real run, rendered by headless Chromium: its content and a screenshot."""

from __future__ import annotations

import re
import struct
from html import unescape
from pathlib import Path

from tests.test_report_support import MEMORY_LADDER, chromium_dom, chromium_screenshot, probe, real_sweep


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_html_report_renders_in_chromium(tmp_path: Path) -> None:
    data = real_sweep(tmp_path, "300MB")
    ff = data["first_fail"]
    page = tmp_path / "report.html"
    res = probe(tmp_path, "report", data["run_id"], "--format", "html", "-o", str(page))
    assert res.code == 0, res.err

    dom = chromium_dom(page, tmp_path / "profile")
    text = unescape(re.sub(r"<[^>]+>", " ", dom))
    assert f"level {ff} is the first to fail (oom); level {ff - 1} is the last to pass" in text
    # Every level has a row in the laid-out table, with its verdict.
    rows = re.findall(r'<tr[^>]*data-level="(\d+)"[^>]*>(.*?)</tr>', dom, re.S)
    assert [int(n) for n, _ in rows] == list(range(1, 9))
    verdicts = {int(n): ("fail" if ">fail<" in body else "pass" if ">pass<" in body else "?") for n, body in rows}
    assert verdicts[ff] == "fail" and verdicts[ff - 1] == "pass"
    # The charts were parsed as SVG, with a bar per level and a stacked bar per probe.
    assert dom.count("<svg") >= 7
    for title in ("LOC", "subprocess calls", "CC", "pickle bytes", "peak memory", "wall time", "seconds per stage"):
        assert f">{title}</text>" in dom
    # The stderr of the failing probe, in full and escaped, open for the first failure.
    assert re.search(rf'<details open="" class="stderr" data-level="{ff}">', dom)
    assert "MemoryError" in text and "threshold-probe runner: execute failed" in text

    png = chromium_screenshot(page, tmp_path / "report.png", tmp_path / "profile", "1280,2400")
    assert _png_size(png) == (1280, 2400)
    # A blank page compresses to a few kB; charts, tables and text give far more.
    assert len(png) > 60_000


def test_isolate_run_shows_dimension_attribution(tmp_path: Path) -> None:
    res = probe(
        tmp_path, "bisect", "--ladder", str(MEMORY_LADDER), "--memory", "300MB", "--isolate", "--json", "--quiet"
    )
    assert res.code == 0, res.err
    data = res.json()
    assert data["isolate"]["drivers"] == ["memory_mb"]
    page = tmp_path / "isolate.html"
    assert probe(tmp_path, "report", "--format", "html", "-o", str(page)).code == 0
    dom = chromium_dom(page, tmp_path / "profile")
    assert "Dimension attribution (isolate)" in dom
    # memory_mb is drawn as the driver (bold, red bar); loc, which did not matter, is not.
    assert re.search(r'font-weight="600"[^>]*>memory_mb</text>', dom)
    assert re.search(r'<text[^>]*fill="#1f2328">loc</text>', dom)
    # The values isolation tried for memory_mb, pass and fail, around its threshold.
    dots = re.findall(r"<title>memory_mb = ([\d.]+): (pass|fail)</title>", dom)
    threshold = data["isolate"]["findings"][[f["dimension"] for f in data["isolate"]["findings"]].index("memory_mb")][
        "threshold"
    ]
    assert dots and all((float(v) >= threshold) == (verdict == "fail") for v, verdict in dots)
    # Isolate probes' stderr is labelled as such, after the first failing level's.
    assert re.search(rf'<details open="" class="stderr" data-level="{data["first_fail"]}">', dom)
    assert "isolate probe " in dom
