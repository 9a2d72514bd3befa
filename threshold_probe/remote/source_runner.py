"""The far-side runner of the source pipeline: rebuild a function from its source text, run it.

Usage, with the job folder as the working directory::

    python source_runner.py RUNNER_PATH payload.json

``RUNNER_PATH`` is the staged ``runner.py``: its meta.json / result.json format, exit codes and
helpers are reused unchanged, so the client reads a source probe exactly like a native one.
``payload.json`` holds ``name`` (the function's name), ``source`` (the text ``inspect.getsource``
gave for it, indented as it was defined), ``preamble`` (module-level statements shipped with it,
such as imports) and ``filename``.

What it does is what source-shipping runners do:

1. strip the function's decorators, ``textwrap.dedent`` the text, and ``exec`` the preamble and
   the definition in a fresh namespace (stage ``compile``: a SyntaxError or IndentationError here
   is the runner's inability to carry the source, a NameError a default value or a decorator
   needing a name that did not travel);
2. call the function with no arguments (stage ``execute``: a closure variable or a module-level
   helper that was not shipped is a NameError here);
3. summarise the result with plain ``pickle``, as a source runner has no cloudpickle to rely on.

The ``compile`` stage uses the ``deserialize`` time stamps and exit code (11), so stage timings
and exit codes read the same as the native runner's.

Standard library only; Python 3.8 or newer.
"""

# The first statement: the runner's start as close to interpreter start-up as possible.
import time

_SOURCE_RUNNER_START = time.time()

import ast  # noqa: E402
import builtins  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import linecache  # noqa: E402
import pickle  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

COMPILE_STAGE = "compile"


def load_runner(path):
    """The staged runner.py as a module (its Runner class and helpers)."""
    spec = importlib.util.spec_from_file_location("threshold_probe_far_runner", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the runner from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def strip_decorators(text):
    """The dedented source with the decorator lines of its first definition blanked.

    Blank lines instead of removed ones keep line numbers equal to the client's, so tracebacks
    point at the same lines. Raises SyntaxError when the dedented text does not parse, which
    is what happens to source with column-0 lines inside an indented definition.
    """
    dedented = textwrap.dedent(text)
    tree = ast.parse(dedented)
    lines = dedented.splitlines(True)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.decorator_list:
                first = min(d.lineno for d in node.decorator_list)
                # node.lineno is the `def` line on 3.8+; decorators sit above it.
                for i in range(first - 1, node.lineno - 1):
                    lines[i] = "\n"
            break
    return "".join(lines)


def build_function(payload):
    """Exec the preamble and the definition in a fresh namespace; return the function."""
    name = payload["name"]
    filename = payload.get("filename") or f"<shipped {name}>"
    namespace = {"__name__": "__shipped__", "__builtins__": builtins}
    preamble = payload.get("preamble") or ""
    if preamble:
        pre_name = filename[:-1] + " preamble>" if filename.endswith(">") else filename + " (preamble)"
        linecache.cache[pre_name] = (len(preamble), None, preamble.splitlines(True), pre_name)
        exec(compile(preamble, pre_name, "exec"), namespace)
    text = strip_decorators(payload["source"])
    # Registered so that tracebacks of the shipped function show its lines.
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    exec(compile(text, filename, "exec"), namespace)
    if name not in namespace:
        raise NameError(f"the shipped source does not define {name!r}")
    func = namespace[name]
    if not callable(func):
        raise TypeError(f"{name!r} is a {type(func).__name__}, not a function")
    return func


def make_runner_class(runner):
    """A Runner subclass (of the staged runner module) that loads source instead of a pickle."""

    class SourceRunner(runner.Runner):
        def __init__(self, payload_path):
            super().__init__(payload_path)
            self.meta["t"]["runner_start"] = _SOURCE_RUNNER_START
            self.meta["mode"] = "source"

        def fail(self, exc, stage):
            if stage != COMPILE_STAGE:
                return super().fail(exc, stage)
            code = super().fail(exc, "deserialize")
            self.meta["exception"]["stage"] = COMPILE_STAGE
            self.meta["stage"] = COMPILE_STAGE
            return code

        def run(self):
            try:
                self.checkpoint("started", "setup")
            except Exception as exc:
                sys.stderr.write(f"threshold-probe source runner: cannot write meta.json: {exc}\n")
                return runner.EXIT_META

            self.stamp("deserialize_start")
            try:
                with open(self.payload_path, encoding="utf-8") as fh:
                    text = fh.read()
                self.meta["payload_size"] = len(text)
                payload = json.loads(text)
            except BaseException as exc:
                return self.finish(self.fail(exc, "setup"))
            try:
                func = build_function(payload)
            except BaseException as exc:
                self.stamp("deserialize_end")
                return self.finish(self.fail(exc, COMPILE_STAGE))
            self.stamp("deserialize_end")
            with contextlib.suppress(Exception):
                self.checkpoint("running", "execute")

            self.stamp("execute_start")
            try:
                result = func()
            except BaseException as exc:
                self.stamp("execute_end")
                return self.finish(self.fail(exc, "execute"))
            self.stamp("execute_end")
            self.meta["stage"] = "serialize"

            self.stamp("serialize_start")
            try:
                summary = runner.summarize(result, pickle)
                runner._write_json(runner.RESULT_NAME, summary)
            except BaseException as exc:
                self.stamp("serialize_end")
                return self.finish(self.fail(exc, "serialize"))
            self.stamp("serialize_end")
            self.meta["status"] = "ok"
            return self.finish(runner.EXIT_OK)

    return SourceRunner


def main(argv=None):
    """Run the shipped source named on the command line; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python source_runner.py RUNNER_PATH payload.json\n")
        return 10
    runner = load_runner(args[0])
    code = make_runner_class(runner)(args[1]).run()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
