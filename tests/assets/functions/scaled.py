"""A user's function with a size argument: it allocates `kib` KiB, so a memory limit stops it."""

import time


def allocate(kib: int, fill: int = 1, hold: float = 0.0) -> dict:
    block = bytearray(kib * 1024)
    block[::4096] = bytes([fill]) * len(block[::4096])
    # Held for a while: a scheduler that samples memory (SLURM without cgroups) must see it.
    time.sleep(hold)
    return {"kib": kib, "bytes": len(block)}
