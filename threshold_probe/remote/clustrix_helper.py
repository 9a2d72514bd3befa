"""Far-side helper of the clustrix pipeline: prepare, watch and read ClustriX's job folders.

Usage, with the helper's own job folder as the working directory (it writes its answer there)::

    python clustrix_helper.py prepare WORKDIR PROBE_ID START COUNT   -> prepare.json
    python clustrix_helper.py status ROOT                            -> status.json
    python clustrix_helper.py collect ROOT KILL                      -> collect.json, job_stdout.log,
                                                                        job_stderr.log

``prepare`` makes ROOT = WORKDIR/clustrix/PROBE_ID, the folder ClustriX is told to use as its
``remote_work_dir``. ClustriX 0.1.1's SSH job script runs ``source venv/bin/activate`` in the job
folder and then a bare ``python``, but never creates that venv in SSH mode, and names each job
folder ``job_<unix second>``. So ``prepare`` pre-creates ``ROOT/job_<t>/venv`` for the next COUNT
seconds, each a link to the Python environment of this interpreter (its venv, or one made once
with ``--system-site-packages``): the environment ClustriX's own script expects. It also reports
this interpreter's Python and cloudpickle versions, which are therefore those of the job.

``status`` says whether any process still runs in ROOT (by /proc/PID/cwd) and which job folders
hold a result or an error.

``collect`` (KILL = 1 first SIGKILLs what still runs in ROOT) removes the pre-created folders no
job used, and reports every used job folder: its files with sizes and times, the end of
``job.out`` and ``job.err``, and ``error.pkl`` read with an unpickler that refuses every global,
so it yields only plain data (ClustriX pickles ``{'error': str, 'traceback': str}``). The client
reads only the JSON this writes.

Standard library only; Python 3.8 or newer.
"""

import contextlib
import io
import json
import os
import pickle
import platform
import signal
import subprocess
import sys

READ_BYTES = 256 * 1024
JOB_PREFIX = "job_"


def _write_json(name, data):
    tmp = f"{name}.tmp.{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True, default=repr)
    os.replace(tmp, name)


def _environment(workdir):
    """A folder with bin/activate whose python is this interpreter (or sees its packages)."""
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix) and os.path.isfile(
        os.path.join(sys.prefix, "bin", "activate")
    ):
        return sys.prefix, "this interpreter's venv"
    venv = os.path.join(workdir, "clustrix", "_venv")
    if not os.path.isfile(os.path.join(venv, "bin", "activate")):
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
            check=True,
            timeout=300,
        )
    return venv, "a venv made with --system-site-packages"


def prepare(workdir, probe_id, start, count):
    workdir = os.path.abspath(os.path.expanduser(workdir))
    root = os.path.join(workdir, "clustrix", probe_id)
    os.makedirs(root, exist_ok=True)
    venv, how = _environment(workdir)
    for t in range(start, start + count):
        job = os.path.join(root, f"{JOB_PREFIX}{t}")
        os.makedirs(job, exist_ok=True)
        link = os.path.join(job, "venv")
        if not os.path.lexists(link):
            os.symlink(venv, link)
    _write_json(
        "prepare.json",
        {"root": root, "venv": venv, "venv_how": how, "home": os.path.expanduser("~"), "versions": _versions()},
    )


def _versions():
    """This interpreter's Python and cloudpickle versions: those of ClustriX's job, whose venv
    links to this interpreter's environment."""
    try:
        import cloudpickle

        cp = getattr(cloudpickle, "__version__", None)
    except Exception:  # missing or broken: either way the job cannot load a function
        cp = None
    return {"python": platform.python_version(), "cloudpickle": cp}


def _processes_in(root):
    """PIDs (other than this one) whose working directory is ROOT or below it."""
    found = []
    me = os.getpid()
    prefix = root.rstrip("/") + "/"
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            cwd = os.readlink(f"/proc/{name}/cwd")
        except OSError:
            continue
        if cwd == root or cwd.startswith(prefix):
            found.append(int(name))
    return found


def _job_dirs(root):
    try:
        names = sorted(n for n in os.listdir(root) if n.startswith(JOB_PREFIX))
    except FileNotFoundError:
        return []
    return [os.path.join(root, n) for n in names]


def _used(job):
    try:
        return any(n != "venv" for n in os.listdir(job))
    except OSError:
        return False


def status(root):
    jobs = []
    for job in _job_dirs(root):
        if not _used(job):
            continue
        jobs.append(
            {
                "dir": job,
                "submitted": os.path.exists(os.path.join(job, "job.sh")),
                "result": os.path.exists(os.path.join(job, "result.pkl")),
                "error": os.path.exists(os.path.join(job, "error.pkl")),
                "stderr_bytes": _size(os.path.join(job, "job.err")),
            }
        )
    _write_json("status.json", {"root": root, "running": _processes_in(root), "jobs": jobs})


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _tail(path):
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - READ_BYTES))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain data only: any class or function reference is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _read_error_pickle(path):
    try:
        with open(path, "rb") as fh:
            data = fh.read(READ_BYTES * 4)
    except OSError as exc:
        return {"unreadable": f"{type(exc).__name__}: {exc}"}
    try:
        value = _PlainUnpickler(io.BytesIO(data)).load()
    except Exception as exc:
        return {"unreadable": f"{type(exc).__name__}: {exc}"}
    if isinstance(value, dict):
        return {str(k): v if isinstance(v, (str, int, float, bool, type(None))) else repr(v) for k, v in value.items()}
    return {"value": repr(value)[:4000]}


def _kill(pids):
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def collect(root, kill):
    killed = []
    if kill:
        killed = _processes_in(root)
        _kill(killed)
    jobs = []
    out_parts, err_parts = [], []
    for job in _job_dirs(root):
        if not _used(job):
            # A pre-created folder no job used: only the venv link is in it.
            try:
                os.unlink(os.path.join(job, "venv"))
                os.rmdir(job)
            except OSError:
                pass
            continue
        files = {}
        for name in sorted(os.listdir(job)):
            path = os.path.join(job, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            files[name] = {"size": st.st_size, "mtime": st.st_mtime, "link": os.path.islink(path)}
        entry = {
            "dir": job,
            "files": files,
            "stdout": _tail(os.path.join(job, "job.out")),
            "stderr": _tail(os.path.join(job, "job.err")),
        }
        if "error.pkl" in files:
            entry["error_pkl"] = _read_error_pickle(os.path.join(job, "error.pkl"))
        jobs.append(entry)
        if entry["stdout"]:
            out_parts.append(entry["stdout"])
        if entry["stderr"]:
            err_parts.append(entry["stderr"])
    with open("job_stdout.log", "w") as fh:
        fh.write("".join(out_parts))
    with open("job_stderr.log", "w") as fh:
        fh.write("".join(err_parts))
    _write_json("collect.json", {"root": root, "killed": killed, "jobs": jobs})


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write("usage: clustrix_helper.py prepare|status|collect ...\n")
        return 2
    cmd = args[0]
    if cmd == "prepare" and len(args) == 5:
        prepare(args[1], args[2], int(args[3]), int(args[4]))
    elif cmd == "status" and len(args) == 2:
        status(args[1])
    elif cmd == "collect" and len(args) == 3:
        collect(args[1], args[2] == "1")
    else:
        sys.stderr.write(f"clustrix_helper.py: bad arguments {args!r}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
