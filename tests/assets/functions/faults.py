"""User functions with real faults, probed with `probe run --function`."""

import os


def raises() -> dict:
    data = {"values": [1, 2, 3]}
    return {"ratio": data["values"][0] / (len(data["values"]) - 3)}


def exits_quietly() -> dict:
    os._exit(0)


def fine() -> dict:
    return {"answer": 42}
