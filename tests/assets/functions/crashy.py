"""A user's functions that fail in the three ways a traceback must point at: raise, crash, hang."""

import ctypes
import time


def raises() -> float:
    data = [1, 2]
    return data[0] / (len(data) - 2)


def segfaults() -> int:
    value = 1
    return ctypes.string_at(0) + value


def sleeps() -> int:
    for _ in range(600):
        time.sleep(0.5)
    return 1
