"""A workload: the generated source of one level, and the function it defines."""

from __future__ import annotations

import hashlib
import linecache
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Workload:
    """The readable module source of one level, and the name of the function to call.

    `qualname` is how to reach the function from the module namespace: `workload_7` for a
    module-level function, `Workload7.run` for a static method, `make_workload_7()` style
    factories for nested definitions (see `definition_scope`).
    """

    name: str
    source: str
    func_name: str
    level: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    #: 'module', 'nested' or 'method': how the function is defined in `source`.
    definition_scope: str = "module"
    #: Expression that yields the function, evaluated in the module namespace.
    accessor: str | None = None
    #: The file the source came from (a user's function), for tracebacks; None for generated levels.
    filename: str | None = None
    #: Folders put first on sys.path while the source loads, as `python FILE` puts the file's folder.
    search_path: tuple[str, ...] = ()
    #: The package of the module the source came from, so that its relative imports resolve.
    package: str | None = None
    #: Pickle the modules imported from `search_path` by value, so the far side needs no copy of them.
    ship_local_modules: bool = False

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256(self.source.encode())
        if self.filename is not None:
            # A user's function: how it is called (its bound arguments) and how its siblings
            # travel are part of what runs, so two calls of one file are two workloads.
            digest.update(f"\0{self.accessor}\0{self.ship_local_modules}".encode())
        return digest.hexdigest()

    @property
    def module_name(self) -> str:
        # A name that cannot be imported on the far side, so cloudpickle ships it by value.
        return f"threshold_probe_workload_{self.sha256[:12]}"

    def namespace(self) -> dict[str, Any]:
        """Execute the source in a fresh module and return the module's namespace."""
        module = types.ModuleType(self.module_name)
        filename = self.filename or f"<{self.name}>"
        module.__dict__["__file__"] = filename
        if self.package:
            module.__dict__["__package__"] = self.package
        for folder in reversed(self.search_path):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        code = compile(self.source, filename, "exec")
        # Registered in linecache (mtime None: never evicted) so that inspect.getsource and
        # tracebacks show the generated lines. The latest load of a name wins.
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True), filename)
        # Registered while executing so that decorators and inspect see a real module.
        sys.modules[self.module_name] = module
        try:
            exec(code, module.__dict__)
        finally:
            sys.modules.pop(self.module_name, None)
        return module.__dict__

    def load(self) -> Callable[..., Any]:
        """Execute the source in a fresh module and return the function it defines."""
        func = eval(self.accessor or self.func_name, self.namespace())
        if not callable(func):
            raise TypeError(f"{self.name}: {self.accessor or self.func_name} is not callable")
        return func  # type: ignore[no-any-return]
