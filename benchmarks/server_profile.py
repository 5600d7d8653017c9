"""Where the CPU of a batch goes, ours against bare, with the dev server split by component.

    PYTHONPATH=. python benchmarks/server_profile.py [--items 1000] [--server-db file|memory]
        [--frequency 499] [--top 20] [--state-visibility notable|every] [--json]

Runs `batch_throughput.py --only bare --items N`, then `--only ours`, each on its own fresh dev
server, while `perf record -a` samples every CPU (with call chains) at `--frequency` Hz. Each
sample is put to a process: the dev server; the benchmark's worker process, split into its Python
thread and the SDK's core threads (`tokio-rt-worker`); idle; everything else. Server samples are
named from the binary's own function table (benchmarks/gosymbols.py: the wheel's binary is
stripped) and counted into components by the functions on their stack. Prints, per item, the
milliseconds of CPU in each process and component for both sides and their difference, then the
server functions whose inclusive time differs most.

Components can overlap (SQLite time is also inside the requests that issue it); each sample counts
once per component. Figures include each dev server's start and the benchmark's two sample runs
(the same for both sides, a few hundred milliseconds in all).

Needs `perf` (Debian package `linux-perf`) and the right to sample every CPU (root, or
`kernel.perf_event_paranoid` at 0 or below). Sampling costs a few percent of CPU; read the
throughput of `batch_throughput.py` itself, not of this.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import child_stats
from benchmarks.gosymbols import GoSymbols

ROOT = Path(__file__).resolve().parent.parent

#: (label, pattern over the function names on a server sample's stack).
COMPONENTS: list[tuple[str, str]] = [
    ("search attribute upserts: the command", r"handleCommandUpsertWorkflowSearchAttributes$"),
    (
        "search attribute upserts: visibility writes",
        r"visibilityQueueTaskExecutor\)\.processUpsertExecution$",
    ),
    ("visibility: start and close records", r"visibilityQueueTaskExecutor\)\.process(Start|Close)Execution$"),
    ("workflow task completions (commands in)", r"_HistoryService_RespondWorkflowTaskCompleted_Handler$"),
    ("workflow task starts (history out)", r"_HistoryService_RecordWorkflowTaskStarted_Handler$"),
    (
        "task polls (matching, frontend)",
        r"_(MatchingService|WorkflowService)_Poll(Workflow|Activity)TaskQueue_Handler$",
    ),
    (
        "activity task starts and completions",
        r"_HistoryService_(RecordActivityTaskStarted|RespondActivityTaskCompleted)_Handler$",
    ),
    (
        "child workflows: start and completion",
        r"processStartChildExecution$|_HistoryService_(StartWorkflowExecution|RecordChildExecutionCompleted)_Handler$",
    ),
    ("timer tasks", r"timerQueue(Active|Standby)TaskExecutor\)\.Execute$"),
    ("namespace reads from persistence", r"nsregistry\.\(\*registry\)\.getNamespacePersistence$"),
    ("SQLite (inside all of the above)", r"^modernc\.org/sqlite/lib\."),
    ("garbage collection", r"^runtime\.gcBgMarkWorker$"),
]
KERNEL = "[kernel]"
SERVER_PREFIX = "go.temporal.io/server/"
#: Frames on nearly every stack (gRPC interceptors, retry and scheduling wrappers): left out of
#: the function list, where they would only repeat the totals.
WRAPPERS = re.compile(
    r"Intercept|/backoff\.|FIFOScheduler|queues\.(\(\*executableImpl\)|Executable)|\.func\d+(\.\d+)?$"
)


def server_binary() -> Path:
    found = Path(sys.executable).parent / "temporal"
    return found if found.exists() else Path(shutil.which("temporal") or "temporal")


def _await_server(bench: subprocess.Popen[bytes], binary: Path, timeout_s: float = 60.0) -> int:
    """The pid of the dev server the benchmark process starts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if bench.poll() is not None:
            raise RuntimeError(f"the benchmark exited with {bench.returncode} before its dev server started")
        for pid, _ in child_stats(bench.pid):
            try:
                if Path(os.readlink(f"/proc/{pid}/exe")).name == binary.name:
                    return pid
            except OSError:
                continue
        time.sleep(0.1)
    raise RuntimeError("no dev server appeared under the benchmark process")


def record(side: str, options: argparse.Namespace, data: Path, binary: Path) -> dict[str, Any]:
    """Run one side of `batch_throughput.py` under `perf record -a`; return its figures and pids."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "batch_throughput.py"),
        "--items", str(options.items),
        "--only", side,
        "--server-db", options.server_db,
        "--state-visibility", options.state_visibility,
        "--json",
    ]  # fmt: skip
    bench = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE)
    server = _await_server(bench, binary)
    perf = subprocess.Popen(
        ["perf", "record", "-a", "-F", str(options.frequency), "--call-graph", "fp", "-o", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    out, _ = bench.communicate()
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate()
    # perf stops on SIGINT by re-raising it once it has written the data.
    if bench.returncode or perf.returncode not in (0, -signal.SIGINT) or not data.exists():
        raise RuntimeError(
            f"benchmark exit {bench.returncode}, perf exit {perf.returncode}: {err.decode()[-500:]}"
        )
    figures = json.loads(out.decode().strip().splitlines()[-1])
    return {"worker": bench.pid, "server": server, "figures": figures}


def perf_script(data: Path) -> str:
    """`perf script`'s text for a recording: each sample's command, pid and call chain."""
    return subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "comm,pid,ip,dso"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def parse_samples(text: str) -> Iterator[tuple[str, int, list[tuple[int, str]]]]:
    """(command name, pid, [(address or file offset, object file name)] leaf first) per sample
    of `perf script -F comm,pid,ip,dso` text."""
    head: tuple[str, int] | None = None
    frames: list[tuple[int, str]] = []
    header = re.compile(r"^(.*?)\s+(\d+)\s*$")
    for line in text.splitlines():
        if not line.strip():
            if head:
                yield head[0], head[1], frames
            head, frames = None, []
        elif line.startswith("\t"):
            address, _, obj = line.strip().partition(" ")
            frames.append((int(address, 16), Path(obj.strip("()")).name))
        elif match := header.match(line):
            head = (match.group(1).strip(), int(match.group(2)))
    if head:
        yield head[0], head[1], frames


def analyze(
    samples: Iterable[tuple[str, int, list[tuple[int, str]]]],
    pids: dict[str, Any],
    symbols: GoSymbols,
    binary: str,
) -> dict[str, Counter[str]]:
    """Sample counts per process and thread kind, per server component, and per server function.
    `pids` names the "server" and "worker" processes; `binary` is the server's file name."""
    processes: Counter[str] = Counter()
    components: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    patterns = [(label, re.compile(pattern)) for label, pattern in COMPONENTS]
    names: dict[int, str] = {}
    for comm, pid, frames in samples:
        if pid == pids["server"]:
            processes["dev server"] += 1
        elif pid == pids["worker"]:
            kind = {"python": "Python thread", "tokio-rt-worker": "SDK core threads"}.get(
                comm, "other threads"
            )
            processes[f"worker: {kind}"] += 1
            continue
        else:
            processes["idle" if pid == 0 else "other processes"] += 1
            continue
        stack = []
        for address, obj in frames:
            if obj == binary:
                if address not in names:
                    names[address] = symbols.name_at_offset(address)
                stack.append(names[address])
            elif obj.startswith("[kernel"):
                stack.append(KERNEL)
        if stack and stack[0] == KERNEL:
            components["in the kernel (leaf: system calls, I/O)"] += 1
        unique = set(stack)
        for label, pattern in patterns:
            if any(pattern.search(name) for name in unique):
                components[label] += 1
        for name in unique:
            if name.startswith(SERVER_PREFIX) and not WRAPPERS.search(name):
                functions[name] += 1
    return {"processes": processes, "components": components, "functions": functions}


def per_item(counts: Counter[str], frequency: int, items: int) -> dict[str, float]:
    """Sample counts as milliseconds of CPU per item (each sample stands for 1/frequency s)."""
    return {key: round(n / frequency / items * 1000, 2) for key, n in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--server-db", choices=("memory", "file"), default="file")
    parser.add_argument("--frequency", type=int, default=499)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--state-visibility", choices=("every", "notable"), default="notable")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    if not shutil.which("perf"):
        sys.exit("server_profile: `perf` is not installed (Debian: apt-get install linux-perf)")
    binary = server_binary()
    symbols = GoSymbols(binary)
    result: dict[str, Any] = {
        "items": options.items,
        "frequency": options.frequency,
        "state_visibility": options.state_visibility,
        "sides": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for side in ("bare", "ours"):
            data = Path(tmp) / f"{side}.data"
            run = record(side, options, data, binary)
            counts = analyze(parse_samples(perf_script(data)), run, symbols, binary.name)
            result["sides"][side] = {
                "batch": {k: run["figures"][side][k] for k in ("items_per_s", "cpu_ms_per_item")},
                **{key: per_item(value, options.frequency, options.items) for key, value in counts.items()},
            }
    if options.json:
        print(json.dumps(result))
        return
    _print(result, options.top)


def _print(result: dict[str, Any], top: int) -> None:
    ours, bare = result["sides"]["ours"], result["sides"]["bare"]
    print(f"{result['items']} items each; CPU ms per item (perf samples at {result['frequency']} Hz)")
    for side in ("bare", "ours"):
        batch = result["sides"][side]["batch"]
        print(f"  {side}: {batch['items_per_s']} items/s, measured CPU ms/item {batch['cpu_ms_per_item']}")
    for section in ("processes", "components", "functions"):
        keys = sorted(
            set(ours[section]) | set(bare[section]),
            key=lambda k: -(ours[section].get(k, 0) - bare[section].get(k, 0)),
        )
        if section == "functions":
            keys = keys[:top]
        print(f"\n{'ours':>7} {'bare':>7} {'diff':>7}  {section}")
        for key in keys:
            o, b = ours[section].get(key, 0.0), bare[section].get(key, 0.0)
            print(f"{o:7.2f} {b:7.2f} {o - b:7.2f}  {key}")


if __name__ == "__main__":
    main()
