"""Parsing of the memory and duration strings users write."""

from __future__ import annotations

import re

from threshold_probe.errors import UserError

_MEM_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)?\s*$", re.IGNORECASE)
_MEM_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_memory(text: str | int) -> int:
    """Bytes from '4GB', '4G', '4096M', '4GiB', '300MB' or a plain byte count.

    Like sbatch, a decimal suffix (GB) is read as binary (GiB): cluster users mean the same thing.
    """
    if isinstance(text, int):
        return text
    m = _MEM_RE.match(text)
    if not m:
        raise UserError(f"cannot read memory size {text!r}: write it like 4GB, 4096M or 4GiB")
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit == "" and not (m.group(3) or "").lower().startswith("b") and "." not in m.group(1):
        # A bare number is megabytes, as in sbatch --mem.
        return int(number * 1024**2)
    return int(number * _MEM_FACTORS[unit])


def parse_memory_limit(text: str | int, name: str = "--memory") -> int:
    """A memory limit in bytes: like parse_memory, and more than zero (UserError otherwise)."""
    if isinstance(text, str) and text.strip().startswith("-"):
        raise UserError(f"{name} {text.strip()}: a memory limit must be more than zero")
    value = parse_memory(text)
    if value <= 0:
        shown = text.strip() if isinstance(text, str) else text
        raise UserError(f"{name} {shown}: a memory limit must be more than zero (write it like 300MB or 4GB)")
    return value


def format_memory(n_bytes: int) -> str:
    """A short human form, e.g. 300MB or 4GB."""
    if n_bytes and n_bytes % 1024**3 == 0:
        return f"{n_bytes // 1024**3}GB"
    if n_bytes < 1024**2:
        # A limit this small is a mistake worth showing as written, not as "0MB".
        return f"{-(-n_bytes // 1024)}KB"
    return f"{round(n_bytes / 1024**2)}MB"


def to_sbatch_mem(n_bytes: int) -> str:
    """The --mem value sbatch accepts (whole megabytes, with the M suffix)."""
    return f"{max(1, -(-n_bytes // 1024**2))}M"


_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$", re.IGNORECASE)


def parse_duration(text: str | float | int) -> float:
    """Seconds from '90s', '2m', '1h', '00:10:00', '1-00:00:00' (SLURM) or a number of seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    t = text.strip()
    days = 0
    if "-" in t and ":" in t:
        d, t = t.split("-", 1)
        if not d.isdigit():
            raise UserError(f"cannot read duration {text!r}")
        days = int(d)
    if ":" in t:
        parts = t.split(":")
        if not all(p.isdigit() for p in parts) or len(parts) > 3:
            raise UserError(f"cannot read duration {text!r}: write it like 90s, 2m or 00:10:00")
        nums = [int(p) for p in parts]
        # SLURM reads MM:SS for two fields and HH:MM:SS for three.
        while len(nums) < 3:
            nums.insert(0, 0)
        h, mi, s = nums
        return float(days * 86400 + h * 3600 + mi * 60 + s)
    m = _DUR_RE.match(t)
    if not m:
        raise UserError(f"cannot read duration {text!r}: write it like 90s, 2m or 00:10:00")
    value, unit = float(m.group(1)), (m.group(2) or "s").lower()
    factor = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}[unit]
    return value * factor


def parse_time_limit(text: str | float | int, name: str = "--time") -> float:
    """A time limit in seconds: like parse_duration, and more than zero (UserError otherwise)."""
    if isinstance(text, str) and text.strip().startswith("-"):
        raise UserError(f"{name} {text.strip()}: a time limit must be more than zero")
    value = parse_duration(text)
    if value <= 0:
        shown = text.strip() if isinstance(text, str) else text
        raise UserError(f"{name} {shown}: a time limit must be more than zero (write it like 90s or 10m)")
    return value


def to_slurm_time(seconds: float) -> str:
    """The --time value sbatch accepts (D-HH:MM:SS, rounded up to a whole second)."""
    total = int(-(-seconds // 1))
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}" if d else f"{h:02d}:{m:02d}:{s:02d}"
