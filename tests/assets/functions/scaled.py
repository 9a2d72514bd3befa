"""A user's function with a size argument: it allocates `kib` KiB, so a memory limit stops it."""


def allocate(kib: int, fill: int = 1) -> dict:
    block = bytearray(kib * 1024)
    block[::4096] = bytes([fill]) * len(block[::4096])
    return {"kib": kib, "bytes": len(block)}
