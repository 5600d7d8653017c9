"""Factory-line throughput against bare Temporal, side by side on one dev server.

    PYTHONPATH=. python benchmarks/batch_throughput.py [--items 10000] [--concurrency 50] [--json]
        [--server-db memory|file] [--server-metrics] [--compress-min-bytes N] [--bare-visibility]
        [--bare-unsandboxed] [--only ours|bare] [--state-visibility notable|every]

1. Ours: `FactoryLineWorkflow` runs N items of `algorithm-explainer` on the offline model, each a child
   `AgentRunWorkflow` (validation, planning, execution, compose, review), continuing as new every
   `--items-per-run` items. One sample run first counts its model turns and tool calls.
2. Bare: a parent with the same cap and the same continue-as-new window starts N bare child workflows,
   each doing one no-op activity per model turn and per tool call of our run, nothing else.

Both run on the same fresh local dev server, in one worker built and instrumented as `worker.py`
builds one (same converter and codecs, logging, tracing and metrics): bare runs half its items
before ours and half after (the server slows as its database fills; this way neither side gets
the emptier server). Bare runs on the SDK's defaults, in the workflow sandbox; ours run outside it
(workflows/sandbox.py says why). `--bare-unsandboxed` runs bare outside it too.
`--bare-visibility` has each bare item also upsert the engine's search attributes as many times as
the sample run of ours did (run with the same `--state-visibility` as the batch): the ratio against
that shows how much of the gap is this visibility, which costs the dev server a visibility write each.
`--server-db file` persists the dev server to a SQLite file with the embedded default's pragmas
(what `./run` starts) instead of in memory. `--server-metrics` adds what the dev server reported
doing per item (its Prometheus metrics): mutable-state updates, history reads, visibility writes,
the history and mutable-state bytes it wrote and read, the workers' commands, search attribute
upserts' visibility tasks and namespace reads, activity timeout timers and child start attempts. `--compress-min-bytes N` runs the
worker and client with `payload_compression_min_bytes=N` (payloads of N bytes or more enter history
zlib-compressed; bare's are all smaller than 1 KB). Ours' items publish `FactoryState` as a
batch's children do by default, once, at their end; `--state-visibility every` has them publish
every state they wait in (`BatchRequest.state_visibility`).
Prints items/s for each, the ratio (target ≥ 0.8), how often each continued as new, the largest
history length seen in any single run of our batch workflow, and the CPU each side spent per item
in this process (worker and client) and in the dev server: on a shared machine the CPU figures
move less than the wall-clock ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.artifacts import FileArtifactStore
from activities.bundle import build_activities
from activities.dead_letters import FileDeadLetterStore
from activities.tools.registry import ToolRegistry
from benchmarks.bare_workflows import BARE_WORKFLOWS, BareBatch, VisibleItem, noop
from benchmarks.common import SERVER_METRICS, cpu_seconds, free_port, server_metrics, start_dev_server
from contracts.run import RUN_REVISION, RunRequest, RunResult
from observability.codec import data_converter
from observability.setup import init_telemetry
from settings import Settings
from starter import start_batch
from worker import build_worker
from workflows.factory_line import item_workflow_id

STATEMENT = (
    "Given an array of integers and a target, return the indices of the two numbers that add up to it."
)


@dataclass(frozen=True)
class Options:
    """What one benchmark run measures (the command line's options)."""

    items: int = 10_000
    concurrency: int = 50
    items_per_run: int = 500
    only: str | None = None
    bare_unsandboxed: bool = False
    bare_visibility: bool = False
    server_db: str = "memory"
    server_metrics: bool = False
    compress_min_bytes: int | None = None
    state_visibility: str = "notable"


class _Timed:
    """Wall seconds and CPU seconds (this process, the dev server) spent awaiting one batch, and
    with a metrics port, what the dev server reported doing meanwhile (`SERVER_METRICS`)."""

    def __init__(self, metrics_port: int | None = None) -> None:
        self.seconds = self.worker_cpu = self.server_cpu = 0.0
        self.can = 0
        self.metrics_port = metrics_port
        self.server: dict[str, float] = dict.fromkeys(SERVER_METRICS, 0.0)

    async def measure(self, batch: Any) -> Any:
        port = self.metrics_port
        counted = server_metrics(port) if port else {}
        cpu, started = cpu_seconds(), time.perf_counter()
        result = await batch
        self.seconds += time.perf_counter() - started
        after = cpu_seconds()
        self.worker_cpu += after[0] - cpu[0]
        self.server_cpu += after[1] - cpu[1]
        if port:
            for key, value in server_metrics(port).items():
                self.server[key] += value - counted[key]
        return result

    @classmethod
    def combined(cls, parts: list[_Timed]) -> _Timed:
        total = cls()
        for part in parts:
            total.seconds += part.seconds
            total.worker_cpu += part.worker_cpu
            total.server_cpu += part.server_cpu
            for key, value in part.server.items():
                total.server[key] += value
        return total

    def cpu_ms_per_item(self, items: int) -> dict[str, float]:
        return {
            "worker": round(self.worker_cpu / items * 1000, 1),
            "server": round(self.server_cpu / items * 1000, 1),
            "total": round((self.worker_cpu + self.server_cpu) / items * 1000, 1),
        }

    def server_per_item(self, items: int) -> dict[str, float]:
        return {key: round(value / items, 2) for key, value in self.server.items()}


async def _max_history_length(client: Client, workflow_id: str) -> tuple[int, int]:
    """(runs, most events in one run) over every run of a continued-as-new workflow."""
    runs, most = 0, 0
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history()
        runs += 1
        most = max(most, len(history.events))
    return runs, most


async def _upserts(client: Client, workflow_id: str) -> int:
    """How many search attribute upserts one run's history holds."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    kind = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    return sum(1 for event in history.events if event.event_type == kind)


async def bench(options: Options) -> dict[str, Any]:
    """Run both batches on one fresh dev server (or just one of them, for profiling); return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        return await _bench(Path(tmp), options)


async def _bench(tmp: Path, options: Options) -> dict[str, Any]:
    """`bench` in `tmp`: the engine's data directory, and the dev server's database with `--server-db file`."""
    items, concurrency, items_per_run = options.items, options.concurrency, options.items_per_run
    only, bare_unsandboxed, bare_visibility = options.only, options.bare_unsandboxed, options.bare_visibility
    metrics_port = free_port() if options.server_metrics else None
    env = await start_dev_server(tmp / "temporal.db" if options.server_db == "file" else None, metrics_port)
    try:
        settings = Settings(
            data_dir=tmp, model_provider="offline", payload_compression_min_bytes=options.compress_min_bytes
        )
        # As `worker.py` starts a worker: redactor, logging, tracer and meter providers.
        init_telemetry(settings)
        store = FileArtifactStore(settings.resolved_artifact_dir())
        # The engine's own converter (redaction, artifact store) for both batches: same worker, same costs.
        client = Client(
            env.client.service_client,
            namespace=env.client.namespace,
            data_converter=data_converter(settings),
        )
        ours = build_activities(
            settings,
            tools=ToolRegistry(),
            dead_letters=FileDeadLetterStore(settings.resolved_dead_letter_dir()),
            artifacts=store,
        )
        queue = "bench"
        worker = build_worker(
            client,
            settings,
            task_queue=queue,
            activities=[*ours, noop],
            workflows=[*__import__("worker").WORKFLOWS, *BARE_WORKFLOWS],
        )
        async with worker:
            sample: RunResult = await client.execute_workflow(
                "AgentRunWorkflow",
                RunRequest(
                    blueprint="algorithm-explainer",
                    input={"title": "Sample", "statement": STATEMENT},
                    provider="offline",
                    # Stamped as the factory line stamps its children, so that it runs as they do.
                    revision=RUN_REVISION,
                    state_visibility=options.state_visibility,
                ),
                id="bench-sample",
                task_queue=queue,
                result_type=RunResult,
            )
            assert sample.state == "COMPLETE", sample.error
            per_item = sample.model_calls + sample.tool_calls
            upserts = await _upserts(client, "bench-sample") if bare_visibility else 0
            # One bare item too, so that neither side pays its first run's imports in the timing.
            item_workflow = "BenchBareItem" + ("Visible" if bare_visibility else "")
            item_workflow += "Unsandboxed" if bare_unsandboxed else ""
            suffix = "Unsandboxed" if bare_unsandboxed else ""
            await client.execute_workflow(
                item_workflow,
                VisibleItem(activities=per_item, upserts=upserts) if upserts else per_item,
                id="bench-bare-sample",
                task_queue=queue,
                result_type=int,
            )
            inputs = [{"title": f"Problem {i}", "statement": STATEMENT} for i in range(items)]

            async def ours_batch() -> Any:
                handle = await start_batch(
                    client,
                    "algorithm-explainer",
                    inputs,
                    settings=settings,
                    concurrency=concurrency,
                    batch_id="bench-ours",
                    task_queue=queue,
                    provider="offline",
                    items_per_run=items_per_run,
                    state_visibility=options.state_visibility,
                )
                return await handle.result()

            async def bare_batch(part: str, total: int) -> Any:
                return await client.execute_workflow(
                    f"BenchBareBatch{suffix}",
                    BareBatch(
                        total=total,
                        activities_per_item=per_item,
                        concurrency=concurrency,
                        items_per_run=items_per_run,
                        item_workflow=item_workflow,
                        upserts_per_item=upserts,
                    ),
                    id=f"bench-bare-{part}",
                    task_queue=queue,
                    result_type=int,
                )

            # The dev server slows as its database fills, so whatever runs second is at a
            # disadvantage: bare runs half its items before ours and half after, which puts both
            # at the same average server size.
            first, second = items // 2, items - items // 2
            bare = [_Timed(metrics_port), _Timed(metrics_port)]
            ours_t = _Timed(metrics_port)
            summary = None
            if only != "ours" and first:
                bare[0].can = await bare[0].measure(bare_batch("before", first))
            if only != "bare":
                summary = await ours_t.measure(ours_batch())
            if only != "ours":
                bare[1].can = await bare[1].measure(bare_batch("after", second))
        runs, most_events = await _max_history_length(client, "bench-ours")
        # Counted in the histories: ours as its first item made them, bare as its sample item did.
        ours_upserts = await _upserts(client, item_workflow_id("bench-ours", 0)) if only != "bare" else 0
        bare_upserts = await _upserts(client, "bench-bare-sample")
    finally:
        await env.shutdown()
    bare_s = bare[0].seconds + bare[1].seconds
    # With --only, the side that did not run has no rate (and no ratio).
    ours_rate = items / ours_t.seconds if ours_t.seconds else None
    bare_rate = items / bare_s if bare_s else None
    return {
        "items": items,
        "concurrency": concurrency,
        "items_per_run": items_per_run,
        "server_db": options.server_db,
        "payload_compression_min_bytes": options.compress_min_bytes,
        "state_visibility": options.state_visibility,
        "model_turns_and_tool_calls_per_item": per_item,
        "ours": {
            "seconds": round(ours_t.seconds, 1),
            "cpu_ms_per_item": ours_t.cpu_ms_per_item(items),
            "items_per_s": round(ours_rate, 2) if ours_rate else None,
            "succeeded": summary.succeeded if summary else None,
            "failed": summary.failed if summary else None,
            "continued_as_new": summary.continued_as_new if summary else None,
            "runs": runs,
            "max_history_events_in_one_run": most_events,
            "search_attribute_upserts_per_item": ours_upserts,
            **({"server_per_item": ours_t.server_per_item(items)} if metrics_port else {}),
        },
        "bare": {
            "sandboxed": not bare_unsandboxed,
            "search_attribute_upserts_per_item": bare_upserts,
            "seconds": round(bare_s, 1),
            "seconds_before_and_after": [round(bare[0].seconds, 1), round(bare[1].seconds, 1)],
            "cpu_ms_per_item": _Timed.combined(bare).cpu_ms_per_item(items),
            "items_per_s": round(bare_rate, 2) if bare_rate else None,
            "continued_as_new": bare[0].can + bare[1].can,
            **({"server_per_item": _Timed.combined(bare).server_per_item(items)} if metrics_port else {}),
        },
        "ratio": round(ours_rate / bare_rate, 3) if ours_rate and bare_rate else None,
        "target": 0.8,
    }


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--items-per-run", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=("ours", "bare"), help="run one side only (for profiling)")
    parser.add_argument(
        "--bare-unsandboxed",
        action="store_true",
        help="run the bare workflows outside the sandbox, as ours run (default: the SDK's defaults)",
    )
    parser.add_argument(
        "--bare-visibility",
        action="store_true",
        help="bare items also upsert search attributes as often as one of our runs (default: none)",
    )
    parser.add_argument(
        "--server-db",
        choices=("memory", "file"),
        default="memory",
        help="the dev server's persistence: in memory, or a SQLite file with the embedded default's pragmas",
    )
    parser.add_argument(
        "--server-metrics",
        action="store_true",
        help="also report what the dev server did per item: updates, reads, visibility writes, bytes",
    )
    parser.add_argument(
        "--compress-min-bytes",
        type=int,
        default=None,
        metavar="N",
        help="compress payloads of N bytes or more into history (payload_compression_min_bytes; default off)",
    )
    parser.add_argument(
        "--state-visibility",
        choices=("every", "notable"),
        default="notable",
        help="each item's FactoryState publication (BatchRequest.state_visibility; default notable, as a batch's)",
    )
    args = parser.parse_args()
    figures = asyncio.run(
        bench(
            Options(
                items=args.items,
                concurrency=args.concurrency,
                items_per_run=args.items_per_run,
                only=args.only,
                bare_unsandboxed=args.bare_unsandboxed,
                bare_visibility=args.bare_visibility,
                server_db=args.server_db,
                server_metrics=args.server_metrics,
                compress_min_bytes=args.compress_min_bytes,
                state_visibility=args.state_visibility,
            )
        )
    )
    if args.json:
        print(json.dumps(figures))
        return
    print(json.dumps(figures, indent=1))
    if figures["ratio"] is None:
        return
    verdict = "meets" if figures["ratio"] >= figures["target"] else "misses"
    print(
        f"ours {figures['ours']['items_per_s']}/s vs bare {figures['bare']['items_per_s']}/s: "
        f"ratio {figures['ratio']} ({verdict} the {figures['target']} target)"
    )


if __name__ == "__main__":
    main()
