"""A user's file that imports a module from its own folder, as `python localdep.py` allows."""

import mylocalhelper


def uses_local_module() -> dict:
    return {"doubled": mylocalhelper.double(21)}


def scaled(n: int, label: str = "x") -> dict:
    return {"n": n, "label": label, "items": len(list(range(n)))}


class Trainer:
    @staticmethod
    def step() -> int:
        return 7


NOT_A_FUNCTION = 3
