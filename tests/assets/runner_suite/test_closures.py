"""Payloads that read values of the test that defines them."""


def run_remote(func):
    raise RuntimeError("the runner is not installed here")


def test_level7_scaled():
    factor = 3

    def level7():
        return [factor * n for n in range(4)]

    assert run_remote(level7)[-1] == 9


def test_level8_config():
    settings = {"retries": 2, "name": "probe"}
    prefix = settings["name"].upper()

    def level8():
        return f"{prefix}-{settings['retries']}"

    assert run_remote(level8) == "PROBE-2"


def test_level9_threshold():
    limit = 10
    values = list(range(limit))

    def level9():
        return [v for v in values if v < limit // 2]

    assert len(run_remote(level9)) == 5
