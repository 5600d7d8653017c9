"""The workflow's side of observability: a span per state, a span per proposed tool call, and the
run's metrics, all replay-safe.

Spans come from the global tracer provider, which Temporal's contrib makes replay-safe (ids from
the workflow's seeded random, nothing ended while history replays), so a replayed run exports no
second copy. Metrics go through the replay-safe meter provider for the same reason. Each state's
span is made current with the state and `blueprint@version` as W3C baggage: Temporal's tracing
interceptor carries both into every activity started in that state, and log lines read them back.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.trace import Span, Status, StatusCode
from temporalio import workflow

from contracts.escalation import EscalationPacket
from contracts.model import ToolCall
from contracts.tools import ToolResult
from observability import metrics
from observability.keys import BAGGAGE_BLUEPRINT, BAGGAGE_STATE

TRACER_NAME = "ai_factory.workflow"

#: States whose entry is logged at INFO: what an operator acts on or should notice. The others
#: (the way a healthy run walks) are logged at DEBUG; at INFO a run's path is in its
#: "run finished" line, and every move is also a span, a ledger row and the `FactoryState` attribute.
NOTABLE_STATES = frozenset({"REVISING", "AWAITING_HUMAN", "REJECTED", "FAILED"})


def state_log_level(state: str) -> int:
    """The level a move into `state` is logged at."""
    return logging.INFO if state in NOTABLE_STATES else logging.DEBUG


_tracer: trace.Tracer | None = None


def _workflow_tracer() -> trace.Tracer:
    """The workflow tracer, made once (the global provider is set at most once per process)."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(TRACER_NAME)
    return _tracer


#: The tool policy's verdicts as the `decision` label of tool metrics and spans.
VERDICT_DECISIONS = {"allow": "allowed", "deny": "denied", "require_approval": "approval_required"}


def tool_decision(call: ToolCall, allowed: list[str]) -> str:
    """The gate's decision before the policy speaks: `malformed`, `denied` (not in the task) or `allowed`."""
    if call.arguments_error:
        return "malformed"
    if call.name not in allowed:
        return "denied"
    return "allowed"


class ToolObservation:
    """Handed to the workflow inside a tool span; `done(result)` records the outcome."""

    def __init__(self, span: Span, tool: str, decision: str) -> None:
        self._span = span
        self._tool = tool
        self.decision = decision

    def decided(self, decision: str, rule: str) -> None:
        """The tool policy's decision (and the rule that made it) replaces the gate's default."""
        self.decision = decision
        self._span.set_attribute("factory.tool.decision", decision)
        self._span.set_attribute("factory.tool.policy_rule", rule)

    def done(self, result: ToolResult) -> None:
        """Put the result's status on the span and count the call."""
        self._span.set_attribute("factory.tool.status", result.status)
        if result.error is not None:
            self._span.set_attribute("factory.tool.error_code", result.error.code)
        if result.status == "error":
            self._span.set_status(Status(StatusCode.ERROR, result.error.code if result.error else "error"))
        metrics.record_tool_call(tool=self._tool, status=result.status, decision=self.decision)


class RunTelemetry:
    """Owned by one `AgentRunWorkflow`: opens and closes state spans as the run moves."""

    def __init__(self) -> None:
        self._root: context.Context | None = None
        self._span: Span | None = None
        self._token: contextvars.Token[Any] | None = None
        self._blueprint = ""
        self._started_at: datetime | None = None
        # Proposed calls in flight, by object identity (tasks run concurrently; ids may repeat).
        self._tools: dict[int, ToolObservation] = {}

    def start(self, blueprint: str, now: datetime) -> None:
        """The run began: remember the workflow's own trace context as the parent of state spans."""
        self._root = context.get_current()
        self._blueprint = blueprint
        self._started_at = now

    def set_blueprint(self, ref: str) -> None:
        """The resolved `name@version` (known after VALIDATING)."""
        self._blueprint = ref
        if self._span is not None:
            self._span.set_attribute("factory.blueprint", ref)

    def enter_state(self, state: str, reason: str = "") -> None:
        """End the previous state's span and open (and make current) the new state's."""
        self._close_state()
        tracer = _workflow_tracer()
        info = workflow.info()
        span = tracer.start_span(
            f"state {state}",
            context=self._root,
            attributes={
                "factory.state": state,
                "factory.reason": reason[:500],
                "factory.blueprint": self._blueprint,
                "temporalWorkflowID": info.workflow_id,
                "temporalRunID": info.run_id,
            },
        )
        ctx = trace.set_span_in_context(span, self._root)
        ctx = baggage.set_baggage(BAGGAGE_STATE, state, ctx)
        if self._blueprint:
            ctx = baggage.set_baggage(BAGGAGE_BLUEPRINT, self._blueprint, ctx)
        self._span = span
        self._token = context.attach(ctx)

    @contextmanager
    def tool_span(self, call: ToolCall, allowed: list[str]) -> Iterator[ToolObservation]:
        """An `execute_tool {name}` span around the gate and the tool's activity."""
        decision = tool_decision(call, allowed)
        span = _workflow_tracer().start_span(
            f"execute_tool {call.name}",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": call.name,
                "gen_ai.tool.call.id": call.id,
                "factory.tool.decision": decision,
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        observation = ToolObservation(span, call.name, decision)
        self._tools[id(call)] = observation
        evicted = False
        try:
            yield observation
        except GeneratorExit:
            # The workflow was evicted with the call in flight: its coroutine is being closed,
            # perhaps in another thread. The run goes on from history elsewhere and opens this
            # span again there, so this copy is left unended, like an evicted run's state span.
            evicted = True
            raise
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            self._tools.pop(id(call), None)
            _reset_quietly(token)
            if not evicted:
                span.end()

    def policy_decided(self, call: ToolCall, verdict: str, rule: str) -> None:
        """The tool policy judged `call` (inside its `tool_span`)."""
        observation = self._tools.get(id(call))
        if observation is not None:
            observation.decided(VERDICT_DECISIONS.get(verdict, verdict), rule)

    def escalated(self, packet: EscalationPacket) -> None:
        """The run entered AWAITING_HUMAN with `packet` (counted once, not on replay)."""
        if self._span is not None:
            self._span.set_attribute("factory.escalation.kind", packet.kind)
            self._span.set_attribute("factory.escalation.id", packet.escalation_id)
        metrics.record_escalation(blueprint=self._blueprint, reason=packet.kind)

    def finish(
        self,
        state: str,
        cost_usd: float,
        now: datetime,
        error_code: str | None = None,
        *,
        states: list[str] | None = None,
        model_calls: int = 0,
        tool_calls: int = 0,
    ) -> None:
        """The run ended: close the last state span, record the run's metrics and log its one INFO
        line, with the states it walked (once each, not on replay)."""
        if self._span is not None and error_code:
            self._span.set_attribute("factory.error_code", error_code)
            if state != "COMPLETE":
                self._span.set_status(Status(StatusCode.ERROR, error_code))
        duration = (now - self._started_at).total_seconds() if self._started_at else 0.0
        metrics.record_run_finished(
            blueprint=self._blueprint, state=state, cost_usd=cost_usd, duration_s=duration
        )
        # Logged before the state's context closes, so the line still carries state and blueprint.
        workflow.logger.info(
            "run finished",
            extra={
                "final_state": state,
                "states": states or [],
                "cost_usd": cost_usd,
                "duration_s": duration,
                "model_calls": model_calls,
                "tool_calls": tool_calls,
            },
        )
        self._close_state()

    def _close_state(self) -> None:
        if self._token is not None:
            _reset_quietly(self._token)
            self._token = None
        if self._span is not None:
            self._span.end()
            self._span = None


def _reset_quietly(token: contextvars.Token[Any]) -> None:
    """What `context.detach` does, minus its error log when the token belongs to another
    contextvars.Context (a workflow evicted mid-run is finalized elsewhere)."""
    try:
        token.var.reset(token)
    except ValueError:
        pass
