"""Modules shared with the workflow sandbox (`workflows/sandbox.py`), and the workflow modules that
run outside it, execute workflow code without the sandbox watching them, so they are checked here
instead: no clocks, randomness, I/O, threads or environment reads, no module-level or class-level
state that one run could leave behind for the next, and no imports beyond the checked packages."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

from workflows.sandbox import PASSTHROUGH_MODULES, UNSANDBOXED_WORKFLOW_MODULES, WORKFLOW_HELPERS

ROOT = Path(__file__).resolve().parent.parent
#: Our own packages and modules among the pass-through ones (pydantic and OpenTelemetry are not ours).
OURS = ("contracts", "states", "policies", "workflows.")
#: Calls that differ between a run and its replay, or reach outside the process.
FORBIDDEN_CALLS = {
    "datetime.now",
    "datetime.utcnow",
    "datetime.today",
    "date.today",
    "time.time",
    "time.time_ns",
    "time.monotonic",
    "time.perf_counter",
    "time.sleep",
    "uuid.uuid1",
    "uuid.uuid4",
    "os.urandom",
    "os.getenv",
    "os.environ.get",
    "open",
    "input",
    "asyncio.get_event_loop().time",
    "threading.Thread",
}
FORBIDDEN_IMPORTS = {
    "random",
    "secrets",
    "socket",
    "subprocess",
    "threading",
    "requests",
    "httpx",
    "sqlalchemy",
}
#: First-party packages workflow code may import: the checked ones and the pass-through
#: `observability` (metric instruments and keys, nothing runs at import).
FIRST_PARTY = {
    "activities",
    "blueprints",
    "contracts",
    "observability",
    "policies",
    "settings",
    "states",
    "workflows",
    "worker",
    "starter",
}
ALLOWED_FIRST_PARTY = {"contracts", "observability", "policies", "states", "workflows"}
#: Module-level names bound to mutable containers, allowed when listed here (module stem → names)
#: with a reason. UPPER_CASE names are constants by convention and dunders are Python's.
MUTABLE_GLOBALS_ALLOWED: dict[str, set[str]] = {}


def _our_passthrough_files() -> list[Path]:
    files: list[Path] = []
    for name in (*PASSTHROUGH_MODULES, *UNSANDBOXED_WORKFLOW_MODULES):
        if not name.startswith(OURS):
            continue
        module = importlib.import_module(name)
        if hasattr(module, "__path__"):  # a package: every module in it
            for info in pkgutil.walk_packages(module.__path__, prefix=f"{name}."):
                files.append(Path(importlib.import_module(info.name).__file__ or ""))
            files.append(Path(module.__file__ or ""))
        else:
            files.append(Path(module.__file__ or ""))
    return sorted(set(files))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    return "?"


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in FORBIDDEN_CALLS or any(name.endswith(f".{f}") for f in FORBIDDEN_CALLS if "." in f):
                found.append(f"line {node.lineno}: calls {name}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                top = module.partition(".")[0]
                if top in FORBIDDEN_IMPORTS:
                    found.append(f"line {node.lineno}: imports {module}")
                elif top in FIRST_PARTY and top not in ALLOWED_FIRST_PARTY:
                    found.append(f"line {node.lineno}: imports {module}, which is not checked here")
    allowed = MUTABLE_GLOBALS_ALLOWED.get(path.stem, set())
    # Module and class level: state that outlives one workflow run.
    bodies = [tree.body, *(n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef))]
    for stmt in (s for body in bodies for s in body):
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        if value is None:
            continue
        mutable = isinstance(
            value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp | ast.SetComp
        ) or (
            isinstance(value, ast.Call)
            and _dotted(value.func) in {"list", "dict", "set", "defaultdict", "deque"}
        )
        for target in targets:
            name = _dotted(target)
            constant = name.lstrip("_").isupper() or (name.startswith("__") and name.endswith("__"))
            if mutable and not constant and name not in allowed:
                found.append(f"line {stmt.lineno}: module- or class-level mutable {name}")
    return found


FILES = _our_passthrough_files()


def test_every_unsandboxed_workflow_is_checked() -> None:
    import worker

    unsandboxed = {
        cls.__module__
        for cls in worker.WORKFLOWS
        if not getattr(cls, "__temporal_workflow_definition").sandboxed
    }
    assert unsandboxed == set(UNSANDBOXED_WORKFLOW_MODULES)


def test_the_workflow_helpers_are_passed_through_and_hold_no_workflow_class() -> None:
    names = {p.stem for p in FILES if p.parent.name == "workflows"} - {
        m.rpartition(".")[2] for m in UNSANDBOXED_WORKFLOW_MODULES
    }
    assert names == set(WORKFLOW_HELPERS)
    for name in WORKFLOW_HELPERS:
        module = importlib.import_module(f"workflows.{name}")
        defined = [
            v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__
        ]
        assert not [c for c in defined if hasattr(c, "__temporal_workflow_definition")], name


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_passed_through_module_is_deterministic(path: Path) -> None:
    assert _problems(path) == []


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import random\n"
        "from datetime import datetime\n"
        "import time\n"
        "CACHE = {}\n"
        "seen = []\n"
        "from activities.ledger import Ledger\n"
        "class W:\n"
        "    pending = {}\n"
        "def f():\n"
        "    return datetime.now(), time.time(), open('x')\n"
    )
    problems = _problems(bad)
    assert any("imports random" in p for p in problems)
    assert any("datetime.now" in p for p in problems)
    assert any("time.time" in p for p in problems)
    assert any("calls open" in p for p in problems)
    assert any("mutable seen" in p for p in problems)
    assert any("mutable pending" in p for p in problems)  # class level
    assert any("imports activities.ledger" in p for p in problems)
    assert not any("CACHE" in p for p in problems)  # a constant by convention (upper case) is allowed
