"""The far-side runner: load a pickled function, run it, and report what happened as JSON.

Usage, with the job folder as the working directory::

    python runner.py payload.pkl

Needs only the standard library and cloudpickle, and runs on Python 3.8 or newer. The payload is
either a callable (called with no arguments) or a dict ``{"func": f, "args": [...], "kwargs": {...}}``.

It writes two files in the working directory, each atomically (a temporary name, then os.replace):

``meta.json`` (always; first written before loading the payload, so a hard kill leaves evidence)
    ``status`` ("started", "running", "ok" or "error"), ``stage`` (the stage running or failed:
    "setup", "deserialize", "execute" or "serialize"), ``t`` (time.time() stamps: ``runner_start``,
    ``deserialize_start``/``_end``, ``execute_start``/``_end``, ``serialize_start``/``_end``,
    ``runner_end``), peak RSS of the process and its children and its peak address space in KB,
    CPU times, the exception (type, module, message, traceback, stage), the Python and cloudpickle
    versions, hostname, pid, the resource limits in force, and the planned exit code.

``result.json`` (only on success)
    ``type``, ``size`` (bytes of the JSON form, or of the repr when the result is not JSON-able),
    ``encoding`` ("json" or "repr"), ``repr`` (at most 200 characters), ``sha256`` (of the JSON or
    repr bytes) and ``pickle_size``.

A result "could not be serialized" when ``cloudpickle.dumps(result)`` fails, because that is what
real runners do with a result (a generator, a lock, an open socket): stage "serialize". A result
that pickles but is not JSON-able is fine; its summary is built from its repr instead.

The runner never writes a pickle for the client to load.

Other far-side runners reuse this module (``source_runner.py`` subclasses ``Runner`` and calls
``summarize`` and ``_write_json``), so those names and the meta.json format are kept stable.

Exit codes:

== ==========================================================================
 0 success: the function returned and its result was serialized
10 setup: bad usage, or the payload file could not be read
11 deserialize: the payload could not be loaded (cloudpickle missing, version difference)
12 execute: the function raised (any exception, MemoryError and SystemExit included)
13 serialize: the result could not be pickled
14 meta.json could not be written at the end (for example a full disk)
== ==========================================================================
"""

# The first statement: the runner's start as close to interpreter start-up as possible.
import time

_RUNNER_START = time.time()

# Only what the runner needs before the workload, and nothing cloudpickle does not import
# anyway: every import here is paid by every probe. No socket (os.uname() names the host) and
# no hashlib (it loads OpenSSL; sha256() below uses the built-in module).
import contextlib  # noqa: E402
import faulthandler  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402

try:  # pragma: no cover - resource exists on every POSIX system
    import resource
except ImportError:  # pragma: no cover
    resource = None  # type: ignore[assignment]

EXIT_OK = 0
EXIT_SETUP = 10
EXIT_DESERIALIZE = 11
EXIT_EXECUTE = 12
EXIT_SERIALIZE = 13
EXIT_META = 14

EXIT_CODES = {
    "setup": EXIT_SETUP,
    "deserialize": EXIT_DESERIALIZE,
    "execute": EXIT_EXECUTE,
    "serialize": EXIT_SERIALIZE,
}

META_NAME = "meta.json"
RESULT_NAME = "result.json"
REPR_LIMIT = 200
TRACEBACK_LIMIT = 20000

# Kept aside so that the runner can still write meta.json after a MemoryError.
_RESERVE = bytearray(1024 * 1024)


def _write_json(name, data):
    """Write `data` as JSON to `name` atomically: a temporary name, then os.replace."""
    tmp = f"{name}.tmp.{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True, default=repr)
        fh.flush()
    os.replace(tmp, name)


def _proc_status_kb(field):
    """One KB field of /proc/self/status, or None where there is no /proc."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _vm_hwm_kb():
    """This process's own peak RSS from /proc (KB), or None where there is no /proc.

    Linux keeps ru_maxrss across execve, so a runner started by a large parent would report the
    parent's peak; VmHWM belongs to this process image alone.
    """
    return _proc_status_kb("VmHWM")


def _rusage():
    """Peak RSS (KB) and CPU seconds of this process and its waited-for children."""
    if resource is None:  # pragma: no cover
        return {}
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    # ru_maxrss is KB on Linux and bytes on macOS.
    scale = 1.0 / 1024 if sys.platform == "darwin" else 1.0
    return {
        "rss_peak_kb_self": _vm_hwm_kb() or int(me.ru_maxrss * scale),
        "rss_peak_kb_children": int(kids.ru_maxrss * scale),
        # Peak address space: what RLIMIT_AS limits, and so the floor a memory limit needs there.
        "vm_peak_kb_self": _proc_status_kb("VmPeak"),
        "cpu": {
            "user": me.ru_utime,
            "system": me.ru_stime,
            "children_user": kids.ru_utime,
            "children_system": kids.ru_stime,
        },
    }


def _limits():
    """The resource limits in force, as the far side sees them (None means unlimited)."""
    out = {}
    if resource is not None:
        for name in ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE"):
            if hasattr(resource, name):
                try:
                    soft = resource.getrlimit(getattr(resource, name))[0]
                except (OSError, ValueError):  # pragma: no cover
                    continue
                out[name] = None if soft == resource.RLIM_INFINITY else soft
    if hasattr(os, "sched_getaffinity"):
        with contextlib.suppress(OSError):
            out["cpus"] = len(os.sched_getaffinity(0))
    return out


def _cloudpickle_version():
    mod = sys.modules.get("cloudpickle")
    return getattr(mod, "__version__", None) if mod is not None else None


def _describe_exception(exc, stage):
    """The exception as plain data: type, module, message and the full traceback."""
    cls = type(exc)
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the failure
        message = "<str() failed>"
    try:
        tb_obj = exc.__traceback__
        if stage == "execute" and tb_obj is not None and tb_obj.tb_next is not None:
            tb_obj = tb_obj.tb_next  # the runner's own frame says nothing about the workload
        tb = "".join(traceback.format_exception(cls, exc, tb_obj))
    except Exception:  # pragma: no cover
        tb = "<traceback unavailable>"
    if len(tb) > TRACEBACK_LIMIT:
        # Keep both ends: the outermost call and the raising frame.
        half = TRACEBACK_LIMIT // 2
        tb = tb[:half] + "\n[... traceback truncated ...]\n" + tb[-half:]
    return {
        "type": cls.__name__,
        "module": cls.__module__,
        "qualname": getattr(cls, "__qualname__", cls.__name__),
        "message": message,
        "traceback": tb,
        "stage": stage,
    }


class Runner:
    """One run of one payload; `meta` is what meta.json holds."""

    def __init__(self, payload_path):
        self.payload_path = os.path.abspath(payload_path)
        # Absolute paths, fixed at start: a workload that changes directory must not move the evidence.
        self.meta_path = os.path.abspath(META_NAME)
        self.result_path = os.path.abspath(RESULT_NAME)
        self.meta = {
            "schema": 1,
            "status": "started",
            "stage": "setup",
            "t": {"runner_start": _RUNNER_START},
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "hostname": os.uname().nodename,
            "python": platform.python_version(),
            "python_full": sys.version,
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "platform": sys.platform,
            "cwd": os.getcwd(),
            "cloudpickle": None,
            "payload": payload_path,
            "payload_size": None,
            "limits": _limits(),
            "exception": None,
            "exit_code": None,
        }

    def stamp(self, name):
        self.meta["t"][name] = time.time()

    def checkpoint(self, status, stage):
        """Write meta.json now, so that a hard kill in the next stage leaves this much evidence."""
        self.meta["status"] = status
        self.meta["stage"] = stage
        self.meta["cloudpickle"] = _cloudpickle_version()
        self.meta.update(_rusage())
        _write_json(self.meta_path, self.meta)

    def fail(self, exc, stage):
        """Record an exception in `stage`; returns the exit code for that stage."""
        global _RESERVE
        _RESERVE = None  # give the memory back first: this may be a MemoryError
        self.meta["exception"] = _describe_exception(exc, stage)
        try:
            # stderr carries the traceback too, as any runner's log would.
            sys.stderr.write(f"threshold-probe runner: {stage} failed\n")
            sys.stderr.write(self.meta["exception"]["traceback"])
            sys.stderr.flush()
        except Exception:  # pragma: no cover - a closed stderr must not hide the failure
            pass
        self.meta["status"] = "error"
        self.meta["stage"] = stage
        return EXIT_CODES[stage]

    def finish(self, code):
        """Write the final meta.json and return the exit code."""
        self.stamp("runner_end")
        self.meta["exit_code"] = code
        self.meta["cloudpickle"] = _cloudpickle_version()
        self.meta.update(_rusage())
        try:
            _write_json(self.meta_path, self.meta)
        except Exception as exc:  # a full disk or quota: say so on stderr, the only channel left
            sys.stderr.write(f"threshold-probe runner: cannot write {META_NAME}: {type(exc).__name__}: {exc}\n")
            return EXIT_META if code == EXIT_OK else code
        return code

    def run(self):
        """Deserialize, execute, serialize; returns the exit code."""
        try:
            self.checkpoint("started", "setup")
        except Exception as exc:
            sys.stderr.write(f"threshold-probe runner: cannot write {META_NAME}: {type(exc).__name__}: {exc}\n")
            sys.stderr.flush()
            return EXIT_META

        # --- deserialize ---------------------------------------------------------------
        self.stamp("deserialize_start")
        try:
            with open(self.payload_path, "rb") as fh:
                data = fh.read()
            self.meta["payload_size"] = len(data)
        except BaseException as exc:
            return self.finish(self.fail(exc, "setup"))
        try:
            # Imported here so that a missing cloudpickle is a deserialize failure on record.
            import cloudpickle

            # On record before loading: an interpreter that crashes on a payload of another Python
            # version (SIGSEGV, no exception) still leaves both versions and the stage behind.
            with contextlib.suppress(Exception):
                self.checkpoint("started", "deserialize")
            payload = cloudpickle.loads(data)
            del data
            func, args, kwargs = _unpack(payload)
        except BaseException as exc:
            self.stamp("deserialize_end")
            return self.finish(self.fail(exc, "deserialize"))
        with contextlib.suppress(Exception):  # tracebacks without file names are still tracebacks
            attach_source(func, os.path.dirname(os.path.abspath(self.payload_path)))
        self.stamp("deserialize_end")
        with contextlib.suppress(Exception):  # the final write will report it
            self.checkpoint("running", "execute")

        # --- execute -------------------------------------------------------------------
        self.stamp("execute_start")
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are workload failures too
            self.stamp("execute_end")
            stop_watching_the_clock()
            return self.finish(self.fail(exc, "execute"))
        self.stamp("execute_end")
        stop_watching_the_clock()
        self.meta["stage"] = "serialize"

        # --- serialize -----------------------------------------------------------------
        self.stamp("serialize_start")
        try:
            summary = summarize(result, cloudpickle)
            _write_json(self.result_path, summary)
        except BaseException as exc:
            self.stamp("serialize_end")
            return self.finish(self.fail(exc, "serialize"))
        self.stamp("serialize_end")
        self.meta["status"] = "ok"
        return self.finish(EXIT_OK)


def _unpack(payload):
    """(func, args, kwargs) from a bare callable or a {"func", "args", "kwargs"} dict."""
    if isinstance(payload, dict) and "func" in payload:
        return payload["func"], tuple(payload.get("args") or ()), dict(payload.get("kwargs") or {})
    if not callable(payload):
        raise TypeError(f"payload is a {type(payload).__name__}, not a callable")
    return payload, (), {}


def sha256(data):
    """Hex SHA-256 of `data`, from the interpreter's built-in module when it has one."""
    try:
        from _sha2 import sha256 as new  # Python 3.12 and newer
    except ImportError:
        try:
            from _sha256 import sha256 as new  # Python 3.8 to 3.11
        except ImportError:  # pragma: no cover - a build without it
            from hashlib import sha256 as new
    return new(data).hexdigest()


def summarize(result, cloudpickle):
    """The JSON summary of a result; raises when the result cannot be pickled."""
    pickled = cloudpickle.dumps(result)
    try:
        encoded = json.dumps(result, sort_keys=True).encode("utf-8")
        encoding = "json"
    except (TypeError, ValueError, RecursionError):
        encoded = _safe_repr(result).encode("utf-8", "replace")
        encoding = "repr"
    short = _safe_repr(result)
    if len(short) > REPR_LIMIT:
        short = short[: REPR_LIMIT - 3] + "..."
    cls = type(result)
    return {
        "type": cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}",
        "size": len(encoded),
        "encoding": encoding,
        "repr": short,
        "sha256": sha256(encoded),
        "pickle_size": len(pickled),
    }


#: The workload's source, shipped beside the payload: {"filename": ..., "source": ...}.
SOURCE_NAME = "source.json"
#: The probe's time limit in seconds, so that the stacks can be dumped just before the kill.
TIME_LIMIT_ENV = "TP_TIME_LIMIT"
#: Marker cloudpickle gives the code of every function it ships by value.
_DYNAMIC = "<dynamic-code>"


def _renamed(code, filename):
    """`code` and every code object nested in it, with co_filename set to `filename`."""
    consts = tuple(
        _renamed(c, filename) if isinstance(c, types.CodeType) and c.co_filename == _DYNAMIC else c
        for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def attach_source(func, folder="."):
    """Give the workload's functions back their file name and lines, for tracebacks.

    cloudpickle names the code it ships by value <dynamic-code>; the source travels apart in
    source.json, so that the pickled size stays what a runner would ship. Every function of the
    workload's module (the same globals) is renamed, and its lines go into linecache.
    """
    path = os.path.join(folder, SOURCE_NAME)
    try:
        with open(path, encoding="utf-8") as fh:
            shipped = json.load(fh)
        filename, text = str(shipped["filename"]), str(shipped["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    import linecache

    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    target = getattr(func, "func", func)  # functools.partial binds a user's arguments
    scope = getattr(target, "__globals__", None)
    candidates = [target]
    if isinstance(scope, dict):
        candidates += [v for v in list(scope.values()) if isinstance(v, types.FunctionType)]
        candidates += [
            m
            for v in list(scope.values())
            if isinstance(v, type)
            for m in vars(v).values()
            if isinstance(m, (types.FunctionType, staticmethod, classmethod))
        ]
    for obj in candidates:
        fn = getattr(obj, "__func__", obj)
        code = getattr(fn, "__code__", None)
        if isinstance(code, types.CodeType) and code.co_filename == _DYNAMIC:
            with contextlib.suppress(Exception):
                fn.__code__ = _renamed(code, filename)


def watch_for_crashes():
    """A Python stack on stderr for a crash (SIGSEGV, SIGABRT, SIGBUS, ...), for SIGTERM (a
    scheduler's kill at its time limit), and just before the probe's own time limit."""
    with contextlib.suppress(Exception):
        faulthandler.enable(file=sys.stderr, all_threads=True)
    with contextlib.suppress(Exception):
        faulthandler.register(signal.SIGTERM, file=sys.stderr, all_threads=True, chain=True)
    limit = os.environ.get(TIME_LIMIT_ENV)
    if limit and hasattr(signal, "setitimer"):
        # A timer signal, not faulthandler's watchdog thread: a thread's stack and its malloc arena
        # (64 MiB of address space) would move a memory threshold under RLIMIT_AS.
        with contextlib.suppress(ValueError, RuntimeError, OSError):
            seconds = float(limit) - (time.time() - _RUNNER_START)
            # Just before the kill: a tenth of the limit early, at most a second.
            early = min(1.0, 0.1 * float(limit))
            faulthandler.register(signal.SIGALRM, file=sys.stderr, all_threads=True, chain=False)
            signal.setitimer(signal.ITIMER_REAL, max(0.05, seconds - early))


def stop_watching_the_clock():
    """The function returned: no stack dump before the time limit."""
    if hasattr(signal, "setitimer"):
        with contextlib.suppress(Exception):
            signal.setitimer(signal.ITIMER_REAL, 0)


def _safe_repr(obj):
    try:
        return repr(obj)
    except Exception as exc:
        return f"<repr failed: {type(exc).__name__}>"


def main(argv=None):
    """Run the payload named on the command line; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python runner.py payload.pkl\n")
        return EXIT_SETUP
    watch_for_crashes()
    code = Runner(args[0]).run()
    # The workload may have buffered output; flush it before the interpreter tears down.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
