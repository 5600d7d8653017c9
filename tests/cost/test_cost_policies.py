"""The pure cost policies: prices, budgets, routing, context control, and the circuit breaker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.exceptions import ApplicationError

from activities.models.circuit import CircuitBreaker
from contracts.cost import STEP_KINDS, ContextPolicy, ModelPrice, ModelTarget, RunBudget
from contracts.model import Message, ToolCall, ToolResultBlock, Usage
from policies.budget import MIN_OUTPUT_TOKENS, Spend, budget_problems, merge_budget, plan_call
from policies.context import compacted, needs_compaction, split_for_compaction
from policies.pricing import PRICES, PriceFileError, cost_of, max_call_cost, parse_price_file, price_table
from policies.routing import (
    CATCH_ALL,
    TIERED_ROUTES,
    chain_for,
    resolve_queues,
    route_problems,
    routed_models,
)

SONNET = PRICES["claude-sonnet-4-5"]


def test_cached_tokens_are_priced_at_the_cache_rates() -> None:
    usage = Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=6_000, cache_write_tokens=2_000)
    expected = (2_000 * 3.0 + 6_000 * 0.30 + 2_000 * 3.75 + 1_000 * 15.0) / 1e6
    assert cost_of(SONNET, usage) == round(expected, 8)
    assert cost_of(SONNET, usage) < cost_of(SONNET, Usage(input_tokens=10_000, output_tokens=1_000)) + 0.01


def test_the_operator_price_file_overrides_and_versions_the_table() -> None:
    version, prices = parse_price_file(
        '{"version": "ops-7", "models": {"claude-sonnet-4-5": {"input": 2, "output": 10}, "local": {"input": 0.01, "output": 0.02}}}',
        toml=False,
    )
    effective_version, table = price_table(prices, version)
    assert effective_version.endswith("+ops-7") and table["claude-sonnet-4-5"].input == 2
    assert table["local"].output == 0.02 and table["claude-haiku-4-5"] == PRICES["claude-haiku-4-5"]
    with pytest.raises(PriceFileError):
        parse_price_file("not json", toml=False)
    with pytest.raises(PriceFileError):
        parse_price_file('{"models": {"x": {"input": "free"}}}', toml=False)


@pytest.mark.parametrize(
    "budget, problem",
    [
        (RunBudget(max_usd=0), "max_usd"),
        (RunBudget(max_usd=-1), "max_usd"),
        (RunBudget(max_usd=float("nan")), "max_usd"),
        (RunBudget(max_tokens=0), "max_tokens"),
        (RunBudget(alert_fraction=1.5), "alert_fraction"),
    ],
)
def test_unusable_budgets_are_refused(budget: RunBudget, problem: str) -> None:
    assert any(problem in p for p in budget_problems(budget))


def test_the_request_overrides_the_blueprint_budget() -> None:
    merged = merge_budget(RunBudget(max_usd=1.0, max_tokens=10_000, on_cap="escalate"), None, 0.25)
    assert (merged.max_usd, merged.max_tokens, merged.on_cap) == (0.25, 10_000, "escalate")


def test_the_next_call_is_trimmed_to_fit_and_stopped_when_it_cannot() -> None:
    budget = RunBudget(max_usd=0.05)
    plan = plan_call(
        budget, Spend(usd=0.0), price=SONNET, input_tokens=1_000, max_tokens=4_096, max_attempts=5
    )
    assert plan.action == "go" and plan.max_tokens == 3_083  # (0.05e6 - 1000 * 3.75) / 15
    assert plan.max_attempts == 1 and plan.projected_usd <= 0.05
    stop = plan_call(
        budget, Spend(usd=0.049), price=SONNET, input_tokens=1_000, max_tokens=4_096, max_attempts=5
    )
    assert stop.action == "stop" and stop.alert and "does not fit" in stop.reason


@given(
    cap=st.floats(0.001, 5.0),
    spent_share=st.floats(0.0, 1.0),
    input_tokens=st.integers(1, 150_000),
    max_tokens=st.integers(1, 8_192),
    attempts=st.integers(1, 6),
)
def test_a_planned_call_and_all_its_retries_never_exceed_the_dollar_cap(
    cap: float, spent_share: float, input_tokens: int, max_tokens: int, attempts: int
) -> None:
    spent = Spend(usd=cap * spent_share)
    plan = plan_call(
        RunBudget(max_usd=cap),
        spent,
        price=SONNET,
        input_tokens=input_tokens,
        max_tokens=max_tokens,
        max_attempts=attempts,
    )
    if plan.action == "go":
        assert 1 <= plan.max_tokens <= max_tokens and 1 <= plan.max_attempts <= attempts
        worst = max_call_cost(SONNET, input_tokens, plan.max_tokens) * plan.max_attempts
        assert spent.usd + worst <= cap * (1 + 1e-9)


@given(cap=st.integers(100, 200_000), spent=st.integers(0, 200_000), input_tokens=st.integers(1, 50_000))
def test_a_planned_call_and_all_its_retries_never_exceed_the_token_cap(
    cap: int, spent: int, input_tokens: int
) -> None:
    plan = plan_call(
        RunBudget(max_tokens=cap),
        Spend(tokens=spent),
        price=SONNET,
        input_tokens=input_tokens,
        max_tokens=4_096,
        max_attempts=5,
    )
    if plan.action == "go":
        assert spent + (input_tokens + plan.max_tokens) * plan.max_attempts <= cap
        assert plan.max_tokens >= min(MIN_OUTPUT_TOKENS, 4_096)


def test_the_alert_looks_ahead_at_the_projected_spend() -> None:
    budget = RunBudget(max_usd=1.0)
    price = ModelPrice(input=1.0, output=1.0)
    quiet = plan_call(
        budget, Spend(usd=0.5), price=price, input_tokens=1_000, max_tokens=1_000, max_attempts=1
    )
    loud = plan_call(
        budget, Spend(usd=0.799), price=price, input_tokens=1_000, max_tokens=1_000, max_attempts=1
    )
    assert not quiet.alert and loud.alert


def test_routes_fall_back_to_the_catch_all_and_gpu_targets_land_on_the_gpu_queue() -> None:
    resolved = resolve_queues(
        TIERED_ROUTES, gpu_task_queue="gpu-q", provider_queues={"anthropic": "q-anthropic"}
    )
    classify = chain_for(resolved, "classify")
    assert [t.task_queue for t in classify] == ["gpu-q", "q-anthropic", "q-anthropic"]
    assert chain_for(resolved, "compose") == resolved[CATCH_ALL]
    assert set(routed_models(TIERED_ROUTES)) == {
        "Qwen/Qwen2.5-1.5B-Instruct",
        "claude-haiku-4-5",
        "claude-sonnet-4-6",
    }
    assert route_problems(TIERED_ROUTES, prices=PRICES, providers=["anthropic"]) == []


def test_route_problems_name_every_mistake() -> None:
    routes = {
        "plan": [ModelTarget(provider="anthropic", model="claude-9")],
        "juggle": [ModelTarget(provider="ghost", model="claude-haiku-4-5", schedule_to_start_s=0)],
    }
    problems = route_problems(routes, prices=PRICES, providers=["anthropic"])
    text = "\n".join(problems)
    assert "'claude-9' is not in the price table" in text and "unknown step kind" in text
    assert "'ghost' is not configured" in text and "schedule_to_start_s must be positive" in text
    assert "no catch-all route" in text
    assert (
        route_problems(
            {k: [ModelTarget(provider="anthropic", model="claude-haiku-4-5")] for k in STEP_KINDS},
            prices=PRICES,
            providers=["anthropic"],
        )
        == []
    )


def _tool_turn(i: int) -> list[Message]:
    return [
        Message(role="assistant", tool_calls=[ToolCall(id=f"c{i}", name="probe", arguments={"q": i})]),
        Message(
            role="tool", tool_results=[ToolResultBlock(tool_call_id=f"c{i}", name="probe", content="x" * 300)]
        ),
    ]


def test_compaction_keeps_the_task_and_never_separates_a_result_from_its_call() -> None:
    messages = [Message(role="user", content="the task")] + [m for i in range(8) for m in _tool_turn(i)]
    for keep in range(1, 8):
        split = split_for_compaction(messages, keep)
        assert split is not None
        task, older, recent = split
        assert task.content == "the task" and recent[0].role == "assistant"
        assert len(older) + len(recent) + 1 == len(messages)
        after = compacted(task, "summary text", recent)
        assert after[0].role == "user" and "summary text" in after[0].content
    again = compacted(after[0], "newer summary", recent)
    assert again[0].content.count("Summary of earlier turns") == 1 and "newer summary" in again[0].content


def test_compaction_starts_past_the_threshold_of_the_window() -> None:
    messages = [Message(role="user", content="task")] + [m for i in range(8) for m in _tool_turn(i)]
    assert needs_compaction(ContextPolicy(threshold=0.5, window_tokens=1_000), 200_000, "", messages, [])
    assert not needs_compaction(ContextPolicy(threshold=0.5), 200_000, "", messages, [])
    assert not needs_compaction(ContextPolicy(enabled=False, window_tokens=100), 200_000, "", messages, [])


def test_a_circuit_opens_after_consecutive_provider_failures_and_closes_after_a_good_trial() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown_s=30, clock=lambda: now[0])
    key = "anthropic/claude-haiku-4-5"
    for _ in range(2):
        breaker.before_call(key)
        breaker.record_failure(key, "ProviderServerError")
    breaker.record_failure(key, "ProviderBadRequest")  # a bad request says nothing about provider health
    breaker.before_call(key)
    breaker.record_failure(key, "ProviderOverloaded")
    with pytest.raises(ApplicationError) as opened:
        breaker.before_call(key)
    assert opened.value.type == "CircuitOpen" and opened.value.non_retryable
    now[0] = 31.0
    breaker.before_call(key)  # the one trial after the cool-down
    with pytest.raises(ApplicationError):
        breaker.before_call(key)  # nobody else while the trial is out
    breaker.record_success(key)
    breaker.before_call(key)
    assert not breaker.is_open(key)
