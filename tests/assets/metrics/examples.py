"""Hand-counted examples for the metrics tests; the counts are in expected.json."""

import os
import subprocess as sp
from subprocess import check_output as co

LIMIT = 10


def plain():
    return 1


def runs_things(path):
    """Run three commands."""
    # first a shell one
    os.system("true")
    out = sp.run(["echo", "hi"], capture_output=True)
    text = co(("echo", "x"))
    if out.returncode == 0 and text:
        return {"out": out.stdout, "items": [1, 2, {"k": 3}]}
    return [LIMIT, path]


def outer(n):
    scale = 3
    offset = 1

    def inner(x):
        return x * scale + offset + n

    class Box:
        size = scale

        def get(self):
            return scale

    return inner, Box


class Service:
    def method(self, items):
        total = 0
        for item in items:
            while item > 0:
                try:
                    item -= 1
                except ValueError:
                    break
                else:
                    total += 1
            if item:
                pass
            elif total:
                total = 0
            else:
                with open(os.devnull) as fh:
                    fh.read()
        return total


def uses_global():
    global LIMIT
    LIMIT += 1
    data = {1, 2, 3}
    squares = [x * x for x in data if x > LIMIT]
    return squares, lambda y: y + LIMIT


async def spawn():
    import asyncio

    proc = await asyncio.create_subprocess_exec("true")
    return await proc.wait()


def accumulates(rows):
    totals = {}
    seen = []
    for row in rows:
        seen.append(row)
        totals[row] = [{}]
    return totals, seen
