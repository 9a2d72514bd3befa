"""Source is parsed in several threads at once (probes are built and measured in parallel): no
parse may fail because another thread parsed at the same time.

CPython before 3.12 tracks the depth of the tree `ast.parse` builds per interpreter: a thread
switch in the middle of a parse, which the garbage collector's callbacks cause here as they do in
a real run, made another thread's parse fail with "SystemError: AST constructor recursion depth
mismatch" (`probe triage --pipeline source -P 2` exited 1 with an internal error).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from threshold_probe.metrics import measure_source
from threshold_probe.pipelines.source import module_preamble

SOURCE = (
    "import os\nTABLE = "
    + "[" * 60
    + "1"
    + "]" * 60
    + "\n"
    + "\n".join(f"def f{i}(a):\n    if a:\n        return [[a] for a in range({i})]\n" for i in range(20))
)


@pytest.fixture
def switching_collector() -> Iterator[None]:
    """The collector runs often and gives the GIL away each time, so threads switch mid-parse."""
    threshold = gc.get_threshold()

    def yield_gil(phase: str, info: dict[str, int]) -> None:
        time.sleep(0)

    gc.set_threshold(5)
    gc.callbacks.append(yield_gil)
    try:
        yield
    finally:
        gc.callbacks.remove(yield_gil)
        gc.set_threshold(*threshold)


@pytest.mark.parametrize(
    "parse",
    [lambda: module_preamble(SOURCE), lambda: measure_source(SOURCE)],
    ids=["source-pipeline-preamble", "static-metrics"],
)
def test_source_parsed_in_several_threads_at_once_never_fails(
    switching_collector: None, parse: Callable[[], object]
) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        for _ in range(20):
            try:
                parse()
            except Exception as exc:  # any failure is the fault under test
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
