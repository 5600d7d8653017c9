"""Cost governance in real runs (time-skipping Temporal, the real workflow and activities)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.ledger import Ledger, schema
from activities.models.billing import attach_billed_usage
from contracts.cost import ContextPolicy, ModelTarget
from contracts.model import ModelTurnInput, Usage
from contracts.run import RunRequest
from tests.cost.conftest import make_harness
from tests.fakes.scripted import ScriptedProvider, call
from tests.support import local_activity_names
from workflows.search_attributes import FACTORY_BUDGET_ALERT

HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-5"


def route(*targets: ModelTarget) -> dict[str, list[ModelTarget]]:
    return {"*": list(targets)}


async def activity_counts(handle: Any) -> dict[str, int]:
    """How many activities of each name the run scheduled (from its history)."""
    counts: dict[str, int] = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            counts[name] = counts.get(name, 0) + 1
    return counts


async def test_an_offline_run_records_every_call_transition_and_its_end_without_an_activity_of_its_own(
    env: WorkflowEnvironment, ledger: Ledger, tmp_path: Path
) -> None:
    harness = make_harness(env.client, ledger, tmp_path)
    result, handle = await harness.run(
        RunRequest(blueprint="cost-probe", input={"topic": "t", "items": ["a", "b"]})
    )
    assert result.state == "COMPLETE", result.error
    counts = await activity_counts(handle)
    calls = await ledger.rows(schema.model_calls, run_id=handle.id)
    assert counts["model_turn"] == len(calls)
    # Ledger writes ride on model_turn/call_tool; the run schedules no activity task of its own:
    # validation and the review, which writes the run's end with a passing card, are local
    # activities, once each.
    assert set(counts) == {"model_turn", "call_tool"}
    local = local_activity_names(await handle.fetch_history())
    assert local == ["validate_request", "review_and_close"]
    transitions = await ledger.rows(schema.state_transitions, run_id=handle.id)
    assert [t["target"] for t in sorted(transitions, key=lambda t: t["seq"])] == result.states_visited
    [run] = await ledger.rows(schema.runs, run_id=handle.id)
    assert run["state"] == "COMPLETE" and run["success"] is True and run["model_calls"] == len(calls)
    assert run["cost_usd"] == result.cost_usd and run["tool_calls"] == counts["call_tool"]
    # The end went in with the review: the run's end and its COMPLETE transition share one time.
    complete = next(t for t in transitions if t["target"] == "COMPLETE")
    assert complete["source"] == "REVIEWING" and complete["at"] == run["ended_at"]
    assert len(await ledger.rows(schema.tool_calls, run_id=handle.id)) == counts["call_tool"]


# ------------------------------------------------------------------------------------ budgets
def tool_forever(request: ModelTurnInput) -> Any:
    """A runaway model: plans normally, then calls the probe tool forever and never submits."""
    if request.step_kind == "execute":
        return [
            call("probe", {"query": f"again {len(request.messages)}"}, call_id=f"c{len(request.messages)}")
        ]
    return None


async def test_a_runaway_tool_loop_stops_at_its_dollar_cap_and_keeps_what_it_did(
    env: WorkflowEnvironment, ledger: Ledger, tmp_path: Path
) -> None:
    runaway = ScriptedProvider(tool_forever, usage=Usage(input_tokens=400, output_tokens=40))
    harness = make_harness(env.client, ledger, tmp_path, runaway)
    cap = 0.01
    result, handle = await harness.run(
        RunRequest(
            blueprint="cost-probe",
            input={"topic": "loops"},
            routes=route(ModelTarget(provider="scripted", model=HAIKU)),
            max_usd=cap,
        )
    )
    assert result.state == "FAILED" and result.error is not None
    assert result.error.code == "budget_exhausted", result.error
    assert result.budget_stopped and result.budget_alerted
    # The fallback kept what was done: the plan and the unfinished task's progress.
    assert result.partial_output["plan"]["tasks"]
    unfinished = result.partial_output["unfinished_tasks"]
    assert unfinished and next(iter(unfinished.values()))["tool_calls"] > 3
    tokens, spent = await ledger.run_spend(handle.id)
    assert 0.5 * cap <= spent <= cap, (spent, cap)
    assert abs(spent - result.cost_usd) < 1e-9
    [run] = await ledger.rows(schema.runs, run_id=handle.id)
    assert run["budget_stopped"] is True and run["error_code"] == "budget_exhausted"
    assert run["partial_output"]["unfinished_tasks"]
    described = await handle.describe()
    assert described.typed_search_attributes.get(FACTORY_BUDGET_ALERT) is True


async def test_a_runaway_tool_loop_stops_at_its_token_cap(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    runaway = ScriptedProvider(tool_forever, usage=Usage(input_tokens=300, output_tokens=30))
    harness = make_harness(env.client, sqlite_ledger, tmp_path, runaway)
    result, handle = await harness.run(
        RunRequest(
            blueprint="cost-probe",
            input={"topic": "loops"},
            routes=route(ModelTarget(provider="scripted", model=SONNET)),
            max_tokens=8_000,
        )
    )
    assert result.error is not None and result.error.code == "budget_exhausted"
    tokens, _ = await sqlite_ledger.run_spend(handle.id)
    assert tokens <= 8_000
    assert result.usage.input_tokens + result.usage.output_tokens == tokens


class BillThenFail:
    """Fails its first `failures` attempts of each execute turn after the provider billed tokens."""

    name = "flaky"

    def __init__(self, failures: int, *, always: bool = False) -> None:
        self.failures = failures
        self.always = always
        self.seen: dict[str, int] = {}
        self._ok = ScriptedProvider(
            lambda r: None, name="flaky", usage=Usage(input_tokens=100, output_tokens=20)
        )

    async def complete(self, request: ModelTurnInput) -> Any:
        from activities.models.errors import MalformedResponseError

        count = self.seen[request.step_id] = self.seen.get(request.step_id, 0) + 1
        if self.always or count <= self.failures:
            raise attach_billed_usage(
                MalformedResponseError("stream cut off after the provider billed"),
                Usage(input_tokens=1_000, output_tokens=50, cache_read_tokens=200),
            )
        result = await self._ok.complete(request)
        return result.model_copy(update={"usage": Usage(input_tokens=100, output_tokens=20)})


async def test_a_call_that_fails_after_billing_is_counted_once_per_attempt_that_consumed_tokens(
    env: WorkflowEnvironment, ledger: Ledger, tmp_path: Path
) -> None:
    flaky = BillThenFail(failures=2)
    harness = make_harness(env.client, ledger, tmp_path, flaky)
    result, handle = await harness.run(
        RunRequest(
            blueprint="cost-probe",
            input={"topic": "retries"},
            routes=route(ModelTarget(provider="flaky", model=HAIKU)),
        )
    )
    assert result.state == "COMPLETE", result.error
    rows = await ledger.rows(schema.model_calls, run_id=handle.id)
    calls = {r["step_id"] for r in rows}
    for step in calls:
        attempts = sorted((r["attempt"], r["status"]) for r in rows if r["step_id"] == step)
        assert attempts == [(1, "failed"), (2, "failed"), (3, "ok")], (step, attempts)
    failed = [r for r in rows if r["status"] == "failed"]
    assert all(r["input_tokens"] == 1_000 and r["cache_read_tokens"] == 200 for r in failed)
    # 800 uncached input at $1/M + 200 cache reads at $0.10/M + 50 output at $5/M, per failed attempt.
    assert all(abs(r["cost_usd"] - (800 * 1.0 + 200 * 0.10 + 50 * 5.0) / 1e6) < 1e-12 for r in failed)
    tokens, spent = await ledger.run_spend(handle.id)
    assert result.usage.input_tokens == sum(r["input_tokens"] for r in rows)
    assert result.usage.input_tokens + result.usage.output_tokens == tokens
    assert abs(result.cost_usd - spent) < 1e-9


async def test_the_same_attempt_recorded_twice_by_the_activity_is_counted_once(
    ledger: Ledger, tmp_path: Path
) -> None:
    from temporalio.testing import ActivityEnvironment

    from activities.model_turn import ModelActivities
    from activities.models.base import ProviderRegistry

    registry = ProviderRegistry()
    registry.register(BillThenFail(failures=0, always=True))
    activities = ModelActivities(registry, ledger)
    environment = ActivityEnvironment()
    environment.info = environment.info.__class__(**{**environment.info.__dict__, "attempt": 2})
    turn = ModelTurnInput(
        run_id=f"act-{tmp_path.name}", step_id="s1", provider="flaky", model=HAIKU, messages=[]
    )
    errors = []
    for _ in range(2):  # the same attempt delivered twice
        try:
            await environment.run(activities.model_turn, turn)
        except ApplicationError as exc:
            errors.append(exc)
    assert len(errors) == 2
    rows = await ledger.rows(schema.model_calls, run_id=turn.run_id)
    assert len(rows) == 1 and rows[0]["attempt"] == 2
    assert errors[1].details[0]["failed_attempts_usage"]["input_tokens"] == 1_000


async def test_a_model_that_keeps_failing_after_billing_falls_back_and_its_attempts_still_count(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    broken = BillThenFail(failures=0, always=True)
    harness = make_harness(env.client, sqlite_ledger, tmp_path, broken)
    result, handle = await harness.run(
        RunRequest(
            blueprint="cost-probe",
            input={"topic": "fallback"},
            routes=route(
                ModelTarget(provider="flaky", model=HAIKU),
                ModelTarget(provider="offline", model="offline-v1"),
            ),
        )
    )
    assert result.state == "COMPLETE", result.error
    tokens, spent = await sqlite_ledger.run_spend(handle.id)
    assert spent > 0 and abs(result.cost_usd - spent) < 1e-9
    assert result.usage.input_tokens + result.usage.output_tokens == tokens
    status = harness.status
    assert status is not None
    assert all(d["outcome"].startswith("failed") for d in status.route_decisions if d["route_index"] == 0)
    assert all(d["outcome"] == "ok" for d in status.route_decisions if d["route_index"] == 1)


# ------------------------------------------------------------------------------------ routing
async def test_a_gpu_route_with_no_gpu_worker_falls_back_after_its_schedule_to_start_timeout(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    small = ModelTarget(provider="vllm", model="Qwen/Qwen2.5-1.5B-Instruct", gpu=True, schedule_to_start_s=5)
    harness = make_harness(env.client, sqlite_ledger, tmp_path, gpu_task_queue=f"gpu-{tmp_path.name}")
    result, handle = await harness.run(
        RunRequest(
            blueprint="cost-probe",
            input={"topic": "gpu"},
            routes={
                "plan": [small, ModelTarget(provider="offline", model="offline-v1")],
                "*": [ModelTarget(provider="offline", model="offline-v1")],
            },
        )
    )
    assert result.state == "COMPLETE", result.error
    status = harness.status
    assert status is not None
    plan_calls = [d for d in status.route_decisions if d["kind"] == "plan"]
    assert (
        plan_calls[0]["task_queue"] == f"gpu-{tmp_path.name}"
        and "schedule-to-start" in plan_calls[0]["outcome"]
    )
    assert plan_calls[1]["model"] == "offline-v1" and plan_calls[1]["outcome"] == "ok"
    rows = await sqlite_ledger.rows(schema.model_calls, run_id=handle.id, step_kind="plan")
    assert [r["route_index"] for r in rows] == [1]
    assert (
        "fallback #1 to offline/offline-v1" in rows[0]["route_reason"]
        and "schedule-to-start" in rows[0]["route_reason"]
    )


async def test_a_gpu_route_runs_on_the_gpu_queue_when_a_gpu_worker_serves_it(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    from activities.model_turn import ModelActivities
    from activities.models.base import ProviderRegistry
    from worker import build_worker

    gpu_queue = f"gpu-{tmp_path.name}"
    small = ModelTarget(provider="vllm", model="Qwen/Qwen2.5-1.5B-Instruct", gpu=True, schedule_to_start_s=5)
    gpu_models = ProviderRegistry()
    gpu_models.register(ScriptedProvider(lambda r: None, name="vllm"))
    harness = make_harness(env.client, sqlite_ledger, tmp_path, gpu_task_queue=gpu_queue)
    gpu_worker = build_worker(
        env.client,
        harness.settings,
        task_queue=gpu_queue,
        workflows=[],
        activities=[ModelActivities(gpu_models, sqlite_ledger).model_turn],
    )
    async with gpu_worker:
        result, handle = await harness.run(
            RunRequest(
                blueprint="cost-probe",
                input={"topic": "gpu"},
                routes={"plan": [small], "*": [ModelTarget(provider="offline", model="offline-v1")]},
            )
        )
    assert result.state == "COMPLETE", result.error
    [row] = await sqlite_ledger.rows(schema.model_calls, run_id=handle.id, step_kind="plan")
    assert (row["provider"], row["task_queue"], row["route_index"]) == ("vllm", gpu_queue, 0)
    assert row["cost_usd"] > 0  # the small local model is priced, not free


async def test_a_provider_that_keeps_failing_opens_its_circuit_and_the_route_moves_on(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    broken = BillThenFail(failures=0, always=True)
    harness = make_harness(env.client, sqlite_ledger, tmp_path, broken, circuit_failure_threshold=2)
    result, handle = await harness.run(
        RunRequest(
            blueprint="cost-probe",
            input={"topic": "circuit", "items": ["a", "b", "c"]},
            routes=route(
                ModelTarget(provider="flaky", model=HAIKU),
                ModelTarget(provider="offline", model="offline-v1"),
            ),
        )
    )
    assert result.state == "COMPLETE", result.error
    status = harness.status
    assert status is not None
    first_choice = [d for d in status.route_decisions if d["route_index"] == 0]
    assert len(first_choice) > 3
    assert all("CircuitOpen" in d["outcome"] for d in first_choice[1:])
    # Only the calls before the circuit opened reached the provider.
    assert sum(broken.seen.values()) == 2


async def test_bad_budgets_and_routes_are_rejected_at_validating_with_a_structured_error(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    harness = make_harness(env.client, sqlite_ledger, tmp_path)
    bad = [
        ({"max_usd": 0}, "max_usd must be a positive number"),
        ({"max_tokens": -5}, "max_tokens must be positive"),
        (
            {"routes": route(ModelTarget(provider="offline", model="gpt-99-imaginary"))},
            "not in the price table",
        ),
        (
            {"routes": route(ModelTarget(provider="nobody", model=HAIKU))},
            "provider 'nobody' is not configured",
        ),
        ({"routes": {"dance": [ModelTarget(provider="offline", model="offline-v1")]}}, "unknown step kind"),
        ({"routes": {"plan": [ModelTarget(provider="offline", model="offline-v1")]}}, "no catch-all route"),
    ]
    for fields, expected in bad:
        result, _ = await harness.run(RunRequest(blueprint="cost-probe", input={"topic": "x"}, **fields))
        assert result.state == "REJECTED" and result.states_visited == ["INTAKE", "VALIDATING", "REJECTED"]
        assert result.error is not None and result.error.code == "invalid_cost_policy"
        assert any(expected in p for p in result.error.details["problems"]), (expected, result.error.details)


# ------------------------------------------------------------------------------------ context
def probe_n_times(turns: int) -> Any:
    counts: dict[str, int] = {}

    def script(request: ModelTurnInput) -> Any:
        if request.step_kind != "execute":
            return None
        task = request.step_id.split("/")[0]
        counts[task] = counts.get(task, 0) + 1
        if counts[task] <= turns:
            return [call("probe", {"query": f"q{counts[task]}"}, call_id=f"c{counts[task]}")]
        return [call("submit_result", {"status": "success", "result": {"probes": turns}, "summary": "done"})]

    return script


async def test_context_control_summarizes_older_turns_as_a_step_of_its_own(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    sizes: dict[bool, list[int]] = {}
    for enabled in (False, True):
        model = ScriptedProvider(probe_n_times(14))
        harness = make_harness(env.client, sqlite_ledger, tmp_path, model)
        result, handle = await harness.run(
            RunRequest(
                blueprint="cost-probe",
                input={"topic": "long"},
                routes=route(ModelTarget(provider="scripted", model=HAIKU)),
                context=ContextPolicy(enabled=enabled, threshold=0.5, window_tokens=3_000, keep_recent=4),
            )
        )
        assert result.state == "COMPLETE", result.error
        status = harness.status
        assert status is not None
        sizes[enabled] = [len(r.model_dump_json()) for r in model.requests if r.step_kind == "execute"]
        summaries = await sqlite_ledger.rows(schema.model_calls, run_id=handle.id, step_kind="summarize")
        if enabled:
            assert status.compactions >= 1 and len(summaries) == status.compactions
        else:
            assert status.compactions == 0 and summaries == []
    assert max(sizes[True]) < 0.6 * max(sizes[False])


# ------------------------------------------------------------------------------- operations
async def test_a_rate_limited_provider_gets_its_own_queue_and_worker(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    from worker import build_provider_workers

    model = ScriptedProvider(lambda r: None)
    queue = f"tq-{tmp_path.name[-20:]}"
    harness = make_harness(
        env.client, sqlite_ledger, tmp_path, model, task_queue=queue, provider_rate_limits={"scripted": 20.0}
    )
    models = harness.model_activities()
    [provider_worker] = build_provider_workers(env.client, harness.settings, models.model_turn)
    assert provider_worker.task_queue == f"{queue}-scripted"
    async with provider_worker:
        result, handle = await harness.run(
            RunRequest(
                blueprint="cost-probe",
                input={"topic": "queues"},
                routes=route(ModelTarget(provider="scripted", model=HAIKU)),
            ),
            task_queue=queue,
        )
    assert result.state == "COMPLETE", result.error
    rows = await sqlite_ledger.rows(schema.model_calls, run_id=handle.id)
    assert rows and {r["task_queue"] for r in rows} == {f"{queue}-scripted"}


async def test_costs_reports_spend_success_rate_and_budget_stops(
    env: WorkflowEnvironment, tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    import json

    import settings as settings_module
    import starter

    ledger = Ledger(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}")
    await ledger.upgrade()
    runaway = ScriptedProvider(tool_forever, usage=Usage(input_tokens=400, output_tokens=40))
    harness = make_harness(env.client, ledger, tmp_path, runaway)
    scripted = route(ModelTarget(provider="scripted", model=HAIKU))
    await harness.run(
        RunRequest(blueprint="cost-probe", input={"topic": "a"}, routes=scripted, max_usd=0.005)
    )
    await harness.run(RunRequest(blueprint="cost-probe", input={"topic": "b"}))
    await harness.run(RunRequest(blueprint="cost-probe", input={"topic": "c"}))
    await ledger.close()
    monkeypatch.setattr(settings_module, "get_settings", lambda: harness.settings)
    monkeypatch.setattr(starter, "get_settings", lambda: harness.settings)
    assert await starter.cmd_costs(starter.build_parser().parse_args(["costs", "--json"]), None) == 0  # type: ignore[arg-type]
    # The SDK core may log to stdout too: the report is the one JSON object line.
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith('{"by_')]
    report = json.loads(line)
    [total] = [r for r in report["outcomes"] if r["blueprint"] == "*"]
    assert total["runs"] == 3 and total["successes"] == 2 and total["budget_stops"] == 1
    assert total["success_rate"] == round(2 / 3, 4)
    assert abs(total["cost_per_success_usd"] - total["cost_usd"] / 2) < 1e-9 and total["cost_usd"] > 0
    models = {r["key"]: r for r in report["by_model"]}
    assert models[f"scripted/{HAIKU}"]["cost_usd"] == total["cost_usd"]
    assert len(report["by_run"]) == 3 and len(report["by_day"]) == 1
    assert report["by_blueprint"][0]["key"] == "cost-probe"
    # The rich tables render too.
    from rich.console import Console

    assert await starter.cmd_costs(starter.build_parser().parse_args(["costs"]), Console(width=200)) == 0
    assert "budget stops" in capsys.readouterr().out


def test_a_worker_refuses_to_start_on_a_bad_price_file_or_rate_limit(tmp_path: Path) -> None:
    import pytest

    from policies.pricing import PriceFileError
    from settings import Settings
    from worker import check_cost_config

    bad = tmp_path / "prices.json"
    bad.write_text('{"models": {"my-model": {"input": -1, "output": 2}}}')
    with pytest.raises(PriceFileError, match="my-model"):
        check_cost_config(Settings(price_file=bad))
    with pytest.raises(ValueError, match="provider_rate_limits must be positive"):
        check_cost_config(Settings(provider_rate_limits={"anthropic": 0}))
    good = tmp_path / "prices.toml"
    good.write_text('version = "ops-1"\n[models."my-model"]\ninput = 1.5\noutput = 6\ncache_read = 0.15\n')
    check_cost_config(Settings(price_file=good))


async def test_the_run_publishes_its_spend_on_the_cost_search_attribute(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    from workflows.search_attributes import FACTORY_COST_USD

    model = ScriptedProvider(lambda r: None, usage=Usage(input_tokens=1_000, output_tokens=100))
    harness = make_harness(env.client, sqlite_ledger, tmp_path, model)
    result, handle = await harness.run(
        RunRequest(
            blueprint="cost-probe",
            input={"topic": "sa"},
            routes=route(ModelTarget(provider="scripted", model=SONNET)),
        )
    )
    assert result.cost_usd > 0
    described = await handle.describe()
    assert described.typed_search_attributes.get(FACTORY_COST_USD) == result.cost_usd


async def test_runs_that_fell_back_compacted_and_stopped_at_their_cap_replay_deterministically(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer

    from workflows.agent_run import AgentRunWorkflow
    from workflows.sandbox import sandbox_runner

    runaway = ScriptedProvider(tool_forever, usage=Usage(input_tokens=400, output_tokens=40))
    broken = BillThenFail(failures=0, always=True)
    harness = make_harness(env.client, sqlite_ledger, tmp_path, runaway, broken)
    result, handle = await harness.run(
        RunRequest(
            blueprint="cost-probe",
            input={"topic": "replay"},
            routes=route(
                ModelTarget(provider="flaky", model=HAIKU), ModelTarget(provider="scripted", model=HAIKU)
            ),
            max_usd=0.02,
            context=ContextPolicy(threshold=0.5, window_tokens=3_000),
        )
    )
    assert result.error is not None and result.error.code == "budget_exhausted"
    assert harness.status is not None and harness.status.compactions >= 1
    history = await handle.fetch_history()
    await Replayer(
        workflows=[AgentRunWorkflow], data_converter=pydantic_data_converter, workflow_runner=sandbox_runner()
    ).replay_workflow(history)
