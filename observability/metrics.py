"""The engine's metric instruments, with one recording function each.

Instruments hang off the global OpenTelemetry meter provider; `observability.setup` installs a
replay-safe one (Temporal's contrib), so a recording made from workflow code is dropped while
history replays and each run counts once. The same provider feeds the worker's Prometheus
endpoint and, when configured, an OTLP metrics exporter.

How the headline figures come out of these (PromQL over the Prometheus names):
- run success rate: `sum(rate(factory_runs_total{state="COMPLETE"}[1h])) / sum(rate(factory_runs_total[1h]))`
- cost per run: `rate(factory_run_cost_usd_sum[1h]) / rate(factory_run_cost_usd_count[1h])`
- p95 run latency: `histogram_quantile(0.95, sum by (le) (rate(factory_run_duration_seconds_bucket[1h])))`
- tool error rate by tool: `sum by (tool) (rate(factory_tool_calls_total{status!="ok"}[1h])) / sum by (tool) (rate(factory_tool_calls_total[1h]))`
- escalation rate: `rate(factory_escalations_total[1h]) / rate(factory_runs_total[1h])`
- budget alerts: `increase(factory_budget_alerts_total[1h])`
- context utilization, time to first token: the `factory_model_*` histograms.
"""

from __future__ import annotations

from opentelemetry import metrics

from contracts.model import Usage

METER_NAME = "ai_factory"

_SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]
_USD_BUCKETS = [0, 0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 50]
_RATIO_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0]
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576]

_meter = metrics.get_meter(METER_NAME)

RUNS = _meter.create_counter("factory.runs", unit="1", description="Agent runs that ended, by final state")
RUN_COST = _meter.create_histogram(
    "factory.run.cost_usd",
    unit="1",
    description="Model cost of one run in USD",
    explicit_bucket_boundaries_advisory=_USD_BUCKETS,
)
RUN_DURATION = _meter.create_histogram(
    "factory.run.duration",
    unit="s",
    description="Wall time of one run, start to terminal state",
    explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
)
TOOL_CALLS = _meter.create_counter(
    "factory.tool.calls", unit="1", description="Tool calls by tool, status and policy decision"
)
ESCALATIONS = _meter.create_counter(
    "factory.escalations", unit="1", description="Runs that escalated to a human, by reason"
)
BUDGET_ALERTS = _meter.create_counter(
    "factory.budget.alerts", unit="1", description="Budget thresholds crossed, by kind"
)
CONTEXT_UTILIZATION = _meter.create_histogram(
    "factory.model.context_utilization",
    unit="1",
    description="Share of the model's context window a prompt used",
    explicit_bucket_boundaries_advisory=_RATIO_BUCKETS,
)
TIME_TO_FIRST_TOKEN = _meter.create_histogram(
    "factory.model.time_to_first_token",
    unit="s",
    description="Seconds until the first output token (the whole response for non-streaming calls)",
    explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
)
MODEL_COST = _meter.create_counter("factory.model.cost_usd", unit="1", description="Model spend in USD")
# GenAI semantic-convention client metrics, so generic GenAI dashboards work too.
TOKEN_USAGE = _meter.create_histogram(
    "gen_ai.client.token.usage",
    unit="{token}",
    description="Tokens per model call, by type",
    explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
)
OPERATION_DURATION = _meter.create_histogram(
    "gen_ai.client.operation.duration",
    unit="s",
    description="Duration of one model call",
    explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
)


def record_run_finished(*, blueprint: str, state: str, cost_usd: float, duration_s: float) -> None:
    """A run reached a terminal state (called from the workflow; dropped on replay)."""
    attrs = {"blueprint": blueprint, "state": state}
    RUNS.add(1, attrs)
    RUN_COST.record(cost_usd, attrs)
    RUN_DURATION.record(duration_s, attrs)


def record_tool_call(*, tool: str, status: str, decision: str) -> None:
    """One proposed tool call: the policy's decision (allowed/denied/malformed) and the result's status."""
    TOOL_CALLS.add(1, {"tool": tool, "status": status, "decision": decision})


def record_escalation(*, blueprint: str, reason: str) -> None:
    """A run escalated to a human (`reason`: the packet's kind). Called from workflow code as the run
    enters AWAITING_HUMAN (`workflows/telemetry.py`, via `HumanGate(on_escalate=...)`)."""
    ESCALATIONS.add(1, {"blueprint": blueprint, "reason": reason})


def record_budget_alert(*, blueprint: str, kind: str) -> None:
    """A budget threshold was crossed (`kind`: `soft_usd`/`soft_tokens` at the alert line,
    `hard_usd`/`hard_tokens` at the cap). Called from workflow code (`workflows/cost_control.py`)."""
    BUDGET_ALERTS.add(1, {"blueprint": blueprint, "kind": kind})


def record_model_call(
    *,
    provider: str,
    model: str,
    usage: Usage,
    duration_s: float,
    time_to_first_token_s: float,
    context_utilization: float | None,
    cost_usd: float,
) -> None:
    """One model call, from the `model_turn` activity (activities are not replayed)."""
    attrs = {"gen_ai.system": provider, "gen_ai.request.model": model}
    TOKEN_USAGE.record(usage.input_tokens, {**attrs, "gen_ai.token.type": "input"})
    TOKEN_USAGE.record(usage.output_tokens, {**attrs, "gen_ai.token.type": "output"})
    OPERATION_DURATION.record(duration_s, attrs)
    TIME_TO_FIRST_TOKEN.record(time_to_first_token_s, {"provider": provider, "model": model})
    if context_utilization is not None:
        CONTEXT_UTILIZATION.record(context_utilization, {"provider": provider, "model": model})
    MODEL_COST.add(cost_usd, {"provider": provider, "model": model})
