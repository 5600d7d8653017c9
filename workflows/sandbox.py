"""Modules passed through the workflow sandbox, declared in one place, each with its reason."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import CodeType, ModuleType
from typing import Any, ClassVar

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = (
    "pydantic",  # models cross every boundary; re-importing per workflow run is slow and breaks isinstance
    "pydantic_core",  # pydantic's compiled core, same reason
    "annotated_types",  # pydantic's constraint types
    "contracts",  # our pure data models: no I/O, deterministic
    "states",  # the state machine: pure
    "policies",  # pure decisions: deterministic by design
    "opentelemetry",  # one global tracer/meter provider, replay-safe (Temporal's contrib), shared with the host
    "observability",  # metric instruments and baggage keys live on the host's providers; nothing runs at import
)

#: Packages the sandbox re-imports on every workflow run (workflow modules and the benchmark's).
REIMPORTED_PACKAGES = ("workflows", "benchmarks")


class _CompileOnceLoader(importlib.machinery.SourceFileLoader):
    """A source loader that compiles each distinct source text once per process.

    The sandbox re-executes workflow modules for every run; where no bytecode cache can be read
    (PYTHONDONTWRITEBYTECODE, read-only installs) each run would otherwise recompile them.
    The module body still runs fresh each time: only the immutable code object is reused."""

    _compiled: ClassVar[dict[tuple[str, bytes], CodeType]] = {}

    def source_to_code(self, data: Any, path: Any, *, _optimize: int = -1) -> CodeType:  # type: ignore[override]
        key = (str(path), bytes(data))
        code = self._compiled.get(key)
        if code is None:
            code = super().source_to_code(data, path, _optimize=_optimize)
            self._compiled[key] = code
        return code


class _CompileOnceFinder(importlib.abc.MetaPathFinder):
    """Finds modules of `REIMPORTED_PACKAGES` as the path finder does, with `_CompileOnceLoader`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in REIMPORTED_PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader = spec.loader if spec is not None else None
        if spec is not None and type(loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _CompileOnceLoader(loader.name, loader.path)
        return spec


def install_compile_cache() -> None:
    """Put the compile-once finder first on `sys.meta_path` (once per process)."""
    if not any(isinstance(f, _CompileOnceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _CompileOnceFinder())


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The sandbox stays on; only the modules above are shared with the host."""
    install_compile_cache()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )
