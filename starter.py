"""The operator's CLI and client helpers.

python starter.py run <blueprint> [--version V] (--input <json|@file> | --example) [--wait] [--json] [--dry-run]
                       [--max-usd USD] [--max-tokens N]
python starter.py status <workflow_id> [--json]
python starter.py blueprints [--json]
python starter.py pending [--json]
python starter.py show <workflow_id> [--json]
python starter.py approve|reject <workflow_id> [--escalation-id ID] [--by WHO] [--comment TEXT]
python starter.py revise <workflow_id> [--escalation-id ID] [--by WHO] [--comment TEXT]
                         [--arguments <json|@file>] [--instructions TEXT]
python starter.py stats [--since 24h] [--json] [--limit N]
python starter.py costs [--by run|blueprint|model|day] [--limit N] [--json]
python starter.py db upgrade
python starter.py batch <blueprint> --items <file.jsonl> [--concurrency N] [--state-visibility notable|every] [--json]
python starter.py dlq list|show <id>|redrive <id> [--json]
python starter.py replay <workflow_id> [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from temporalio.client import Client, TLSConfig, WorkflowHandle
from temporalio.runtime import Runtime

from activities.artifacts import FileArtifactStore
from activities.dead_letters import DeadLetterStore
from contracts.batch import BatchProgress, BatchRequest, BatchSummary
from contracts.escalation import DECISION_MODELS, EscalationPacket
from contracts.run import RUN_REVISION, RunRequest, RunResult, RunStatus
from policies.limits import MAX_INPUT_BYTES
from settings import Settings, get_settings

RUN_WORKFLOW = "AgentRunWorkflow"
BATCH_WORKFLOW = "FactoryLineWorkflow"
STATUS_QUERY = "status"
DECISION_SIGNALS = ("approve", "reject", "revise")
#: The visibility query behind `pending` (save the same one in the Temporal UI).
PENDING_QUERY = "FactoryState = 'AWAITING_HUMAN' AND ExecutionStatus = 'Running'"
PROGRESS_QUERY = "progress"


def artifact_store(settings: Settings | None = None) -> FileArtifactStore:
    """The artifact store named by settings (workers and clients must share it)."""
    settings = settings or get_settings()
    return FileArtifactStore(settings.resolved_artifact_dir())


async def connect(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Client:
    """A Temporal client from settings (TLS/API key when set): the pydantic data converter with
    redaction (and encryption when a key is set), and tracing that workers built from it share."""
    from observability.codec import data_converter
    from observability.tracing import client_plugins

    settings = settings or get_settings()
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        plugins=client_plugins(),
        tls=TLSConfig() if settings.temporal_tls else False,
        api_key=settings.temporal_api_key,
        runtime=runtime,
    )


async def ensure_search_attributes(client: Client, *, create: bool = True) -> list[str]:
    """Make sure the namespace has our search attributes (a missing one would fail every workflow
    task that upserts it). Adds missing ones when `create`; otherwise raises. Returns those added."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.service import RPCError, RPCStatusCode

    from workflows.search_attributes import REGISTRATION

    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        existing = set(listed.custom_attributes) | set(listed.system_attributes)
    except RPCError as exc:  # the time-skipping test server can add but not list
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = set()
    missing = {name: kind for name, kind in REGISTRATION.items() if name not in existing}
    if not missing:
        return []
    if not create:
        raise RuntimeError(f"namespace {client.namespace!r} lacks search attributes {sorted(missing)}")
    types = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
        "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
        "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
        "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
        "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    }
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace, search_attributes={n: types[k] for n, k in missing.items()}
            )
        )
    except RPCError as exc:  # a server that cannot list (see above) says so on the second add
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        return []
    return sorted(missing)


def make_request(
    blueprint: str, input_text: str | None = None, input_value: Any = None, **fields: Any
) -> RunRequest:
    """A RunRequest; input over the size limit is not sent (the run is REJECTED with its size)."""
    if input_text is not None:
        size = len(input_text.encode("utf-8"))
        if size > MAX_INPUT_BYTES:
            return RunRequest(blueprint=blueprint, oversized_bytes=size, **fields)
        return RunRequest(blueprint=blueprint, input_json=input_text, **fields)
    size = len(json.dumps(input_value, default=str).encode("utf-8"))
    if size > MAX_INPUT_BYTES:
        return RunRequest(blueprint=blueprint, oversized_bytes=size, **fields)
    return RunRequest(blueprint=blueprint, input=input_value, **fields)


async def start_run(
    client: Client, request: RunRequest, *, task_queue: str | None = None, workflow_id: str | None = None
) -> WorkflowHandle[Any, RunResult]:
    """Start one `AgentRunWorkflow` (stamped with this engine's `RUN_REVISION`) and return its handle."""
    settings = get_settings()
    if request.revision < RUN_REVISION:
        request = request.model_copy(update={"revision": RUN_REVISION})
    workflow_id = workflow_id or f"run-{request.blueprint[:40]}-{uuid.uuid4().hex[:12]}"
    return await client.start_workflow(
        RUN_WORKFLOW,
        request,
        id=workflow_id,
        task_queue=task_queue or settings.task_queue,
        result_type=RunResult,
    )


def result_json(result: RunResult) -> dict[str, Any]:
    """The one JSON object `run --wait --json` prints."""
    return {
        "workflow_id": result.workflow_id,
        "state": result.state,
        "states_visited": result.states_visited,
        "blueprint": result.blueprint,
        "model": result.model.model_dump(mode="json") if result.model else None,
        "output": result.output,
        "error": result.error.model_dump(mode="json", exclude={"retryable"}) if result.error else None,
        "usage": {
            "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens,
            "cost_usd": result.cost_usd,
        },
    }


def _read_input(arg: str) -> str:
    if arg.startswith("@"):
        return Path(arg[1:]).read_text(encoding="utf-8")
    return arg


async def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from blueprints.catalog import default_catalog

    fields: dict[str, Any] = {"version": args.version, "dry_run": args.dry_run}
    fields.update(max_usd=args.max_usd, max_tokens=args.max_tokens)  # budget overrides (None = blueprint's)
    if args.example:
        blueprint, _ = default_catalog().resolve(args.blueprint, args.version)
        request = make_request(
            args.blueprint, input_value=blueprint.example_input if blueprint else {}, **fields
        )
    else:
        try:
            text = _read_input(args.input)
        except OSError as exc:
            _print_error(console, args.json, "input_unreadable", str(exc))
            return 2
        request = make_request(args.blueprint, input_text=text, **fields)
    client = await connect()
    handle = await start_run(client, request)
    if not args.wait:
        if args.json:
            print(json.dumps({"workflow_id": handle.id}))
        else:
            console.print(f"started [bold]{handle.id}[/]")
        return 0
    result = await handle.result()
    if args.json:
        print(json.dumps(result_json(result)))
    else:
        _print_result(console, result)
    return 0 if result.state == "COMPLETE" else 1


def _print_error(console: Console, as_json: bool, code: str, message: str) -> None:
    if as_json:
        print(json.dumps({"error": {"code": code, "message": message, "details": {}}}))
    else:
        console.print(f"[red]{code}[/]: {message}")


def _print_result(console: Console, result: RunResult) -> None:
    colour = "green" if result.state == "COMPLETE" else "red"
    offline = (
        " [yellow](offline model: deterministic, not intelligence)[/]"
        if result.model and result.model.offline
        else ""
    )
    console.print(f"[bold]{result.workflow_id}[/] {result.blueprint}{offline}")
    console.print("states: " + " → ".join(result.states_visited) + f"  [{colour}]{result.state}[/]")
    console.print(
        f"usage: {result.usage.input_tokens} input / {result.usage.output_tokens} output tokens, ${result.cost_usd:.6f}"
    )
    if result.error:
        console.print(f"[red]error[/] {result.error.code}: {result.error.message}")
    if result.output is not None:
        text = json.dumps(result.output, indent=2)
        console.print(
            text if len(text) <= 1500 else text[:1500] + "\n  … (truncated; use --json for all of it)"
        )


async def cmd_status(args: argparse.Namespace, console: Console) -> int:
    from temporalio.service import RPCError

    from workflows.search_attributes import FACTORY_STATE

    client = await connect()
    handle = client.get_workflow_handle(args.workflow_id)
    try:
        status: RunStatus = await asyncio.wait_for(
            handle.query(STATUS_QUERY, result_type=RunStatus), timeout=10
        )
    except (TimeoutError, RPCError) as exc:
        # Queries need a live worker; the server's search attribute still knows the state.
        description = await handle.describe()
        state = description.typed_search_attributes.get(FACTORY_STATE)
        if args.json:
            print(
                json.dumps({"workflow_id": handle.id, "state": state, "query_error": str(exc) or "timeout"})
            )
        else:
            console.print(
                f"[bold]{handle.id}[/] state [bold]{state}[/] (no worker answered the status query)"
            )
        return 0
    if args.json:
        print(status.model_dump_json())
        return 0
    console.print(f"[bold]{status.workflow_id}[/] state [bold]{status.state}[/]")
    table = Table("from", "to", "at", "reason")
    for t in status.transitions:
        table.add_row(str(t.get("source") or ""), str(t["target"]), str(t["at"]), str(t.get("reason", "")))
    console.print(table)
    if status.error:
        console.print(f"[red]error[/] {status.error.code}: {status.error.message}")
    return 0


def cmd_blueprints(args: argparse.Namespace, console: Console) -> int:
    from blueprints.catalog import default_catalog

    blueprints = default_catalog().all()
    items: list[dict[str, Any]] = [
        {
            "name": bp.name,
            "version": bp.version,
            "description": bp.description,
            "tools": list(bp.allowed_tools),
            "input_schema": bp.input_model.model_json_schema(),
        }
        for bp in blueprints
    ]
    if args.json:
        print(json.dumps(items))
        return 0
    table = Table("blueprint", "version", "tools", "description")
    for bp in blueprints:
        table.add_row(bp.name, bp.version, ", ".join(bp.allowed_tools) or "-", bp.description)
    console.print(table)
    return 0


class NoOpenEscalation(Exception):
    """The run has no escalation waiting for a person."""


async def list_pending(client: Client) -> list[dict[str, Any]]:
    """Runs waiting for a person, through the `FactoryState` search attribute (what the UI lists too)."""
    from workflows.search_attributes import FACTORY_BLUEPRINT, FACTORY_TENANT

    found = []
    async for execution in client.list_workflows(PENDING_QUERY):
        attrs = execution.typed_search_attributes
        found.append(
            {
                "workflow_id": execution.id,
                "run_id": execution.run_id,
                "started": execution.start_time.isoformat() if execution.start_time else None,
                "blueprint": attrs.get(FACTORY_BLUEPRINT),
                "tenant": attrs.get(FACTORY_TENANT),
            }
        )
    return found


async def open_escalation(client: Client, workflow_id: str) -> EscalationPacket:
    """The packet a run is waiting on (raises `NoOpenEscalation` when there is none)."""
    status: RunStatus = await client.get_workflow_handle(workflow_id).query(
        STATUS_QUERY, result_type=RunStatus
    )
    if status.escalation is None:
        raise NoOpenEscalation(f"{workflow_id} is {status.state}, with no escalation waiting")
    return status.escalation


async def send_decision(
    client: Client,
    workflow_id: str,
    decision: str,
    *,
    decided_by: str,
    comment: str = "",
    escalation_id: str | None = None,
    arguments: dict[str, Any] | None = None,
    instructions: str | None = None,
) -> dict[str, Any]:
    """Signal `approve`, `reject` or `revise` to a run; the open escalation's id when none is given.

    The payload is validated here first, so a typo fails in the shell instead of in the run's audit.
    Returns the payload sent.
    """
    if decision not in DECISION_SIGNALS:
        raise ValueError(f"unknown decision {decision!r}; use one of {DECISION_SIGNALS}")
    if escalation_id is None:
        escalation_id = (await open_escalation(client, workflow_id)).escalation_id
    fields: dict[str, Any] = {"escalation_id": escalation_id, "decided_by": decided_by, "comment": comment}
    if decision == "revise":
        fields.update({"arguments": arguments, "instructions": instructions})
    payload = DECISION_MODELS[decision].model_validate(fields).model_dump(mode="json", exclude_none=True)
    await client.get_workflow_handle(workflow_id).signal(decision, payload)
    return payload


async def cmd_pending(args: argparse.Namespace, console: Console) -> int:
    client = await connect()
    items = await list_pending(client)
    if args.json:
        print(json.dumps(items))
        return 0
    table = Table("workflow", "blueprint", "tenant", "started")
    for item in items:
        table.add_row(
            item["workflow_id"], str(item["blueprint"] or ""), str(item["tenant"] or ""), str(item["started"])
        )
    console.print(table)
    console.print(f"{len(items)} run(s) awaiting a person")
    return 0


async def cmd_show(args: argparse.Namespace, console: Console) -> int:
    client = await connect()
    try:
        packet = await open_escalation(client, args.workflow_id)
    except NoOpenEscalation as exc:
        _print_error(console, args.json, "no_open_escalation", str(exc))
        return 1
    if args.json:
        print(packet.model_dump_json())
        return 0
    console.print(
        f"[bold]{packet.escalation_id}[/] ({packet.kind}, level {packet.level}) deadline {packet.deadline}"
    )
    console.print(f"trying to: {packet.trying_to}")
    console.print(f"[bold]decision needed[/]: {packet.decision_needed}")
    for option in packet.options:
        console.print(f"  [bold]{option.decision}[/]: {option.impact}")
    console.print(
        f"cost so far: ${packet.cost_usd:.6f}, {packet.model_calls} model calls, {packet.tool_calls} tool calls"
    )
    console.print_json(json.dumps(packet.evidence, default=str)[:8000])
    return 0


async def cmd_decide(args: argparse.Namespace, console: Console) -> int:
    arguments = None
    if getattr(args, "arguments", None):
        try:
            arguments = json.loads(_read_input(args.arguments))
        except (OSError, json.JSONDecodeError) as exc:
            _print_error(console, args.json, "invalid_arguments", str(exc))
            return 2
    client = await connect()
    try:
        payload = await send_decision(
            client,
            args.workflow_id,
            args.command,
            decided_by=args.by,
            comment=args.comment,
            escalation_id=args.escalation_id,
            arguments=arguments,
            instructions=getattr(args, "instructions", None),
        )
    except NoOpenEscalation as exc:
        _print_error(console, args.json, "no_open_escalation", str(exc))
        return 1
    except ValidationError as exc:
        _print_error(console, args.json, "invalid_decision", str(exc))
        return 2
    if args.json:
        print(json.dumps({"signal": args.command, "workflow_id": args.workflow_id, "payload": payload}))
    else:
        console.print(f"sent [bold]{args.command}[/] for {payload['escalation_id']} to {args.workflow_id}")
    return 0


def _decider() -> str:
    try:
        return os.environ.get("FACTORY_DECIDER") or getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


async def cmd_stats(args: argparse.Namespace, console: Console) -> int:
    from observability.stats import VisibilitySource, collect_stats, parse_window

    try:
        window = parse_window(args.since)
    except ValueError as exc:
        _print_error(console, args.json, "invalid_window", str(exc))
        return 2
    client = await connect()
    stats = await collect_stats(VisibilitySource(client), window, limit=args.limit)
    if args.json:
        print(json.dumps(stats))
        return 0
    _print_stats(console, stats)
    return 0


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _print_stats(console: Console, stats: dict[str, Any]) -> None:
    console.print(f"runs started since {stats['since']}: {stats['runs']} ({stats['running']} running)")
    table = Table("metric", "value")
    table.add_row("run success rate", _fmt(stats["success_rate"], ".1%"))
    table.add_row("cost per run (USD)", _fmt(stats["cost_per_run_usd"], ".6f"))
    table.add_row("p95 run latency (s)", _fmt(stats["p95_run_latency_s"]))
    table.add_row("escalation rate", _fmt(stats["escalation_rate"], ".1%"))
    table.add_row("budget alerts", str(stats["budget_alerts"]))
    util = stats["context_utilization"]
    table.add_row(
        "context utilization (mean / max)",
        f"{_fmt(util and util['mean'], '.2%')} / {_fmt(util and util['max'], '.2%')}",
    )
    ttft = stats["time_to_first_token_s"]
    table.add_row(
        "time to first token p50 / p95 (s)", f"{_fmt(ttft and ttft['p50'])} / {_fmt(ttft and ttft['p95'])}"
    )
    for state, count in stats["by_state"].items():
        table.add_row(f"runs ended {state}", str(count))
    console.print(table)
    if stats["tool_error_rate"]:
        tools = Table("tool", "calls", "errors", "error rate")
        for tool, entry in stats["tool_error_rate"].items():
            tools.add_row(tool, str(entry["calls"]), str(entry["errors"]), _fmt(entry["error_rate"], ".1%"))
        console.print(tools)


async def cmd_costs(args: argparse.Namespace, console: Console) -> int:
    """Spend by run, blueprint, model and day; outcomes per blueprint; from the ledger."""
    from activities.ledger import Ledger
    from activities.ledger.reports import DIMENSIONS, outcomes, spend_by

    ledger = Ledger.from_settings(get_settings())
    try:
        await ledger.upgrade()
        dimensions = [args.by] if args.by else list(DIMENSIONS)
        report: dict[str, Any] = {f"by_{d}": await spend_by(ledger, d, args.limit) for d in dimensions}
        report["outcomes"] = await outcomes(ledger)
    finally:
        await ledger.close()
    if args.json:
        print(json.dumps(report))
        return 0
    for dimension in dimensions:
        table = Table(
            "key",
            "calls",
            "failed",
            "input tok",
            "output tok",
            "cache read",
            "USD",
            title=f"spend by {dimension}",
        )
        for row in report[f"by_{dimension}"]:
            table.add_row(
                row["key"],
                str(row["calls"]),
                str(row["failed_calls"]),
                str(row["input_tokens"]),
                str(row["output_tokens"]),
                str(row["cache_read_tokens"]),
                f"{row['cost_usd']:.6f}",
            )
        console.print(table)
    table = Table(
        "blueprint",
        "runs",
        "ok",
        "success rate",
        "USD",
        "USD per success",
        "alerts",
        "budget stops",
        title="outcomes",
    )
    for row in report["outcomes"]:
        rate = "-" if row["success_rate"] is None else f"{row['success_rate']:.1%}"
        per = "-" if row["cost_per_success_usd"] is None else f"{row['cost_per_success_usd']:.6f}"
        table.add_row(
            row["blueprint"],
            str(row["runs"]),
            str(row["successes"]),
            rate,
            f"{row['cost_usd']:.6f}",
            per,
            str(row["budget_alerts"]),
            str(row["budget_stops"]),
        )
    console.print(table)
    return 0


async def cmd_db(args: argparse.Namespace, console: Console) -> int:
    """`db upgrade`: apply the ledger's Alembic migrations (workers do this at start too)."""
    from activities.ledger import Ledger

    ledger = Ledger.from_settings(get_settings())
    try:
        await ledger.upgrade()
    finally:
        await ledger.close()
    console.print(f"ledger at head ({ledger.dialect})")
    return 0


# ------------------------------------------------------------------------------------- batches
class ItemsFileError(ValueError):
    """A JSONL items file that cannot be read, with the line at fault."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def read_items(path: Path) -> list[Any]:
    """One JSON value per non-empty line."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ItemsFileError(str(exc)) from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ItemsFileError(f"line {number}: not valid JSON: {exc.msg}", number) from exc
    return items


async def start_batch(
    client: Client,
    blueprint: str,
    items: list[Any],
    *,
    settings: Settings | None = None,
    concurrency: int | None = None,
    batch_id: str | None = None,
    task_queue: str | None = None,
    **fields: Any,
) -> WorkflowHandle[Any, BatchSummary]:
    """Store the items in the artifact store and start a `FactoryLineWorkflow` on their reference."""
    settings = settings or get_settings()
    ref = artifact_store(settings).put_json(items)
    request = BatchRequest(
        blueprint=blueprint,
        items_ref=ref,
        total=len(items),
        concurrency=concurrency or settings.batch_concurrency,
        **fields,
    )
    return await client.start_workflow(
        BATCH_WORKFLOW,
        request,
        id=batch_id or f"batch-{blueprint[:40]}-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue or settings.task_queue,
        result_type=BatchSummary,
    )


async def batch_progress(client: Client, batch_id: str) -> BatchProgress | None:
    """The latest run's progress (None while it is between runs of a continue-as-new)."""
    from temporalio.service import RPCError

    try:
        return await client.get_workflow_handle(batch_id).query(PROGRESS_QUERY, result_type=BatchProgress)
    except RPCError:
        return None


async def cmd_batch(args: argparse.Namespace, console: Console) -> int:
    try:
        items = read_items(Path(args.items))
    except ItemsFileError as exc:
        details = {"line": exc.line} if exc.line else {}
        if args.json:
            print(json.dumps({"error": {"code": "invalid_items", "message": str(exc), "details": details}}))
        else:
            console.print(f"[red]invalid_items[/]: {exc}")
        return 2
    client = await connect()
    handle = await start_batch(
        client,
        args.blueprint,
        items,
        concurrency=args.concurrency,
        version=args.version,
        state_visibility=args.state_visibility,
    )
    result_task = asyncio.ensure_future(handle.result())
    if args.json:
        summary = await result_task
        print(summary.model_dump_json())
        return 0 if summary.failed == 0 else 1
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console.print(f"batch [bold]{handle.id}[/]: {len(items)} items of {args.blueprint}")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("items", total=len(items), detail="")
        while not result_task.done():
            progress = await batch_progress(client, handle.id)
            if progress is not None:
                bar.update(
                    task,
                    completed=progress.done,
                    detail=(
                        f"ok {progress.succeeded} · failed {progress.failed} · in flight {progress.in_flight} · "
                        f"${progress.cost_usd:.4f} · {progress.throughput_per_s:.1f}/s"
                    ),
                )
            await asyncio.wait([result_task], timeout=1.0)
        summary = result_task.result()
        bar.update(task, completed=summary.succeeded + summary.failed)
    _print_summary(console, summary)
    return 0 if summary.failed == 0 else 1


def _print_summary(console: Console, summary: BatchSummary) -> None:
    table = Table(
        "batch",
        "items",
        "succeeded",
        "failed",
        "cost (USD)",
        "cost / success",
        "wall time",
        "items/s",
        "continued as new",
    )
    per = f"{summary.cost_per_success_usd:.6f}" if summary.cost_per_success_usd is not None else "-"
    table.add_row(
        summary.batch_id,
        str(summary.total),
        str(summary.succeeded),
        str(summary.failed),
        f"{summary.cost_usd:.6f}",
        per,
        f"{summary.wall_time_s:.1f}s",
        f"{summary.throughput_per_s:.2f}",
        str(summary.continued_as_new),
    )
    console.print(table)
    if summary.failures:
        failures = Table("item", "workflow id", "state", "error", "dead letter")
        for f in summary.failures[:50]:
            failures.add_row(
                str(f.index),
                f.workflow_id,
                f.state,
                f"{f.error_code}: {f.message}"[:80],
                f.dead_letter_id or "-",
            )
        console.print(failures)
        if len(summary.failures) > 50:
            console.print(f"... and {len(summary.failures) - 50} more (use --json)")


# --------------------------------------------------------------------------------- dead letters
def dead_letter_store(settings: Settings | None = None) -> DeadLetterStore:
    """The store workers write dead letters to."""
    from activities.bundle import default_dead_letter_store

    return default_dead_letter_store(settings or get_settings())


async def redrive(
    client: Client,
    store: DeadLetterStore,
    letter_id: str,
    *,
    task_queue: str | None = None,
    force: bool = False,
) -> WorkflowHandle[Any, RunResult]:
    """Start a new run, linked to the failed one, that reuses its plan and completed steps."""
    letter = await store.get(letter_id)
    if letter is None:
        raise LookupError(f"no dead letter {letter_id!r}")
    if letter.kind != "run":
        raise ValueError(f"{letter_id} is a failed {letter.kind}: resolve it by hand (see `dlq show`)")
    if letter.redriven_by and not force:
        raise ValueError(
            f"{letter_id} was already re-driven by {letter.redriven_by} (use --force to do it again)"
        )
    request = RunRequest.model_validate(letter.last_checkpoint.request).model_copy(
        update={"resume": letter.resume()}
    )
    suffix = uuid.uuid4().hex[:6] if force else str(letter.attempts + 1)
    handle = await start_run(
        client, request, task_queue=task_queue, workflow_id=f"{letter.workflow_id}-redrive-{suffix}"
    )
    await store.mark_redriven(letter_id, handle.id)
    return handle


async def cmd_dlq(args: argparse.Namespace, console: Console) -> int:
    store = dead_letter_store()
    if args.dlq_command == "list":
        letters = await store.list(limit=args.limit)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": x.id,
                            "kind": x.kind,
                            "workflow_id": x.workflow_id,
                            "blueprint": x.blueprint,
                            "failed_state": x.failed_state,
                            "error_code": x.error.code,
                            "cost_usd": x.cost_usd,
                            "created_at": x.created_at.isoformat(),
                            "redriven_by": x.redriven_by,
                        }
                        for x in letters
                    ]
                )
            )
            return 0
        table = Table("id", "kind", "workflow id", "failed in", "error", "attempts", "cost", "re-driven by")
        for x in letters:
            table.add_row(
                x.id,
                x.kind,
                x.workflow_id,
                x.failed_state,
                f"{x.error.code}: {x.error.message}"[:60],
                str(x.attempts),
                f"{x.cost_usd:.6f}",
                x.redriven_by or "-",
            )
        console.print(table)
        return 0
    letter = await store.get(args.id)
    if letter is None:
        _print_error(console, args.json, "not_found", f"no dead letter {args.id!r}")
        return 1
    if args.dlq_command == "show":
        print(letter.model_dump_json(indent=None if args.json else 2))
        return 0
    try:
        handle = await redrive(await connect(), store, args.id, force=args.force)
    except (LookupError, ValueError) as exc:
        _print_error(console, args.json, "cannot_redrive", str(exc))
        return 1
    if args.json:
        print(json.dumps({"workflow_id": handle.id, "redrives": args.id}))
    else:
        console.print(f"re-driving {args.id} as [bold]{handle.id}[/]")
    return 0


# ---------------------------------------------------------------------------------------- replay
async def replay_history(client: Client, workflow_id: str, run_id: str | None = None) -> str | None:
    """Replay a workflow's recorded history against this code; the non-determinism found, or None."""
    from temporalio.worker import Replayer

    from worker import WORKFLOWS
    from workflows.sandbox import sandbox_runner

    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=client.data_converter, workflow_runner=sandbox_runner()
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return (
        None
        if result.replay_failure is None
        else f"{type(result.replay_failure).__name__}: {result.replay_failure}"
    )


async def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    client = await connect()
    failure = await replay_history(client, args.workflow_id, args.run_id)
    if args.json:
        print(
            json.dumps(
                {"workflow_id": args.workflow_id, "deterministic": failure is None, "failure": failure}
            )
        )
    elif failure is None:
        console.print(f"[green]replayed[/] {args.workflow_id}: deterministic against the current code")
    else:
        console.print(f"[red]non-determinism[/] in {args.workflow_id}: {failure}")
    return 0 if failure is None else 1


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments."""
    parser = argparse.ArgumentParser(prog="starter.py", description="AI Factory operator CLI")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start an agent run")
    run.add_argument("blueprint")
    run.add_argument("--version", default=None)
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="input as JSON text, or @path to a JSON file")
    source.add_argument("--example", action="store_true", help="use the blueprint's example input")
    run.add_argument("--wait", action="store_true", help="wait for the run to end")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--dry-run", action="store_true", help="short-circuit every side-effecting tool")
    run.add_argument("--max-usd", type=float, default=None, help="budget: most dollars the run may spend")
    run.add_argument("--max-tokens", type=int, default=None, help="budget: most tokens the run may spend")
    status = sub.add_parser("status", help="show a run's state and transitions")
    status.add_argument("workflow_id")
    status.add_argument("--json", action="store_true")
    bps = sub.add_parser("blueprints", help="list blueprints, versions and input schemas")
    bps.add_argument("--json", action="store_true")
    pending = sub.add_parser("pending", help="list runs awaiting a person (FactoryState = AWAITING_HUMAN)")
    pending.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="print the escalation packet a run is waiting on")
    show.add_argument("workflow_id")
    show.add_argument("--json", action="store_true")
    for name, help_text in (
        ("approve", "approve the open escalation"),
        ("reject", "reject the open escalation"),
        ("revise", "send edited tool arguments or instructions back"),
    ):
        decide = sub.add_parser(name, help=help_text)
        decide.add_argument("workflow_id")
        decide.add_argument("--escalation-id", default=None, help="the packet's id (the open one by default)")
        decide.add_argument(
            "--by", default=_decider(), help="who decides ($FACTORY_DECIDER or the login name)"
        )
        decide.add_argument("--comment", default="", help="why")
        decide.add_argument("--json", action="store_true")
        if name == "revise":
            decide.add_argument("--arguments", default=None, help="edited tool arguments: JSON text or @file")
            decide.add_argument("--instructions", default=None, help="guidance for the agent instead")
    stats = sub.add_parser("stats", help="run success rate, cost, latency, tool errors... over a time window")
    stats.add_argument("--since", default="24h", help="window: 90m, 24h, 7d (default 24h)")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.add_argument("--limit", type=int, default=1000, help="read at most this many runs (newest first)")
    costs = sub.add_parser("costs", help="spend by run, blueprint, model and day; success rate; budget stops")
    costs.add_argument("--by", choices=["run", "blueprint", "model", "day"], default=None)
    costs.add_argument("--limit", type=int, default=50, help="rows per table")
    costs.add_argument("--json", action="store_true")
    db = sub.add_parser("db", help="ledger database maintenance")
    db.add_argument("action", choices=["upgrade"])
    batch = sub.add_parser("batch", help="run a blueprint over every item of a JSONL file (factory line)")
    batch.add_argument("blueprint")
    batch.add_argument("--items", required=True, help="JSONL file: one run input per line")
    batch.add_argument("--concurrency", type=int, default=None, help="child runs in flight at once")
    batch.add_argument("--version", default=None)
    batch.add_argument(
        "--state-visibility",
        choices=["every", "notable"],
        default="notable",
        help="FactoryState of each child: its end and any wait on a person (notable, the default), or every state",
    )
    batch.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    dlq = sub.add_parser("dlq", help="dead letters: list, show, re-drive")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list")
    dlq_list.add_argument("--limit", type=int, default=100)
    dlq_list.add_argument("--json", action="store_true")
    dlq_show = dlq_sub.add_parser("show")
    dlq_show.add_argument("id")
    dlq_show.add_argument("--json", action="store_true")
    dlq_redrive = dlq_sub.add_parser("redrive", help="start a new run that resumes at the failed state")
    dlq_redrive.add_argument("id")
    dlq_redrive.add_argument("--force", action="store_true", help="re-drive again even if already re-driven")
    dlq_redrive.add_argument("--json", action="store_true")
    replay = sub.add_parser("replay", help="replay a run's history against the current code")
    replay.add_argument("workflow_id")
    replay.add_argument("--run-id", default=None)
    replay.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    console = Console(stderr=False)
    if args.command == "run":
        from observability.setup import flush_telemetry, init_telemetry

        # The run's trace starts here, at the client: its spans go where the settings say.
        init_telemetry(get_settings(), logs=False, metrics=False)
        try:
            return asyncio.run(cmd_run(args, console))
        finally:
            flush_telemetry()
    if args.command == "status":
        return asyncio.run(cmd_status(args, console))
    if args.command == "blueprints":
        return cmd_blueprints(args, console)
    if args.command == "pending":
        return asyncio.run(cmd_pending(args, console))
    if args.command == "show":
        return asyncio.run(cmd_show(args, console))
    if args.command in DECISION_SIGNALS:
        return asyncio.run(cmd_decide(args, console))
    if args.command == "stats":
        return asyncio.run(cmd_stats(args, console))
    if args.command == "costs":
        return asyncio.run(cmd_costs(args, console))
    if args.command == "db":
        return asyncio.run(cmd_db(args, console))
    if args.command == "batch":
        return asyncio.run(cmd_batch(args, console))
    if args.command == "dlq":
        return asyncio.run(cmd_dlq(args, console))
    if args.command == "replay":
        return asyncio.run(cmd_replay(args, console))
    return 2


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: the SDK's native threads can abort it (PyGILState_Release)
    # after the command has finished and printed everything.
    os._exit(code)
