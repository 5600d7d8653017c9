"""What a caller sends to start a run and what it gets back."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.cost import ContextPolicy, CostPlan, ModelTarget, RunLedgerInput
from contracts.dead_letters import ResumeFrom
from contracts.errors import ErrorInfo
from contracts.escalation import AuditEntry, EscalationPacket
from contracts.model import ToolSpec, Usage
from contracts.plan import Plan, TaskResult
from contracts.policy import Autonomy, PolicyDecision, ToolPolicy
from contracts.review import ReviewSpec
from contracts.saga import CompensationRecord, SideEffectRecord

#: The engine revision its own starters stamp on new runs (`RunRequest.revision`).
RUN_REVISION = 2

#: How often a run publishes its state to the `FactoryState` search attribute (`RunRequest.state_visibility`).
StateVisibility = Literal["every", "notable"]


class RunRequest(BaseModel):
    """Start one agent run. Give `input` (a JSON value) or `input_json` (raw text, parsed at INTAKE)."""

    blueprint: str
    version: str | None = None
    """Blueprint version; the newest registered one when omitted."""
    input: Any = None
    input_json: str | None = None
    dry_run: bool = False
    """Short-circuit every side-effecting tool; results say so."""
    provider: str | None = None
    """Model provider (`offline`, `anthropic`, `openai`, ...); the worker's settings decide when omitted."""
    model: str | None = None
    tenant: str = "default"
    autonomy: Autonomy | None = None
    """supervised / bounded / autonomous; the blueprint's policy decides when omitted."""
    oversized_bytes: int | None = None
    """Set by the client instead of the input when the input is too large to send: INTAKE rejects it."""
    max_tokens: int | None = None
    """Budget override: most input+output tokens the run may spend (the blueprint's default when None)."""
    max_usd: float | None = None
    """Budget override: most dollars the run may spend (the blueprint's default when None)."""
    routes: dict[str, list[ModelTarget]] | None = None
    """Routing override: step kind (or `*`) → ordered model targets."""
    context: ContextPolicy | None = None
    """Context-control override (threshold, window); the blueprint's default when None."""
    resume: ResumeFrom | None = None
    """Set by a re-drive: the failed run's checkpoint; completed steps are reused, not repeated."""
    revision: int = 0
    """The engine revision that started the run; `starter.start_run` and the factory line stamp
    `RUN_REVISION`. Recorded with the run's input, it tells replay which code path the run took
    without a patch marker (a marker costs an event and, through the SDK, a search attribute
    upsert in every run). Runs started without it (0) are decided by the patches, as before."""
    state_visibility: StateVisibility = "every"
    """`every`: `FactoryState` holds every state the run waits in. `notable`: a run that needs
    nobody publishes its attributes once, as it ends; from its first wait on a person or budget
    alert on, every state, as `every` does (a published value is never stale). Each publication
    is a history event and a visibility write on the server; the `status` query always answers
    the current state. For large batches, whose `progress` query is their live view."""


class ModelChoice(BaseModel):
    """The provider and model a run uses, resolved once and recorded in history."""

    provider: str
    model: str
    offline: bool = False
    task_queue: str | None = None
    """Task queue the model's turns are scheduled on (the GPU queue); the run's own queue when None."""
    schedule_to_start_s: float | None = None
    """How long a turn may wait for a worker on `task_queue` before the next model in `fallbacks` runs."""
    fallbacks: list[ModelChoice] = Field(default_factory=list)
    """The rest of the route, in order: tried when this model's turn fails or no worker takes it in time."""


class RouteFallback(BaseModel):
    """One move down the route: which step, from which model to which, and why."""

    step_id: str
    from_provider: str
    from_model: str
    from_task_queue: str | None = None
    to_provider: str
    to_model: str
    reason: str
    """`schedule_to_start_timeout` (no worker took it in time) or the failed activity's error type."""
    message: str = ""


class BlueprintSnapshot(BaseModel):
    """The exact blueprint a run resolved, recorded with the run for audit."""

    name: str
    version: str
    description: str = ""
    system_prompt: str
    allowed_tools: list[str]
    tools: list[ToolSpec] = Field(default_factory=list)
    """The schemas of the allowed tools, as the model sees them."""
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    checks: list[str] = Field(default_factory=list)
    max_turns: int = 20
    max_plan_attempts: int = 3
    max_revisions: int = 3
    max_tasks: int = 8
    max_tokens_per_call: int = 2048
    tool_policy: ToolPolicy | None = None
    """The blueprint's declared tool policy; None means the engine default (`ToolPolicy()`)."""
    review: ReviewSpec = Field(default_factory=ReviewSpec)
    """Settings of the report-card checks named in `checks`."""
    digest: str = ""
    """sha256 of the snapshot's content: two runs with the same digest ran the same blueprint."""

    @property
    def ref(self) -> str:
        """`name@version`."""
        return f"{self.name}@{self.version}"


class ValidateInput(BaseModel):
    """Input of the `validate_request` activity (VALIDATING)."""

    run_id: str
    request: RunRequest
    parsed_input: Any = None


class ValidateResult(BaseModel):
    """A resolved blueprint, the normalized input and the model to use; or a structured error."""

    blueprint: BlueprintSnapshot | None = None
    input: Any = None
    model: ModelChoice | None = None
    error: ErrorInfo | None = None
    cost: CostPlan | None = None
    """Routes, prices, budget and context policy of the run, fixed here."""


class ReviewInput(BaseModel):
    """Input of the `review_output` activity (REVIEWING)."""

    run_id: str
    blueprint: BlueprintSnapshot
    output: Any
    attempt: int = 1
    request_input: Any = None
    """The run's input, for drift checks that compare the output with the request."""


class CheckResult(BaseModel):
    """One check of a report card."""

    name: str
    passed: bool
    message: str = ""
    path: str = "$"
    skipped: bool = False
    """The check could not run here (e.g. no embedding model installed): shown, never counted as a pass."""


class ReportCard(BaseModel):
    """The structured result of REVIEWING."""

    passed: bool
    checks: list[CheckResult] = Field(default_factory=list)
    attempt: int = 1

    def feedback(self) -> str:
        """The failed checks, as text a model can act on."""
        return "\n".join(
            f"- {c.path}: {c.name}: {c.message}" for c in self.checks if not c.passed and not c.skipped
        )


class ReviewAndCloseInput(BaseModel):
    """Input of the `review_and_close` activity: the review, and the run's end to record in the
    same step if the card passes (`close`, state COMPLETE; None when something follows a passing
    card, such as the model-as-judge step)."""

    review: ReviewInput
    close: RunLedgerInput | None = None


class ReviewAndCloseResult(BaseModel):
    """The report card, and whether the run's end went into the ledger with it."""

    card: ReportCard
    closed: bool = False


class RunStatus(BaseModel):
    """What the `status` query answers (and `RunResult` embeds)."""

    workflow_id: str
    state: str
    states_visited: list[str]
    transitions: list[dict[str, Any]] = Field(default_factory=list)
    blueprint: BlueprintSnapshot | None = None
    model: ModelChoice | None = None
    plan: Plan | None = None
    task_results: list[TaskResult] = Field(default_factory=list)
    report_cards: list[ReportCard] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    model_calls: int = 0
    tool_calls: int = 0
    error: ErrorInfo | None = None
    dry_run: bool = False
    autonomy: str = ""
    """The autonomy level tool calls are judged under."""
    escalation: EscalationPacket | None = None
    """The escalation waiting for a person, if any."""
    escalations: list[EscalationPacket] = Field(default_factory=list)
    policy_decisions: list[PolicyDecision] = Field(default_factory=list)
    audit: list[AuditEntry] = Field(default_factory=list)
    """Who did what, when and why: policy verdicts, escalations, decisions, refused signals."""
    fallbacks: list[RouteFallback] = Field(default_factory=list)
    """Every time a step moved down its model route."""
    cost: CostPlan | None = None
    """The run's routes, prices, budget and context policy."""
    route_decisions: list[dict[str, Any]] = Field(default_factory=list)
    """Per model call: step, kind, chosen model, reason, outcome."""
    budget_alerted: bool = False
    budget_stopped: bool = False
    compactions: int = 0
    """Times context control summarized older turns."""
    side_effects: list[SideEffectRecord] = Field(default_factory=list)
    compensations: list[CompensationRecord] = Field(default_factory=list)
    dead_letter_id: str | None = None
    resumed_from: str | None = None
    """Dead-letter id this run re-drives, if any."""


class RunResult(BaseModel):
    """The final outcome of a run: what `run --wait --json` prints."""

    workflow_id: str
    state: str
    states_visited: list[str]
    output: Any = None
    error: ErrorInfo | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    blueprint: str = ""
    model: ModelChoice | None = None
    report_cards: list[ReportCard] = Field(default_factory=list)
    fallbacks: list[RouteFallback] = Field(default_factory=list)
    partial_output: Any = None
    """What a run stopped short of COMPLETE had done (task results, last output), kept on purpose."""
    budget_alerted: bool = False
    budget_stopped: bool = False
    dead_letter_id: str | None = None
    """Set when the run ended FAILED (or REJECTED at VALIDATING) and a dead letter was written."""
    compensations: list[CompensationRecord] = Field(default_factory=list)
    model_calls: int = 0
    tool_calls: int = 0
