"""A sibling module, imported by localdep.py from its own folder."""


def double(x: int) -> int:
    return 2 * x
