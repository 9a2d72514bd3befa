"""Staged files and work folders that can be trusted, on this machine and on a far side.

A shared file (the runner, a launcher, a helper) is staged once under `shared/<hash>/<name>`,
where `<hash>` is the first 16 hex digits of the SHA-256 of its content. A staged file is used
only when it is a regular file of ours, not writable by others, whose content still has that
hash; anything else (a file a full disk cut short, a file another user planted, a file changed
in place) is replaced. A new file is written to a fresh temporary name in the same folder and
renamed over the final name, so a reader sees either the whole old file or the whole new one.

A workdir is used only when it belongs to the user and no other user can write to it: otherwise
another user could swap a staged file or a job's payload between staging and use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shlex
import stat
from pathlib import Path

from threshold_probe.errors import InfraError

#: Hex digits of the SHA-256 that name a shared file's folder.
DIGEST_CHARS = 16


class WorkdirError(InfraError):
    """The workdir cannot be made, or is not safe to use (another user's, or writable by others)."""


def content_digest(data: bytes) -> str:
    """The name of a shared file's folder: the start of the SHA-256 of its content."""
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def workdir_problem(path: Path) -> str | None:
    """Why `path` must not be used as a work folder (not ours, or writable by others); None when fine."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"{exc.strerror or exc}"
    if not stat.S_ISDIR(info.st_mode):
        return "not a folder"
    if info.st_uid != os.geteuid():
        return f"owned by {_owner_name(info.st_uid)}, not by {_owner_name(os.geteuid())}"
    if info.st_mode & 0o022:
        return f"writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def secure_workdir(path: Path, what: str) -> None:
    """Create `path` private (0700) when missing; InfraError (exit 3) when it is not safe to use."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    except OSError as exc:
        raise WorkdirError(f"{what}: cannot create workdir {path}: {exc.strerror or exc}") from None
    problem = workdir_problem(path)
    if problem is not None:
        raise WorkdirError(f"{what}: refusing workdir {path}: {problem}")


def _private_folder(path: Path) -> None:
    """Make `path` (a folder inside a checked workdir) if missing; OSError when it is not ours."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise PermissionError(f"{path} is not a private folder of this user")


def _is_good_copy(path: Path, data: bytes) -> bool:
    """The file at `path` is a regular file of ours, not writable by others, holding exactly `data`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & 0o022
            or info.st_size != len(data)
        ):
            return False
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(len(data) + 1) == data
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` atomically: a fresh temporary name (O_EXCL, O_NOFOLLOW), then rename.

    A failure (a full disk) removes the temporary file, so no partial file is left behind.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def stage_shared(workdir: Path, name: str, data: bytes, mode: int = 0o600) -> Path:
    """`workdir/shared/<hash>/<name>`, verified or written anew; OSError when it cannot be written."""
    shared = workdir / "shared"
    _private_folder(shared)
    folder = shared / content_digest(data)
    _private_folder(folder)
    path = folder / Path(name).name
    if not _is_good_copy(path, data):
        write_private(path, data, mode)
    return path


#: Exit status of `remote_workdir_guard` when the workdir is not safe; its stderr says why.
UNSAFE_WORKDIR = 86


def remote_workdir_guard() -> str:
    """Shell lines, run inside the workdir, that stop with UNSAFE_WORKDIR and one line on stderr
    (`owned by X, not by Y` or `writable by others (mode M)`) when it is not safe to use."""
    return (
        "if [ ! -O . ]; then "
        'echo "owned by $(stat -L -c %U .), not by $(id -un)" >&2; '
        f"exit {UNSAFE_WORKDIR}; fi; "
        'if [ -n "$(find . -maxdepth 0 -perm /022)" ]; then '
        'echo "writable by others (mode $(stat -L -c %a .))" >&2; '
        f"exit {UNSAFE_WORKDIR}; fi"
    )


def remote_stage_commands(incoming: str, final: str, data: bytes) -> str:
    """Shell lines that move a shared file just unpacked at `incoming` to `final` unless `final`
    is already a good copy (a regular file of this user with the right SHA-256).

    Both paths are relative to the current folder and in the same folder. A damaged or foreign
    `final` is replaced by the rename; a good one is kept and `incoming` removed.
    """
    digest = hashlib.sha256(data).hexdigest()
    f, i = shlex.quote(final), shlex.quote(incoming)
    good = f'{{ [ -f {f} ] && [ ! -L {f} ] && [ -O {f} ] && [ "$(sha256sum < {f} | cut -c1-64)" = {digest} ]; }}'
    return f"if {good}; then rm -f -- {i}; else mv -f -- {i} {f}; fi"


def remote_verify_script(shared: str) -> str:
    """A shell script checking every `shared/<hash>/<name>` file against its hash and owner.

    It removes each damaged or foreign file (the next probe stages it again) and prints one line
    `BAD <hash>/<name> <size> <why>` for each; `OK <n>` at the end.
    """
    q = shlex.quote(shared)
    return (
        f"cd -- {q} 2>/dev/null || {{ echo 'OK 0'; exit 0; }}; n=0; "
        'for f in */*; do [ -e "$f" ] || [ -L "$f" ] || continue; n=$((n+1)); '
        'd=${f%%/*}; why=""; '
        'if [ -L "$f" ] || [ ! -f "$f" ]; then why="not a regular file"; '
        'elif [ ! -O "$f" ]; then why="owned by another user"; '
        f'elif [ "$(sha256sum < "$f" | cut -c1-{DIGEST_CHARS})" != "$d" ]; then '
        'why="content does not match its hash"; fi; '
        'if [ -n "$why" ]; then s=$(wc -c < "$f" 2>/dev/null || echo 0); '
        'echo "BAD $f $s $why"; rm -f -- "$f"; fi; done; echo "OK $n"'
    )


__all__ = [
    "UNSAFE_WORKDIR",
    "WorkdirError",
    "content_digest",
    "remote_stage_commands",
    "remote_verify_script",
    "remote_workdir_guard",
    "secure_workdir",
    "stage_shared",
    "workdir_problem",
    "write_private",
]
