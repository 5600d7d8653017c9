"""Cost governance inside the workflow: route each model call down its chain, fit it (and its
retries) under the run's budget, raise the alert, stop at the cap, compress long contexts, and
hand pending ledger events to the next activity.

Deterministic: decisions come from `policies/` and the CostPlan recorded at VALIDATING.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

from contracts.cost import AuditEvent, CostPlan, LedgerEvents, ModelTarget, TransitionEvent
from contracts.errors import ErrorInfo
from contracts.model import Message, ModelTurnInput, ModelTurnResult, ToolSpec, Usage
from contracts.run import RouteFallback
from observability import metrics
from policies.budget import Spend, estimate_input_tokens, extended, plan_call
from policies.context import compacted, needs_compaction, split_for_compaction, summary_request
from policies.model_route import NO_WORKER_IN_TIME
from policies.pricing import cost_of
from policies.retries import policy_for
from policies.routing import chain_for, route_reason
from workflows import activity_stubs as act
from workflows.search_attributes import FACTORY_BUDGET_ALERT, FACTORY_COST_USD, SearchAttributePublisher

BUDGET_EXHAUSTED = "budget_exhausted"
MODELS_UNAVAILABLE = "models_unavailable"

#: Called with (kind, details) when the budget policy asks a person; True = the run may go on.
EscalationHook = Callable[[str, dict[str, Any]], Awaitable[bool]]


class BudgetStop(Exception):
    """The next call does not fit the budget: the run takes its fallback path."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class ModelsUnavailable(Exception):
    """Every target of a step's route failed."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class LedgerOutbox:
    """State transitions and audit entries not yet written: each activity carries the unsent
    ones, and they count as sent once an activity carrying them succeeds (a duplicate write is
    ignored by the ledger)."""

    def __init__(self) -> None:
        self._events: list[TransitionEvent] = []
        self._sent = 0
        self._gate: Any = None
        self._audit_sent = 0

    def attach_gate(self, gate: Any) -> None:
        """Drain the human gate's audit outbox too (escalations and decisions become ledger rows)."""
        self._gate = gate

    def add(self, source: str | None, target: str, at: Any, reason: str) -> None:
        """Queue one transition."""
        self._events.append(
            TransitionEvent(seq=len(self._events), source=source, target=target, at=at, reason=reason)
        )

    def pending(self) -> tuple[LedgerEvents, tuple[int, int]]:
        """The unsent events and the mark to pass to `sent` once they are written."""
        entries = list(self._gate._ledger_outbox) if self._gate is not None else []
        audit = []
        for seq in range(self._audit_sent, len(entries)):
            entry = entries[seq]
            packet = self._gate.packets.get(entry.escalation_id) if entry.escalation_id else None
            audit.append(
                AuditEvent(
                    seq=seq,
                    **entry.model_dump(
                        include={"at", "actor", "action", "outcome", "escalation_id", "reason", "details"}
                    ),
                    escalated_from=packet.escalated_from if packet is not None else None,
                )
            )
        events = LedgerEvents(transitions=self._events[self._sent :], audit=audit)
        return events, (len(self._events), len(entries))

    def sent(self, mark: tuple[int, int]) -> None:
        """Everything before `mark` is in the ledger."""
        self._sent = max(self._sent, mark[0])
        self._audit_sent = max(self._audit_sent, mark[1])


class CostGovernor:
    """Routes, budgets and context control for one run."""

    def __init__(
        self,
        plan: CostPlan,
        outbox: LedgerOutbox,
        escalate: EscalationHook,
        search: SearchAttributePublisher | None = None,
    ) -> None:
        self.plan = plan
        self._search = search or SearchAttributePublisher()
        self.outbox = outbox
        self._escalate = escalate
        self.usage = Usage()
        self.cost_usd = 0.0
        self.model_calls = 0
        self.alerted = False
        self.stopped = False
        self.compactions = 0
        self.decisions: list[dict[str, Any]] = []
        self.fallbacks: list[RouteFallback] = []
        self._queues_without_workers: set[str] = set()
        self._reserved = Spend()
        self._blueprint = ""

    # --------------------------------------------------------------------------- accounting
    @property
    def spent(self) -> Spend:
        """Tokens and dollars consumed so far (failed attempts that billed included)."""
        return Spend(tokens=self.usage.input_tokens + self.usage.output_tokens, usd=self.cost_usd)

    def _charge(self, usage: Usage, usd: float) -> None:
        self.usage = self.usage + usage
        self.cost_usd = round(self.cost_usd + usd, 8)

    def publish_cost(self) -> None:
        """Put the spend on the `FactoryCostUsd` search attribute (at the alert and at the end, not
        per call: each upsert is a history event)."""
        self._search.set((FACTORY_COST_USD, self.cost_usd))

    def _committed(self) -> Spend:
        """Spent plus what calls in flight may still spend (parallel tasks share one budget)."""
        spent = self.spent
        return Spend(tokens=spent.tokens + self._reserved.tokens, usd=spent.usd + self._reserved.usd)

    # --------------------------------------------------------------------------------- calls
    async def call(
        self,
        *,
        run_id: str,
        step_id: str,
        kind: str,
        system: str,
        messages: list[Message],
        tools: list[ToolSpec],
        max_tokens: int,
        blueprint_ref: str,
        context: dict[str, Any],
    ) -> ModelTurnResult:
        """One model call for a step: down the route's chain until a target answers. Raises
        `BudgetStop` when the next call does not fit, `ModelsUnavailable` when every target failed."""
        self._blueprint = blueprint_ref
        full_chain = chain_for(self.plan.routes, kind)
        # A queue that had no worker in time is skipped for the rest of the run (later turns do not
        # wait for it again); the last target always stays.
        chain = [t for t in full_chain if t.task_queue not in self._queues_without_workers] or full_chain[-1:]
        input_tokens = estimate_input_tokens(system, messages, tools)
        failures: list[str] = []
        for index, target in enumerate(chain):
            price = self.plan.prices[target.model]
            budget_plan = plan_call(
                self.plan.budget,
                self._committed(),
                price=price,
                input_tokens=input_tokens,
                max_tokens=max_tokens,
                max_attempts=policy_for(_policy_kind(target)).max_attempts,
            )
            if budget_plan.alert:
                await self._raise_alert(step_id)
            if budget_plan.action == "stop":
                await self._cap_reached(step_id, kind, budget_plan.reason)  # raises unless extended
                budget_plan = plan_call(
                    self.plan.budget,
                    self._committed(),
                    price=price,
                    input_tokens=input_tokens,
                    max_tokens=max_tokens,
                    max_attempts=policy_for(_policy_kind(target)).max_attempts,
                )
                if budget_plan.action == "stop":
                    self._stop(step_id, kind, budget_plan.reason)
            reason = route_reason(index, chain, failures)
            call_id = step_id if index == 0 else f"{step_id}~{index}"
            events, mark = self.outbox.pending()
            inp = ModelTurnInput(
                run_id=run_id,
                step_id=call_id,
                step_kind=kind,  # type: ignore[arg-type]
                provider=target.provider,
                model=target.model,
                system=system,
                messages=messages,
                tools=tools,
                max_tokens=budget_plan.max_tokens,
                blueprint=blueprint_ref,
                context=context,
                task_queue=target.task_queue,
                route_index=index,
                route_reason=reason,
                price=price,
                price_table_version=self.plan.price_table_version,
                ledger=events,
            )
            reserve = Spend(
                tokens=budget_plan.projected_tokens * budget_plan.max_attempts,
                usd=budget_plan.projected_usd * budget_plan.max_attempts,
            )
            self._reserved = Spend(self._reserved.tokens + reserve.tokens, self._reserved.usd + reserve.usd)
            try:
                result = await act.model_turn(
                    inp,
                    target.task_queue,
                    target.schedule_to_start_s,
                    max_attempts=budget_plan.max_attempts,
                    gpu=target.gpu,
                )
            except ActivityError as exc:
                usage, usd, what = _failure_spend(exc)
                self._charge(usage, usd)
                failures.append(f"{target.label}: {what}")
                self._decide(call_id, kind, target, index, reason, f"failed: {what}", usd)
                self._record_fallback(
                    step_id, exc, target, chain[index + 1] if index + 1 < len(chain) else None
                )
                continue
            finally:
                self._reserved = Spend(
                    self._reserved.tokens - reserve.tokens, self._reserved.usd - reserve.usd
                )
            self.outbox.sent(mark)
            self.model_calls += 1
            if not result.cost_usd and (result.usage.input_tokens or result.usage.output_tokens):
                # Activities that do not price (the GPU worker's) are priced here, at the run's prices.
                result = result.model_copy(update={"cost_usd": cost_of(price, result.usage)})
            self._charge(
                result.usage + result.failed_attempts_usage, result.cost_usd + result.failed_attempts_cost_usd
            )
            self._decide(
                call_id, kind, target, index, reason, "ok", result.cost_usd + result.failed_attempts_cost_usd
            )
            return result
        raise ModelsUnavailable(
            ErrorInfo(
                code=MODELS_UNAVAILABLE,
                message=f"every model routed for {kind} failed at step {step_id}",
                retryable=True,
                details={"failures": failures, "route": [t.label for t in chain]},
            )
        )

    def _record_fallback(
        self, step_id: str, exc: ActivityError, target: ModelTarget, following: ModelTarget | None
    ) -> None:
        """Keep the move down the route (`status.fallbacks`); remember queues without workers."""
        cause = exc.cause
        if isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
            reason, message = (
                NO_WORKER_IN_TIME,
                "no worker took the turn within the schedule-to-start timeout",
            )
            if target.task_queue:
                self._queues_without_workers.add(target.task_queue)
        elif isinstance(cause, ApplicationError):
            reason, message = cause.type or "ApplicationError", cause.message
        else:
            reason, message = type(cause or exc).__name__, str(cause or exc)
        if following is None:
            return
        self.fallbacks.append(
            RouteFallback(
                step_id=step_id,
                from_provider=target.provider,
                from_model=target.model,
                from_task_queue=target.task_queue,
                to_provider=following.provider,
                to_model=following.model,
                reason=reason,
                message=message[:500],
            )
        )
        workflow.logger.warning("step %s: %s -> %s (%s)", step_id, target.label, following.label, reason)

    def _decide(
        self, step_id: str, kind: str, target: ModelTarget, index: int, reason: str, outcome: str, usd: float
    ) -> None:
        self.decisions.append(
            {
                "step_id": step_id,
                "kind": kind,
                "provider": target.provider,
                "model": target.model,
                "task_queue": target.task_queue,
                "route_index": index,
                "reason": reason,
                "outcome": outcome,
                "cost_usd": usd,
            }
        )

    # -------------------------------------------------------------------------------- budget
    async def _raise_alert(self, step_id: str) -> None:
        if self.alerted:
            return
        self.alerted = True
        budget = self.plan.budget
        details = self._details(step_id)
        workflow.logger.warning("budget alert at %s: %s", step_id, details)
        metrics.record_budget_alert(blueprint=self._blueprint, kind=self._threshold_kind("soft"))
        self._search.set((FACTORY_BUDGET_ALERT, True))
        self.publish_cost()
        if budget.on_alert == "escalate" and not await self._escalate("budget_alert", details):
            self._stop(step_id, "", "a person stopped the run at its budget alert")

    async def _cap_reached(self, step_id: str, kind: str, reason: str) -> None:
        """At the cap: ask a person when the policy says so (approval doubles the caps once per
        escalation), else stop."""
        if self.plan.budget.on_cap == "escalate" and await self._escalate(
            "budget_cap", self._details(step_id)
        ):
            self.plan = self.plan.model_copy(update={"budget": extended(self.plan.budget)})
            workflow.logger.warning("budget extended by a person at %s: %s", step_id, self.plan.budget)
            return
        self._stop(step_id, kind, reason)

    def _details(self, step_id: str) -> dict[str, Any]:
        budget = self.plan.budget
        return {
            "step_id": step_id,
            "spent_tokens": self.spent.tokens,
            "spent_usd": self.spent.usd,
            "max_tokens": budget.max_tokens,
            "max_usd": budget.max_usd,
        }

    def _threshold_kind(self, level: str) -> str:
        """`soft_usd`, `hard_tokens`, ...: which cap the alert or stop is about (dollars first)."""
        return f"{level}_usd" if self.plan.budget.max_usd is not None else f"{level}_tokens"

    def _stop(self, step_id: str, kind: str, reason: str) -> None:
        details = {**self._details(step_id), "kind": kind, "on_cap": self.plan.budget.on_cap}
        metrics.record_budget_alert(blueprint=self._blueprint, kind=self._threshold_kind("hard"))
        self.stopped = True
        workflow.logger.warning("budget cap at %s: %s", step_id, reason)
        raise BudgetStop(ErrorInfo(code=BUDGET_EXHAUSTED, message=reason, details=details))

    # ------------------------------------------------------------------------------- context
    async def control_context(
        self,
        *,
        run_id: str,
        step_id: str,
        kind: str,
        system: str,
        messages: list[Message],
        tools: list[ToolSpec],
        max_tokens: int,
        blueprint_ref: str,
        context: dict[str, Any],
    ) -> list[Message]:
        """The conversation to send next: as is, or with older turns summarized by a
        `summarize` step when it has passed the threshold of the model's window."""
        chain = chain_for(self.plan.routes, kind)
        window = self.plan.prices[chain[0].model].context_window if chain else 200_000
        if not needs_compaction(self.plan.context, window, system, messages, tools):
            return messages
        split = split_for_compaction(messages, self.plan.context.keep_recent)
        if split is None:
            return messages
        task, older, recent = split
        self.compactions += 1
        summary = await self.call(
            run_id=run_id,
            step_id=f"{step_id}/summarize",
            kind="summarize",
            system="You compress an agent's working history without losing facts it still needs.",
            messages=summary_request(older),
            tools=[],
            max_tokens=min(max_tokens, 1024),
            blueprint_ref=blueprint_ref,
            context={**context, "summarize": True},
        )
        return compacted(task, summary.text, recent)


def _failure_spend(exc: ActivityError) -> tuple[Usage, float, str]:
    """What a failed model call consumed over all its attempts (the activity reports it in the
    error's details, summed from the ledger), and a short description of the failure."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        usage = Usage.model_validate(details.get("failed_attempts_usage") or {})
        return (
            usage,
            float(details.get("failed_attempts_cost_usd") or 0.0),
            f"{cause.type}: {cause.message}"[:200],
        )
    if isinstance(cause, TimeoutError):
        if cause.type == TimeoutType.SCHEDULE_TO_START:
            return Usage(), 0.0, "no worker picked the call up in time (schedule-to-start timeout)"
        return Usage(), 0.0, f"timed out ({cause.type.name if cause.type else 'unknown'})"
    return Usage(), 0.0, f"{type(cause).__name__}: {cause}"[:200]


def _policy_kind(target: ModelTarget) -> str:
    """The retry policy of a target's calls: GPU turns have their own."""
    return "gpu_model" if target.gpu else "model"
