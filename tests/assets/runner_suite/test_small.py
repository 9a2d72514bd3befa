"""Small payloads, as the first levels of a runner's suite define them."""

from __future__ import annotations


def run_remote(func):
    """The runner under test: the suite hands it each payload (never called by triage)."""
    raise RuntimeError("the runner is not installed here")


def test_level1_arithmetic():
    def level1():
        return sum(range(10))

    assert run_remote(level1) == 45


def test_level2_strings():
    def level2():
        words = ["alpha", "beta", "gamma"]
        return "-".join(sorted(words))

    assert run_remote(level2) == "alpha-beta-gamma"


class TestLevels:
    def test_level3_dict(self):
        def level3():
            counts = {}
            for word in ["a", "b", "a", "c", "b", "a"]:
                counts[word] = counts.get(word, 0) + 1
            return counts

        assert run_remote(level3)["a"] == 3


def make_payload():
    def payload():
        return [n * n for n in range(5)]

    return payload


def helper(n):
    return n + 1


def test_with_fixture(tmp_path):
    def writes_there():
        return str(tmp_path)

    assert run_remote(writes_there)
