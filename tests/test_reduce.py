"""The reducers behind `probe shrink`, with a checker that needs no cluster: both are
deterministic, speculation asks ahead without changing the result, and the text reducer keeps
what ast.unparse would lose."""

from __future__ import annotations

from threshold_probe.reduce import (
    RoundTripLost,
    compiles,
    reduce_ast,
    reduce_statements,
    source_hash,
    speculative_checker,
)

SOURCE = """\
import os

LIMIT = 3


def helper(x):
    return x + 1


def job():
    total = 0
    for i in range(3):
        total += i
    data = [1, 2, 3]
    value = helper(total)
    return value + len(data)
"""

COLUMN_0 = '''\
class Jobs:
    @staticmethod
    def run():
        a = 1
        script = """
print('far side')
"""
        b = a + 1
        return script
'''


def keeps_helper_call(source: str) -> bool:
    """The 'failure': job still calls helper, and helper is still defined."""
    return (
        compiles(source) and "def helper" in source and "def job" in source and "helper(" in source.split("def job")[-1]
    )


def test_the_statement_reducer_keeps_only_what_the_check_needs() -> None:
    out = reduce_statements(SOURCE, keeps_helper_call)
    assert "def helper" in out and "value = helper(total)" in out
    assert "import os" not in out and "LIMIT" not in out and "data" not in out


def test_the_text_reducer_keeps_column_0_lines_that_unparse_would_join() -> None:
    def column_0(source: str) -> bool:
        return compiles(source) and "\nprint('far side')\n" in source

    out = reduce_statements(COLUMN_0, column_0)
    assert "\nprint('far side')\n" in out and "b = a + 1" not in out
    try:
        reduce_ast(COLUMN_0, column_0)
    except RoundTripLost:
        pass
    else:
        raise AssertionError("ast.unparse writes the string on one line: the AST reducer cannot keep it")


def test_speculation_asks_ahead_and_gives_the_same_result() -> None:
    results = {}
    asked: dict[int, list[str]] = {}
    for parallel in (1, 3):
        known: dict[str, bool] = {}
        order: list[str] = []

        def answer(batch: list[str], known: dict[str, bool] = known, order: list[str] = order) -> None:
            for src in batch:
                order.append(src)
                known[source_hash(src)] = keeps_helper_call(src)

        check, spec = speculative_checker(answer, known, compiles, parallel)
        try:
            results[parallel] = reduce_ast(SOURCE, check)
            spec.finish()
        finally:
            if spec.in_child:
                spec.child_exit()
        asked[parallel] = order
    assert results[1] == results[3]
    assert "helper(" in results[1]
    # Everything the sequential reducer asked was asked with speculation too (plus guesses).
    assert set(asked[1]) <= set(asked[3])
    assert len(asked[3]) > len(asked[1])
