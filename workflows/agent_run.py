"""`AgentRunWorkflow`: one request walked through the run state machine.

The workflow owns all state (the record, the plan, task results, usage); model turns and tool
calls are activities, so after a crash the run resumes at the last completed step.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
)

from contracts.cost import STEP_KINDS, CostPlan, LedgerEvents, ModelTarget, RunLedgerInput, TransitionEvent
from contracts.dead_letters import DeadLetter, ResumeFrom
from contracts.errors import ErrorCode, ErrorInfo
from contracts.escalation import EscalationPacket
from contracts.model import Message, ModelTurnResult, ToolCall, ToolResultBlock, Usage
from contracts.plan import Plan, PlanTask, TaskResult
from contracts.policy import PolicyDecision, ToolPolicy
from contracts.run import (
    BlueprintSnapshot,
    CheckResult,
    ModelChoice,
    ReportCard,
    ReviewAndCloseInput,
    ReviewInput,
    RunRequest,
    RunResult,
    RunStatus,
    ValidateInput,
)
from contracts.saga import SideEffectRecord
from contracts.tools import ToolCallInput, ToolResult
from policies import checks
from policies import escalation as escalation_policy
from policies.budget import budget_packet
from policies.intake import parse_input
from policies.limits import MAX_TOOL_RESULT_CHARS
from policies.naming import idempotency_key, workspace_name
from policies.plan import execution_waves, validate_plan
from policies.pricing import PRICE_TABLE_VERSION, PRICES
from policies.protocol import (
    SUBMIT_OUTPUT,
    SUBMIT_PLAN,
    SUBMIT_RESULT,
    SUBMIT_VERDICT,
    submit_output_spec,
    submit_plan_spec,
    submit_result_spec,
    submit_verdict_spec,
)
from policies.routing import single_route
from policies.tool_policy import TASK_ALLOWED_TOOLS_RULE, ProposedCall, evaluate
from states import IllegalTransition, RunRecord, RunState
from workflows import activity_stubs as act
from workflows import dead_letter
from workflows.cost_control import BudgetStop, CostGovernor, LedgerOutbox, ModelsUnavailable
from workflows.human_gate import HumanGate
from workflows.saga import Saga
from workflows.search_attributes import (
    FACTORY_BLUEPRINT,
    FACTORY_STATE,
    FACTORY_TENANT,
    SearchAttributePublisher,
)
from workflows.telemetry import RunTelemetry, state_log_level

#: Runs recorded before failures escalated ended FAILED here; they replay that way.
ESCALATE_FAILURES_PATCH = "escalate-planning-and-review-failures"
#: The states a `notable` run keeps off `FactoryState` until it needs someone (contracts/run.py).
QUIET_STATES = frozenset(
    state.value
    for state in (
        RunState.INTAKE,
        RunState.VALIDATING,
        RunState.PLANNING,
        RunState.EXECUTING,
        RunState.REVIEWING,
        RunState.REVISING,
    )
)

#: Runs recorded before it upserted search attributes once per state move and wrote the run's end
#: with a normal activity; they replay that way. Now: one upsert per activation, and the end is a
#: local activity (no extra workflow task after the run's outcome is known). It implies the older
#: "checks-as-local-activities" patch, so a new run records one patch marker, not two (each costs
#: a marker and a search-attribute upsert in every run's history).
LEAN_BOOKKEEPING_PATCH = "lean-run-bookkeeping"
#: Runs started at this `RunRequest.revision` or later take the lean path without the patch.
LEAN_REVISION = 1
#: Runs started at this revision or later record their end with the review when the card passes
#: (one local activity, `review_and_close`, instead of `review_output` then `record_run_end`).
#: Older runs replay with the two.
CLOSE_ON_REVIEW_REVISION = 2
#: Why a run whose report card passed is COMPLETE.
CARD_PASSED = "report card passed"


class RunFailed(Exception):
    """Ends the run in a given state with a structured error (control flow inside the workflow)."""

    def __init__(self, state: RunState, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.state = state
        self.error = error


def error_from_activity(exc: ActivityError, code: str) -> ErrorInfo:
    """The structured error behind a failed activity (its ApplicationError, when there is one)."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        return ErrorInfo(
            code=code,
            message=cause.message,
            retryable=not cause.non_retryable,
            details={"type": cause.type, **details},
        )
    return ErrorInfo(code=code, message=str(cause or exc), retryable=False, details={"activity": str(exc)})


# Outside the sandbox: see UNSANDBOXED_WORKFLOW_MODULES in workflows/sandbox.py.
@workflow.defn(name="AgentRunWorkflow", sandboxed=False)
class AgentRunWorkflow:
    """INTAKE → VALIDATING → PLANNING → EXECUTING → REVIEWING → COMPLETE, with the failure paths."""

    def __init__(self) -> None:
        self._record = RunRecord()
        self._request: RunRequest | None = None
        self._blueprint: BlueprintSnapshot | None = None
        self._model: ModelChoice | None = None
        self._input: Any = None
        self._plan: Plan | None = None
        self._task_results: dict[str, TaskResult] = {}
        self._in_progress: dict[str, dict[str, Any]] = {}
        self._report_cards: list[ReportCard] = []
        self._usage = Usage()
        self._cost_usd = 0.0
        self._model_calls = 0
        self._tool_calls = 0
        self._error: ErrorInfo | None = None
        self._output: Any = None
        self._telemetry = RunTelemetry()
        self._gate = HumanGate(self._move, on_escalate=self._telemetry.escalated)
        self._outbox = LedgerOutbox()
        self._outbox.attach_gate(self._gate)
        self._governor: CostGovernor | None = None
        self._saga = Saga()
        self._search = SearchAttributePublisher()
        self._lean = False
        self._close_on_review = False
        #: When the run's end went into the ledger with its review (the COMPLETE transition's time).
        self._closed_at: datetime | None = None
        self._failed_in: RunState | None = None
        self._dead_letter_id: str | None = None

    # ----------------------------------------------------------------------------------- queries
    @workflow.query(name="status")
    def status(self) -> RunStatus:
        """Where the run is and everything it has recorded so far."""
        return RunStatus(
            workflow_id=workflow.info().workflow_id,
            state=self._record.state.value,
            states_visited=self._record.states_visited,
            transitions=[t.model_dump(mode="json") for t in self._record.transitions],
            blueprint=self._blueprint,
            model=self._model,
            plan=self._plan,
            task_results=list(self._task_results.values()),
            report_cards=self._report_cards,
            usage=self._usage,
            cost_usd=self._cost_usd,
            model_calls=self._model_calls,
            tool_calls=self._tool_calls,
            error=self._error,
            dry_run=bool(self._request and self._request.dry_run),
            autonomy=self._autonomy() if self._blueprint else "",
            escalation=self._gate.open_packet,
            escalations=list(self._gate.packets.values()),
            policy_decisions=self._gate.policy_decisions,
            audit=self._gate.audit,
            fallbacks=self._governor.fallbacks if self._governor else [],
            **self._cost_status(),
            side_effects=self._saga.effects,
            compensations=self._saga.compensations,
            dead_letter_id=self._dead_letter_id,
            resumed_from=self._request.resume.dead_letter_id
            if self._request and self._request.resume
            else None,
        )

    # ----------------------------------------------------------------------------------- signals
    # Varargs so that zero or several payloads are refused and recorded instead of failing the task.
    @workflow.signal(name="approve")
    def approve(self, *payloads: Any) -> None:
        """Approve the open escalation: `{"escalation_id", "decided_by", "comment"}`."""
        self._gate.receive("approve", payloads, self._tool_schemas())

    @workflow.signal(name="reject")
    def reject(self, *payloads: Any) -> None:
        """Reject the open escalation: `{"escalation_id", "decided_by", "comment"}`."""
        self._gate.receive("reject", payloads, self._tool_schemas())

    @workflow.signal(name="revise")
    def revise(self, *payloads: Any) -> None:
        """Send it back: `{"escalation_id", "decided_by", "comment", "arguments"?, "instructions"?}`."""
        self._gate.receive("revise", payloads, self._tool_schemas())

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Any other signal name is an unknown decision: refused and recorded."""
        self._gate.refuse_unknown(name)

    # -------------------------------------------------------------------------------------- run
    @workflow.run
    async def run(self, request: RunRequest) -> RunResult:
        """Walk the state machine for one request; always returns a result, never a stuck task."""
        self._request = request
        # Runs the engine's starters stamped take the lean path with no marker; others ask the patch.
        self._lean = request.revision >= LEAN_REVISION or workflow.patched(LEAN_BOOKKEEPING_PATCH)
        self._search.coalesce = self._lean
        if self._lean and request.state_visibility == "notable":
            self._search.quiet(QUIET_STATES)
        self._close_on_review = request.revision >= CLOSE_ON_REVIEW_REVISION
        self._record = RunRecord.start(workflow.now())
        self._telemetry.start(request.blueprint, workflow.now())
        self._telemetry.enter_state(RunState.INTAKE.value, "request arrived")
        self._outbox.add(None, RunState.INTAKE.value, workflow.now(), "request received")
        self._search.set(
            (FACTORY_STATE, RunState.INTAKE.value),
            (FACTORY_BLUEPRINT, request.blueprint[:200]),
            (FACTORY_TENANT, request.tenant[:200]),
        )
        try:
            await self._walk(request)
        except RunFailed as stop:
            self._end(stop.state, stop.error)
        except (BudgetStop, ModelsUnavailable) as stop:
            self._end(RunState.FAILED, stop.error)
        except (IllegalTransition, ActivityError, ApplicationError, ValueError, KeyError, TypeError) as exc:
            # A bug or an unexpected failure still ends the run visibly instead of failing
            # workflow tasks forever.
            target = (
                RunState.REJECTED
                if self._record.state in (RunState.INTAKE, RunState.VALIDATING)
                else RunState.FAILED
            )
            self._end(target, ErrorInfo(code=ErrorCode.INTERNAL, message=f"{type(exc).__name__}: {exc}"))
        await self._after_end()
        self._telemetry.finish(
            self._record.state.value,
            self._cost_usd,
            workflow.now(),
            self._error.code if self._error else None,
            states=self._record.states_visited,
            model_calls=self._model_calls,
            tool_calls=self._tool_calls,
        )
        complete = self._record.state is RunState.COMPLETE
        with self._search.held():
            await self._record_run_end(request)
        self._search.flush(force=True)
        return RunResult(
            workflow_id=workflow.info().workflow_id,
            state=self._record.state.value,
            states_visited=self._record.states_visited,
            output=self._output if complete else None,
            error=self._error,
            usage=self._usage,
            cost_usd=self._cost_usd,
            blueprint=self._blueprint.ref if self._blueprint else request.blueprint,
            model=self._model,
            report_cards=self._report_cards,
            fallbacks=self._governor.fallbacks if self._governor else [],
            partial_output=None if complete else self._partial_output(),
            budget_alerted=bool(self._governor and self._governor.alerted),
            budget_stopped=bool(self._governor and self._governor.stopped),
            dead_letter_id=self._dead_letter_id,
            compensations=self._saga.compensations,
            model_calls=self._model_calls,
            tool_calls=self._tool_calls,
        )

    async def _walk(self, request: RunRequest) -> None:
        parsed, error = parse_input(request)
        if error is not None:
            raise RunFailed(RunState.REJECTED, error)
        self._move(RunState.VALIDATING, "intake done")
        with self._search.held():
            validated = await act.validate_request(
                ValidateInput(run_id=workflow.info().workflow_id, request=request, parsed_input=parsed),
                local=self._lean,
            )
        if validated.error is not None or validated.blueprint is None or validated.model is None:
            raise RunFailed(
                RunState.REJECTED,
                validated.error or ErrorInfo(code=ErrorCode.INTERNAL, message="validation returned nothing"),
            )
        self._blueprint, self._model, self._input = validated.blueprint, validated.model, validated.input
        self._telemetry.set_blueprint(validated.blueprint.ref)
        self._governor = CostGovernor(
            validated.cost or self._default_cost_plan(),
            self._outbox,
            self._escalate_for_budget,
            self._search,
        )
        self._move(RunState.PLANNING, f"input valid for {validated.blueprint.ref}")
        resumed = self._resume(request.resume)
        self._plan = resumed or await self._make_plan()
        how = f"resumed from {request.resume.dead_letter_id}" if resumed and request.resume else "plan"
        self._move(RunState.EXECUTING, f"{how} of {len(self._plan.tasks)} tasks")
        await self._execute_plan(self._plan)
        feedback: ReportCard | None = None
        attempt = 0
        allowed_attempts = self._blueprint.max_revisions
        while True:
            attempt += 1
            self._output = await self._compose(feedback)
            self._move(RunState.REVIEWING, f"output attempt {attempt}")
            card = await self._review(attempt)
            self._report_cards.append(card)
            if card.passed:
                self._move(RunState.COMPLETE, CARD_PASSED, at=self._closed_at)
                if self._closed_at is not None:
                    self._outbox.sent(self._outbox.pending()[1])  # written with the review
                return
            if attempt > allowed_attempts:
                failure = ErrorInfo(
                    code=ErrorCode.REVIEW_FAILED,
                    message=f"output failed review {attempt} times",
                    details={"report_card": card.model_dump(mode="json")},
                )
                card = await self._escalate_review(attempt, card, failure)
                if self._record.terminal:
                    return
                allowed_attempts += 1  # the person asked for one more revision
            feedback = card
            self._move(
                RunState.REVISING,
                f"report card failed: {len([c for c in card.checks if not c.passed])} checks",
            )
            self._move(RunState.EXECUTING, "revising the output")

    async def _escalate_review(self, attempts: int, card: ReportCard, failure: ErrorInfo) -> ReportCard:
        """Past MAX_RETRIES: fail, or ask a person (accept as is, fail, or one more revision)."""
        settings = self._policy().escalation
        if settings.on_review_failure == "fail" or not workflow.patched(ESCALATE_FAILURES_PATCH):
            raise RunFailed(RunState.FAILED, failure)
        findings = [c.model_dump(mode="json") for c in card.checks if not c.passed]
        packet = await self._gate.escalate(
            lambda esc_id, now: escalation_policy.review_packet(
                esc_id, attempts, findings, self._output, self._run_cost(), now, settings
            ),
            settings,
            resumes=lambda p: p.status == "revised",
        )
        if packet.status == "approved":
            self._move(RunState.COMPLETE, f"{packet.escalation_id}: output accepted by {packet.decided_by}")
            return card
        if packet.status == "rejected":
            raise RunFailed(
                RunState.FAILED,
                failure.model_copy(
                    update={
                        "details": {
                            **failure.details,
                            "escalation_id": packet.escalation_id,
                            "decided_by": packet.decided_by,
                        }
                    }
                ),
            )
        note = CheckResult(name="human_review", passed=False, message=packet.instructions or packet.comment)
        return card.model_copy(update={"checks": [*card.checks, note]})

    # ------------------------------------------------------------------------------ transitions
    def _move(self, target: RunState, reason: str, at: datetime | None = None) -> None:
        source = self._record.state.value
        at = at or workflow.now()
        self._record.move(target, at, reason)
        self._telemetry.enter_state(target.value, reason)
        self._outbox.add(source, target.value, at, reason)
        self._search.set((FACTORY_STATE, target.value))
        workflow.logger.log(state_log_level(target.value), "state %s (%s)", target.value, reason)

    def _end(self, target: RunState, error: ErrorInfo) -> None:
        self._error = error
        if not self._record.terminal:
            self._failed_in = self._record.state
            self._move(target, f"{error.code}: {error.message}"[:500])

    # ------------------------------------------------------------- re-drive, saga, dead letters
    def _resume(self, resume: ResumeFrom | None) -> Plan | None:
        """A re-drive reuses the failed run's plan and every step that succeeded (no model or tool
        calls repeated for them); a run that failed before it had a plan plans again."""
        if resume is None or resume.plan is None:
            return None
        plan_ids = {t.id for t in resume.plan.tasks}
        for result in resume.task_results:
            if result.status == "success" and result.task_id in plan_ids:
                self._task_results[result.task_id] = result
        return resume.plan

    async def _after_end(self) -> None:
        """Undo side effects of a run that did not finish, then dead-letter it (FAILED, or REJECTED
        at VALIDATING). Never raises: the run's result is already decided."""
        state = self._record.state
        run_id = workflow.info().workflow_id
        try:
            if state is RunState.FAILED or (state is RunState.REJECTED and self._saga.effects):
                await self._saga.compensate(run_id, workspace_name(run_id), self._compensation_dead_letter)
            if state is RunState.FAILED or (
                state is RunState.REJECTED and self._failed_in is RunState.VALIDATING
            ):
                self._dead_letter_id = await dead_letter.write(self._letter("run", "", self._error))
        except ActivityError as exc:  # the store stayed down through every retry: say so in the logs
            workflow.logger.error("could not record the end of run %s: %s", run_id, exc)

    async def _compensation_dead_letter(self, effect: SideEffectRecord, error: ErrorInfo) -> str | None:
        try:
            return await dead_letter.write(self._letter("compensation", effect.step_id, error))
        except ActivityError:
            return None

    def _letter(self, kind: str, suffix: str, error: ErrorInfo | None) -> DeadLetter:
        info = workflow.info()
        prior = self._request.resume.attempts if self._request and self._request.resume else 0
        return DeadLetter(
            id=dead_letter.dead_letter_id(info.workflow_id, info.run_id, suffix),
            kind=kind,  # type: ignore[arg-type]
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            blueprint=self._blueprint.ref
            if self._blueprint
            else (self._request.blueprint if self._request else ""),
            failed_state=(self._failed_in or self._record.state).value,
            error=error or ErrorInfo(code=ErrorCode.INTERNAL, message="no error recorded"),
            last_checkpoint=dead_letter.checkpoint(
                self._request,
                self._plan,
                list(self._task_results.values()),
                self._saga.effects,
                self._saga.compensations,
                self._report_cards,
                self._saga.compensated_tasks(),
            ),
            attempts=prior + 1,
            cost_usd=self._cost_usd,
            created_at=workflow.now(),
        )

    # -------------------------------------------------------------------------------- REVIEWING
    async def _review(self, attempt: int) -> ReportCard:
        """The report card: the blueprint's checks, then the model-as-judge step when it asks for one."""
        assert self._blueprint is not None
        with self._search.held():
            card = await self._review_checks(attempt)
        if checks.JUDGE in self._blueprint.checks and card.passed:
            verdict = await self._judge(attempt)
            card = card.model_copy(update={"checks": [*card.checks, verdict], "passed": verdict.passed})
        return card

    async def _review_checks(self, attempt: int) -> ReportCard:
        assert self._blueprint is not None and self._request is not None
        review = ReviewInput(
            run_id=workflow.info().workflow_id,
            blueprint=self._blueprint,
            output=self._output,
            attempt=attempt,
            request_input=self._input,
        )
        if not self._close_on_review:
            return await act.review_output(review, local=self._lean)
        if checks.JUDGE in self._blueprint.checks:  # a passing card still waits for the judge
            return (await act.review_and_close(ReviewAndCloseInput(review=review))).card
        # The end the run will have if this card passes, written in the same step; the COMPLETE
        # transition then carries the time the review began.
        at = workflow.now()
        events, (seq, _) = self._outbox.pending()
        complete = TransitionEvent(
            seq=seq,
            source=RunState.REVIEWING.value,
            target=RunState.COMPLETE.value,
            at=at,
            reason=CARD_PASSED,
        )
        ledger = LedgerEvents(transitions=[*events.transitions, complete], audit=events.audit)
        close = self._run_end_input(self._request, RunState.COMPLETE, at, ledger)
        result = await act.review_and_close(ReviewAndCloseInput(review=review, close=close))
        if result.closed:
            self._closed_at = at
        return result.card

    async def _judge(self, attempt: int) -> Any:
        """Model-as-judge: a model turn (step kind `judge`) that grades the output against the rubric."""
        assert self._blueprint is not None
        spec = self._blueprint.review
        messages = [
            Message(
                role="user",
                content=(
                    f"Grade this output against the rubric, then call {SUBMIT_VERDICT}.\n"
                    f"Rubric:\n{spec.judge_rubric or 'The output answers the request correctly and completely.'}\n"
                    f"Request input:\n{json.dumps(self._input, indent=1)}\n"
                    f"Output:\n{json.dumps(self._output, indent=1)}"
                ),
            )
        ]
        context = {"input": self._input, "output": self._output, "rubric": spec.judge_rubric}
        result = await self._call_model(
            f"judge/{attempt}", "judge", messages, [submit_verdict_spec()], context
        )
        call = next(
            (c for c in result.tool_calls if c.name == SUBMIT_VERDICT and not c.arguments_error), None
        )
        if call is None:
            return checks.judge_result(
                {"score": "none", "reasons": "no submit_verdict call"}, spec.judge_min_score
            )
        return checks.judge_result(call.arguments, spec.judge_min_score)

    # ------------------------------------------------------------------------------ model calls
    async def _call_model(
        self, step_id: str, kind: str, messages: list[Message], tools: list[Any], context: dict[str, Any]
    ) -> ModelTurnResult:
        """One model call, routed, budgeted and recorded by the run's cost governor."""
        assert self._blueprint is not None and self._governor is not None
        try:
            return await self._governor.call(**self._call_args(step_id, kind, messages, tools, context))
        finally:
            self._sync_cost()

    def _call_args(
        self, step_id: str, kind: str, messages: list[Message], tools: list[Any], context: dict[str, Any]
    ) -> dict[str, Any]:
        assert self._blueprint is not None
        return {
            "run_id": workflow.info().workflow_id,
            "step_id": step_id,
            "kind": kind,
            "system": self._blueprint.system_prompt,
            "messages": messages,
            "tools": tools,
            "max_tokens": self._blueprint.max_tokens_per_call,
            "blueprint_ref": self._blueprint.ref,
            "context": context,
        }

    async def _control_context(
        self, step_id: str, kind: str, messages: list[Message], tools: list[Any], context: dict[str, Any]
    ) -> list[Message]:
        """The step's conversation, with older turns summarized once it grows past the threshold."""
        assert self._governor is not None
        try:
            return await self._governor.control_context(
                **self._call_args(step_id, kind, messages, tools, context)
            )
        finally:
            self._sync_cost()

    def _sync_cost(self) -> None:
        assert self._governor is not None
        self._usage, self._cost_usd = self._governor.usage, self._governor.cost_usd
        self._model_calls = self._governor.model_calls

    # ------------------------------------------------------------------------------ cost, ledger
    def _default_cost_plan(self) -> CostPlan:
        """A plan for a worker that resolved none: the chosen model on every step, no caps."""
        assert self._model is not None
        target = ModelTarget(provider=self._model.provider, model=self._model.model)
        prices = {target.model: PRICES.get(target.model) or PRICES["offline-v1"]}
        return CostPlan(routes=single_route(target), prices=prices, price_table_version=PRICE_TABLE_VERSION)

    async def _escalate_for_budget(self, kind: str, details: dict[str, Any]) -> bool:
        """Ask a person about the run's spend (the budget policy said `escalate`); True = go on."""
        settings = self._policy().escalation
        packet = await self._gate.escalate(
            lambda esc_id, now: budget_packet(
                esc_id,
                kind,  # type: ignore[arg-type]
                self._record.state.value,
                details,
                self._usage,
                self._model_calls,
                self._tool_calls,
                now,
                settings,
            ),
            settings,
            resumes=lambda p: p.status == "approved",
        )
        return packet.status == "approved"

    def _partial_output(self) -> dict[str, Any] | None:
        """What a run that did not complete had done: kept, not thrown away."""
        if not self._task_results and self._output is None and self._plan is None:
            return None
        return {
            "plan": self._plan.model_dump(mode="json") if self._plan else None,
            "task_results": [r.model_dump(mode="json") for r in self._task_results.values()],
            "unfinished_tasks": {k: v for k, v in self._in_progress.items() if k not in self._task_results},
            "last_output": self._output,
        }

    def _cost_status(self) -> dict[str, Any]:
        governor = self._governor
        if governor is None:
            return {}
        return {
            "cost": governor.plan,
            "route_decisions": governor.decisions,
            "budget_alerted": governor.alerted,
            "budget_stopped": governor.stopped,
            "compactions": governor.compactions,
        }

    async def _record_run_end(self, request: RunRequest) -> None:
        """The run's outcome and last transitions into the ledger, unless they went with its review
        (a card that passed). A ledger outage is logged, never turned into a failed run."""
        if self._governor is not None:
            self._governor.publish_cost()
        if self._closed_at is not None and self._record.state is RunState.COMPLETE:
            return
        events, mark = self._outbox.pending()
        try:
            await act.record_run_end(
                local=self._lean,
                inp=self._run_end_input(request, self._record.state, workflow.now(), events),
            )
            self._outbox.sent(mark)
        except ActivityError as exc:
            workflow.logger.error("ledger write of the run's end failed: %s", exc)

    def _run_end_input(
        self, request: RunRequest, state: RunState, ended_at: datetime, events: LedgerEvents
    ) -> RunLedgerInput:
        """The ledger's record of the run ending in `state` at `ended_at`, with `events`."""
        governor = self._governor
        info = workflow.info()
        complete = state is RunState.COMPLETE
        return RunLedgerInput(
            run_id=info.workflow_id,
            temporal_run_id=info.run_id,
            blueprint=self._blueprint.name if self._blueprint else request.blueprint,
            blueprint_version=self._blueprint.version if self._blueprint else (request.version or ""),
            tenant=request.tenant,
            state=state.value,
            started_at=self._record.transitions[0].at,
            ended_at=ended_at,
            success=complete,
            error_code=self._error.code if self._error else None,
            budget=governor.plan.budget if governor else None,
            budget_alerted=bool(governor and governor.alerted),
            budget_stopped=bool(governor and governor.stopped),
            input_tokens=self._usage.input_tokens,
            output_tokens=self._usage.output_tokens,
            cost_usd=self._cost_usd,
            model_calls=self._model_calls,
            tool_calls=self._tool_calls,
            partial_output=None if complete else self._partial_output(),
            ledger=events,
        )

    # --------------------------------------------------------------------------------- PLANNING
    async def _make_plan(self) -> Plan:
        assert self._blueprint is not None
        bp = self._blueprint
        tools = [submit_plan_spec(bp.allowed_tools, bp.max_tasks)]
        messages = [
            Message(
                role="user",
                content=(
                    "Plan the work for this request as a list of tasks, then call submit_plan.\n"
                    f"Tools the tasks may use: {bp.allowed_tools or 'none'}. At most {bp.max_tasks} tasks.\n"
                    f"Request input:\n{json.dumps(self._input, indent=1)}"
                ),
            )
        ]
        context = {"input": self._input, "allowed_tools": bp.allowed_tools, "max_tasks": bp.max_tasks}
        problems: list[str] = []
        attempt = 0
        while True:  # rounds of attempts; a person may grant another round
            for _ in range(bp.max_plan_attempts):
                attempt += 1
                result = await self._call_model(f"plan/{attempt}", "plan", messages, tools, context)
                call = next((c for c in result.tool_calls if c.name == SUBMIT_PLAN), None)
                if call is None:
                    problems = ["no submit_plan call in the response"]
                elif call.arguments_error:
                    problems = [f"submit_plan arguments were not valid JSON: {call.arguments_error}"]
                else:
                    plan, problems = validate_plan(call.arguments, bp.allowed_tools, bp.max_tasks)
                    if plan is not None:
                        return plan
                messages = messages + self._feedback_turn(
                    result, call, "The plan was invalid:\n- " + "\n- ".join(problems)
                )
            failure = ErrorInfo(
                code=ErrorCode.PLANNING_FAILED,
                message=f"no valid plan after {attempt} attempts",
                details={"problems": problems},
            )
            guidance = await self._escalate_planning(attempt, problems, failure)
            if guidance:
                messages = messages + [
                    Message(role="user", content=f"A person reviewed the failed plans: {guidance}")
                ]

    async def _escalate_planning(self, attempts: int, problems: list[str], failure: ErrorInfo) -> str:
        """Ask a person after planning ran out of attempts (or fail, as the policy says); returns guidance."""
        settings = self._policy().escalation
        if settings.on_planning_failure == "fail" or not workflow.patched(ESCALATE_FAILURES_PATCH):
            raise RunFailed(RunState.FAILED, failure)
        packet = await self._gate.escalate(
            lambda esc_id, now: escalation_policy.planning_packet(
                esc_id, attempts, problems, self._run_cost(), now, settings
            ),
            settings,
            resumes=lambda p: p.status != "rejected",
        )
        if packet.status == "rejected":
            raise RunFailed(
                RunState.FAILED,
                failure.model_copy(
                    update={
                        "details": {
                            **failure.details,
                            "escalation_id": packet.escalation_id,
                            "decided_by": packet.decided_by,
                        }
                    }
                ),
            )
        return packet.instructions or ""

    @staticmethod
    def _feedback_turn(result: ModelTurnResult, call: ToolCall | None, feedback: str) -> list[Message]:
        """The model's answer and our structured reply to it, for the next attempt."""
        assistant = Message(role="assistant", content=result.text, tool_calls=result.tool_calls)
        if call is None:
            return [assistant, Message(role="user", content=feedback)]
        replies = [
            ToolResultBlock(
                tool_call_id=c.id, name=c.name, content=feedback if c is call else "not run", is_error=True
            )
            for c in result.tool_calls
        ]
        return [assistant, Message(role="tool", tool_results=replies)]

    # -------------------------------------------------------------------------------- EXECUTING
    async def _execute_plan(self, plan: Plan) -> None:
        waves = execution_waves(plan) or []
        by_id = {t.id: t for t in plan.tasks}
        for wave in waves:
            pending = [by_id[tid] for tid in wave if tid not in self._task_results]
            results = await asyncio.gather(*(self._run_task(t) for t in pending))
            for task, result in zip(pending, results, strict=True):
                self._task_results[task.id] = result
            failed = [r for r in results if r.status != "success"]
            if failed:
                first = failed[0]
                raise RunFailed(
                    RunState.FAILED,
                    ErrorInfo(
                        code=ErrorCode.MAX_TURNS
                        if first.error == ErrorCode.MAX_TURNS
                        else ErrorCode.TASK_FAILED,
                        message=f"task {first.task_id} ended {first.status}: {first.summary or first.error}",
                        details={"task_results": [r.model_dump(mode="json") for r in failed]},
                    ),
                )

    async def _run_task(self, task: PlanTask) -> TaskResult:
        """A bounded worker step: observe → decide → act, at most `max_turns` model turns."""
        assert self._blueprint is not None
        bp = self._blueprint
        allowed = [t for t in bp.tools if t.name in task.allowed_tools]
        tools = [*allowed, submit_result_spec(task.expected_result_schema)]
        deps = {d: self._task_results[d].result for d in task.depends_on if d in self._task_results}
        messages = [
            Message(
                role="user",
                content=(
                    f"Task {task.id} ({task.kind}): {task.instructions}\n"
                    f"Request input:\n{json.dumps(self._input, indent=1)}\n"
                    + (f"Results of earlier tasks:\n{json.dumps(deps, indent=1)}\n" if deps else "")
                    + "Use the tools as needed, then call submit_result."
                ),
            )
        ]
        context = {"input": self._input, "task": task.model_dump(mode="json")}
        tool_calls = 0
        kind = task.kind if task.kind in STEP_KINDS else "execute"
        for turn in range(1, bp.max_turns + 1):
            messages = await self._control_context(f"{task.id}/turn-{turn}", kind, messages, tools, context)
            result = await self._call_model(f"{task.id}/turn-{turn}", kind, messages, tools, context)
            self._in_progress[task.id] = {
                "turns": turn,
                "tool_calls": tool_calls,
                "last_text": result.text[:500],
            }
            messages.append(Message(role="assistant", content=result.text, tool_calls=result.tool_calls))
            if not result.tool_calls:
                messages.append(
                    Message(role="user", content="Call a tool, or submit_result to finish the task.")
                )
                continue
            replies: list[ToolResultBlock] = []
            for index, call in enumerate(result.tool_calls):
                if call.name == SUBMIT_RESULT and not call.arguments_error:
                    status = call.arguments.get("status", "success")
                    if status not in ("success", "failure", "needs_human"):
                        status = "failure"
                    return TaskResult(
                        task_id=task.id,
                        status=status,
                        result=call.arguments.get("result"),
                        summary=str(call.arguments.get("summary", ""))[:1000],
                        turns=turn,
                        tool_calls=tool_calls,
                    )
                outcome = await self._tool_call(task, turn, index, call, [t.name for t in allowed])
                tool_calls += 1
                replies.append(
                    ToolResultBlock(
                        tool_call_id=call.id,
                        name=call.name,
                        content=json.dumps(outcome.model_dump(mode="json"))[:MAX_TOOL_RESULT_CHARS],
                        is_error=outcome.status != "ok",
                    )
                )
            messages.append(Message(role="tool", tool_results=replies))
        return TaskResult(
            task_id=task.id,
            status="failure",
            summary=f"stopped after {bp.max_turns} turns without submit_result",
            turns=bp.max_turns,
            tool_calls=tool_calls,
            error=ErrorCode.MAX_TURNS,
        )

    async def _tool_call(
        self, task: PlanTask, turn: int, index: int, call: ToolCall, allowed: list[str]
    ) -> ToolResult:
        """One proposed tool call inside its `execute_tool` span (decision, status, tool metrics)."""
        with self._telemetry.tool_span(call, allowed) as observed:
            result = await self._gated_tool_call(task, turn, index, call, allowed)
            observed.done(result)
            return result

    async def _gated_tool_call(
        self, task: PlanTask, turn: int, index: int, call: ToolCall, allowed: list[str]
    ) -> ToolResult:
        """Gate, then run, one proposed tool call. Refusals are results the model reads."""
        if call.arguments_error:
            return ToolResult(
                status="error",
                tool=call.name,
                error=ErrorInfo(
                    code="malformed_arguments",
                    message=f"arguments were not a JSON object: {call.arguments_error}",
                ),
            )
        step_id = f"{task.id}/turn-{turn}/call-{index}"
        decision = self._judge_tool_call(step_id, call, allowed)
        if decision.verdict == "deny":
            code = "tool_not_allowed" if decision.rule == TASK_ALLOWED_TOOLS_RULE else "policy_denied"
            return ToolResult(
                status="denied",
                tool=call.name,
                error=ErrorInfo(
                    code=code,
                    message=f"{call.name!r} is not allowed in task {task.id}"
                    if code == "tool_not_allowed"
                    else decision.reason,
                    details={"rule": decision.rule, "allowed": allowed},
                ),
            )
        arguments = call.arguments
        if decision.verdict == "require_approval":
            packet = await self._escalate_tool_call(task, decision, call)
            refusal = self._refusal_after_escalation(packet)
            if refusal is not None:
                return refusal
            arguments = packet.revised_arguments if packet.revised_arguments is not None else call.arguments
        assert self._request is not None
        run_id = workflow.info().workflow_id
        self._tool_calls += 1
        events, mark = self._outbox.pending()
        try:
            outcome = await act.call_tool(
                ToolCallInput(
                    run_id=run_id,
                    step_id=step_id,
                    tool=call.name,
                    arguments=arguments,
                    workspace=workspace_name(run_id),
                    dry_run=self._request.dry_run,
                    idempotency_key=idempotency_key(run_id, step_id),
                    ledger=events,
                )
            )
            self._outbox.sent(mark)
        except ActivityError as exc:  # retries exhausted: the model hears about it, the run goes on
            return ToolResult(
                status="error", tool=call.name, error=error_from_activity(exc, ErrorCode.ACTIVITY_FAILED)
            )
        self._record_side_effect(task, step_id, call.name, arguments, outcome)
        return outcome

    # ------------------------------------------------------------------ policy and escalation
    def _policy(self) -> ToolPolicy:
        return (self._blueprint.tool_policy if self._blueprint else None) or ToolPolicy()

    def _autonomy(self) -> str:
        return (self._request.autonomy if self._request else None) or self._policy().autonomy

    def _tool_schemas(self) -> dict[str, dict[str, Any]]:
        return {t.name: t.input_schema for t in self._blueprint.tools} if self._blueprint else {}

    def _run_cost(self) -> escalation_policy.RunCost:
        return escalation_policy.RunCost(self._cost_usd, self._usage, self._model_calls, self._tool_calls)

    def _judge_tool_call(self, step_id: str, call: ToolCall, allowed: list[str]) -> PolicyDecision:
        """The policy's verdict on one proposed call, recorded before anything is scheduled."""
        assert self._blueprint is not None and self._request is not None
        spec = next((t for t in self._blueprint.tools if t.name == call.name), None)
        proposed = ProposedCall(
            step_id=step_id,
            tool=call.name,
            arguments=call.arguments,
            side_effect=spec.side_effect if spec else True,
            blueprint=self._blueprint.name,
            blueprint_version=self._blueprint.version,
            tenant=self._request.tenant,
            allowed_tools=tuple(allowed),
        )
        decision = evaluate(self._policy(), proposed, self._request.autonomy)
        self._gate.record_policy(decision)
        self._telemetry.policy_decided(call, decision.verdict, decision.rule)
        return decision

    async def _escalate_tool_call(
        self, task: PlanTask, decision: PolicyDecision, call: ToolCall
    ) -> EscalationPacket:
        settings = self._policy().escalation
        spec = (
            next((t for t in self._blueprint.tools if t.name == call.name), None) if self._blueprint else None
        )
        return await self._gate.escalate(
            lambda esc_id, now: escalation_policy.tool_call_packet(
                esc_id,
                decision,
                call.arguments,
                task.id,
                task.instructions,
                spec.side_effect if spec else True,
                self._run_cost(),
                now,
                settings,
            ),
            settings,
            resumes=lambda p: p.status != "rejected" or settings.on_reject == "tell_model",
        )

    def _refusal_after_escalation(self, packet: EscalationPacket) -> ToolResult | None:
        """What the model hears when the person did not approve the call as proposed (None: run it)."""
        tool = str(packet.evidence.get("tool", ""))
        if packet.status == "rejected":
            code = "approval_timed_out" if packet.timed_out else "rejected_by_human"
            error = ErrorInfo(
                code=code,
                message=packet.comment or f"{tool} was rejected",
                details={"escalation_id": packet.escalation_id, "decided_by": packet.decided_by},
            )
            if self._policy().escalation.on_reject == "end_run":
                raise RunFailed(RunState.REJECTED, error)
            return ToolResult(status="denied", tool=tool, error=error)
        if packet.status == "revised" and packet.revised_arguments is None:
            return ToolResult(
                status="denied",
                tool=tool,
                error=ErrorInfo(
                    code="revised_by_human",
                    message=packet.instructions or packet.comment,
                    details={"escalation_id": packet.escalation_id, "decided_by": packet.decided_by},
                ),
            )
        return None

    def _record_side_effect(
        self, task: PlanTask, step_id: str, tool: str, arguments: dict[str, Any], outcome: ToolResult
    ) -> None:
        """Remember a completed side effect for the saga (dry runs changed nothing)."""
        assert self._blueprint is not None
        spec = next((t for t in self._blueprint.tools if t.name == tool), None)
        if spec is None or not spec.side_effect or outcome.status != "ok" or outcome.dry_run:
            return
        self._saga.record(
            SideEffectRecord(
                step_id=step_id,
                task_id=task.id,
                tool=tool,
                arguments=arguments,
                output=outcome.output,
                idempotency_key=idempotency_key(workflow.info().workflow_id, step_id),
                compensable=spec.compensable,
            )
        )

    # ---------------------------------------------------------------------- EXECUTING (compose)
    async def _compose(self, feedback: ReportCard | None) -> Any:
        """Ask the model for the final output (with the last report card when revising)."""
        assert self._blueprint is not None
        bp = self._blueprint
        results = [r.model_dump(mode="json") for r in self._task_results.values()]
        messages = [
            Message(
                role="user",
                content=(
                    "Compose the final output from the task results and call submit_output.\n"
                    f"Request input:\n{json.dumps(self._input, indent=1)}\n"
                    f"Task results:\n{json.dumps(results, indent=1)}"
                ),
            )
        ]
        if feedback is not None:
            messages.append(
                Message(
                    role="user",
                    content=f"Your previous output failed review. Fix these problems:\n{feedback.feedback()}\n"
                    f"Previous output:\n{json.dumps(self._output, indent=1)}",
                )
            )
        context = {"input": self._input, "task_results": results}
        attempt = len(self._report_cards) + 1
        for turn in range(1, bp.max_turns + 1):
            result = await self._call_model(
                f"compose/{attempt}/turn-{turn}",
                "compose",
                messages,
                [submit_output_spec(bp.output_schema)],
                context,
            )
            call = next((c for c in result.tool_calls if c.name == SUBMIT_OUTPUT), None)
            if call is not None and not call.arguments_error and "output" in call.arguments:
                return call.arguments["output"]
            if call is None and result.text.strip().startswith("{"):
                try:
                    return json.loads(result.text)
                except json.JSONDecodeError:
                    pass
            messages = messages + self._feedback_turn(
                result,
                call,
                "Call submit_output with an object whose `output` field matches the output schema.",
            )
        raise RunFailed(
            RunState.FAILED,
            ErrorInfo(code=ErrorCode.MAX_TURNS, message=f"no output submitted after {bp.max_turns} turns"),
        )
