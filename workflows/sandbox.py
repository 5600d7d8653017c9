"""Modules passed through the workflow sandbox, declared in one place, each with its reason."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import CodeType, ModuleType
from typing import ClassVar

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

#: Orchestration helpers the workflows share. They define no workflow class, hold no module state
#: and call only `temporalio.workflow` and the pure packages: re-executing them for every run
#: bought nothing but import time. `tests/test_workflow_determinism.py` keeps them honest (no
#: clocks, randomness, I/O or module-level mutable state), since the sandbox no longer checks them.
WORKFLOW_HELPERS = (
    "activity_stubs",
    "cost_control",
    "dead_letter",
    "human_gate",
    "saga",
    "search_attributes",
    "telemetry",
)

#: Modules whose workflow classes run outside the sandbox (`@workflow.defn(sandboxed=False)`).
#: Per run, the sandbox re-imported the workflow module and routed every payload's serialization
#: context through `exec` inside it: the largest single cost of a run on the worker (measured in
#: `benchmarks/batch_throughput.py`, see docs/quality-and-recovery.md). These modules import only
#: the pass-through packages listed next, and `tests/test_workflow_determinism.py` checks them with the
#: same rules as the helpers; the replay tests check that runs replay.
UNSANDBOXED_WORKFLOW_MODULES = ("workflows.agent_run", "workflows.factory_line")

PASSTHROUGH_MODULES = (
    "pydantic",  # models cross every boundary; re-importing per workflow run is slow and breaks isinstance
    "pydantic_core",  # pydantic's compiled core, same reason
    "annotated_types",  # pydantic's constraint types
    "contracts",  # our pure data models: no I/O, deterministic
    "states",  # the state machine: pure
    "policies",  # pure decisions: deterministic by design
    "opentelemetry",  # one global tracer/meter provider, replay-safe (Temporal's contrib), shared with the host
    "observability",  # metric instruments and baggage keys live on the host's providers; nothing runs at import
    *(f"workflows.{m}" for m in WORKFLOW_HELPERS),  # see WORKFLOW_HELPERS
)

#: Packages the sandbox re-imports on every workflow run (workflow modules and the benchmark's).
REIMPORTED_PACKAGES = ("workflows", "benchmarks")


class _CompileOnceLoader(importlib.machinery.SourceFileLoader):
    """A source loader that reads and compiles each module once per process.

    The sandbox re-executes workflow modules for every run; each run would otherwise stat, read
    and (where no bytecode cache can be read: PYTHONDONTWRITEBYTECODE, read-only installs)
    recompile them. The module body still runs fresh each time: only the immutable code object
    is reused. A worker keeps running the code it started with, as it does for every other module."""

    _compiled: ClassVar[dict[str, CodeType]] = {}

    def get_code(self, fullname: str) -> CodeType | None:
        code = self._compiled.get(self.path)
        if code is None:
            code = super().get_code(fullname)
            if code is None:
                return None
            self._compiled[self.path] = code
        return code


class _CompileOnceFinder(importlib.abc.MetaPathFinder):
    """Finds modules of `REIMPORTED_PACKAGES` as the path finder does (once per name), with
    `_CompileOnceLoader`."""

    _found: ClassVar[dict[str, tuple[str, str, list[str] | None]]] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in REIMPORTED_PACKAGES:
            return None
        found = self._found.get(fullname)
        if found is None:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
            loader = spec.loader if spec is not None else None
            if spec is None or type(loader) is not importlib.machinery.SourceFileLoader or not spec.origin:
                return spec
            search = list(spec.submodule_search_locations) if spec.submodule_search_locations else None
            found = self._found[fullname] = (fullname, spec.origin, search)
        name, origin, search = found
        return importlib.util.spec_from_file_location(
            name, origin, loader=_CompileOnceLoader(name, origin), submodule_search_locations=search
        )


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
