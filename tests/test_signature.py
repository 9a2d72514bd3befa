"""Signatures: normalisation of run-specific parts, and --match semantics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threshold_probe.errors import UserError
from threshold_probe.models import Verdict
from threshold_probe.signature import matches, normalise_message, signature


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("name 'helper_23' is not defined", "name 'helper_<n>' is not defined"),
        ("<object at 0x7f3a2b1c9d40>", "<object at <addr>>"),
        (
            "[Errno 2] No such file or directory: '/tmp/tmpk2j3h_x/result_raw.pkl'",
            "[Errno <n>] No such file or directory: '<path>'",
        ),
        ("/scratch/u/job-9912/result_raw.pkl not found", "<path> not found"),
        ("job 1b4e28ba-2fa1-11d2-883f-0016d3cca427 failed", "job <uuid> failed"),
        ("cannot open 'tmpa8z_3kq.py'", "cannot open '<tmp>'"),
        (
            "module threshold_probe_workload_3f2a9c1b4d5e missing",
            "module threshold_probe_workload_<hex> missing",
        ),
        ("sha deadbeef12345678 mismatch", "sha <hex> mismatch"),
        ("code() takes at most 16 arguments (18 given)", "code() takes at most <n> arguments (<n> given)"),
        ("Python 3.8.18 cannot load", "Python <n> cannot load"),
        ("  many\tspaces   here \n second line", "many spaces here"),
        (r"C:\Users\me\AppData\x.pkl not found", "<path> not found"),
        (
            "unsupported operand type(s) for +: 'int' and 'str'",
            "unsupported operand type(s) for +: 'int' and 'str'",
        ),
    ],
)
def test_normalise_message(message: str, expected: str) -> None:
    assert normalise_message(message) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "workload_17() got an unexpected keyword argument '_chunk_range_i'",
            "<func>() got an unexpected keyword argument '_chunk_range_i'",
        ),
        (
            "workload() got an unexpected keyword argument '_chunk_range_i'",
            "<func>() got an unexpected keyword argument '_chunk_range_i'",
        ),
        (
            "make_workload_23.<locals>.workload_23() takes 0 positional arguments but 1 was given",
            "<func>() takes <n> positional arguments but <n> was given",
        ),
        ("Workload21.workload_21() missing 1 required argument", "<func>() missing <n> required argument"),
        ("name 'workload' is not defined", "name '<func>' is not defined"),
        ("unexpected indent (<shipped workload_22>, line 31)", "unexpected indent (<shipped <func>>, line <n>)"),
        (
            "unexpected indent (<shipped features-spec-0a1b2c3d4e>, line 31)",
            "unexpected indent (<shipped <func>>, line <n>)",
        ),
        ("invalid syntax (<default-spec-1234567890>, line 3)", "invalid syntax (<<func>>, line <n>)"),
        # The English word stays: only the generated identifiers are replaced.
        ("the workload ran out of memory", "the workload ran out of memory"),
        ("name 'workloads' is not defined", "name 'workloads' is not defined"),
    ],
)
def test_generated_function_names_are_normalised(message: str, expected: str) -> None:
    assert normalise_message(message) == expected


def test_the_same_failure_of_a_level_and_of_an_isolation_probe_has_one_signature() -> None:
    level = signature("exception", "TypeError", "workload_17() got an unexpected keyword argument '_chunk_range_i'")
    probe = signature("exception", "TypeError", "workload() got an unexpected keyword argument '_chunk_range_i'")
    assert level == probe


def test_signature_is_stable_across_levels_and_short_type() -> None:
    a = signature("deserialize", "_pickle.UnpicklingError", "invalid load key, '\\x00' at 0x55d1")
    b = signature("deserialize", "pickle.UnpicklingError", "invalid load key, '\\x00' at 0x9a0f")
    assert a == b == "deserialize:UnpicklingError:invalid load key, '\\x<n>' at <addr>"
    assert signature("timeout", None, None) == "timeout::"
    assert len(signature("exception", "ValueError", "x" * 1000)) < 200


def fail(cls: str, sig: str, evidence: list[str] | None = None) -> Verdict:
    return Verdict.model_validate(
        {"status": "fail", "class": cls, "signature": sig, "explanation": "e", "evidence": evidence or []}
    )


def test_matches_class_exact_signature_text_and_regex() -> None:
    oom = fail("oom", "oom:MemoryError:", ["MemoryError", "memory limit: 300MB (RLIMIT_AS)"])
    name = fail("name", "name:NameError:name 'helper_<n>' is not defined")
    # A bare class name matches that class only (not a substring of something else).
    assert matches(oom, "oom") and not matches(name, "oom")
    assert matches(oom, "OOM")
    # An exact signature.
    assert matches(name, "name:NameError:name 'helper_<n>' is not defined")
    assert not matches(oom, "name:NameError:name 'helper_<n>' is not defined")
    # Plain text is a case-insensitive substring of signature, class, explanation or evidence.
    assert matches(oom, "rlimit_as") and matches(name, "is not defined")
    assert not matches(name, "MemoryError")
    # Plain text is never a regex: the dot and brackets are literal.
    assert not matches(name, "helper_.*")
    assert matches(name, "helper_<n>")
    # re: is a regex.
    assert matches(name, r"re:helper_<n>'? is not")
    assert matches(oom, r"re:limit: \d+MB")
    assert not matches(oom, r"re:^name:")


def test_only_failures_match_and_bad_regex_is_a_user_error() -> None:
    assert not matches(Verdict(status="pass"), "")
    assert not matches(Verdict(status="skip", evidence=["ssh: refused"]), "refused")
    assert matches(fail("oom", "oom:MemoryError:"), "")
    with pytest.raises(UserError, match="not a valid regular expression"):
        matches(fail("oom", "oom:MemoryError:"), "re:([")


@given(st.text(max_size=300))
def test_normalised_messages_hold_no_digits_and_are_stable(message: str) -> None:
    once = normalise_message(message)
    assert not any(c in "0123456789" for c in once)
    assert normalise_message(once) == once
    assert "\n" not in once and len(once) <= 160


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**6))
def test_levels_and_sizes_do_not_change_a_signature(a: int, b: int) -> None:
    def sig(n: int) -> str:
        return signature("oom", "MemoryError", f"level {n}: cannot allocate {n * 7} bytes in /tmp/job-{n}/x")

    assert sig(a) == sig(b)
