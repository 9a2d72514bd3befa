"""Memory and duration strings as users write them, and the forms sbatch accepts."""

from __future__ import annotations

import pytest

from threshold_probe.errors import UserError
from threshold_probe.units import parse_duration, parse_memory, to_sbatch_mem, to_slurm_time

GIB = 1024**3


@pytest.mark.parametrize("text", ["4GB", "4G", "4096M", "4096MB", "4GiB", "4 GB", "4gb", "4096"])
def test_four_gigabytes_in_every_form(text: str) -> None:
    assert parse_memory(text) == 4 * GIB
    assert to_sbatch_mem(parse_memory(text)) == "4096M"


def test_small_and_fractional_sizes() -> None:
    assert parse_memory("300MB") == 300 * 1024**2
    assert parse_memory("1.5GiB") == int(1.5 * GIB)
    assert to_sbatch_mem(1) == "1M"  # sbatch takes whole megabytes: round up, never to zero


@pytest.mark.parametrize("text", ["", "lots", "4 XB", "-1G"])
def test_unreadable_sizes_are_user_errors(text: str) -> None:
    with pytest.raises(UserError, match="cannot read memory size"):
        parse_memory(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("2m", 120), ("1h", 3600), ("00:10:00", 600), ("10:00", 600), ("1-00:00:00", 86400), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_slurm_time_rounds_up_and_uses_days() -> None:
    assert to_slurm_time(59.2) == "00:01:00"
    assert to_slurm_time(90061) == "1-01:01:01"


@pytest.mark.parametrize("text", ["soon", "1:2:3:4", "x-00:00:00"])
def test_unreadable_durations_are_user_errors(text: str) -> None:
    with pytest.raises(UserError, match="cannot read duration"):
        parse_duration(text)
