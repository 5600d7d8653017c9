"""The model-call contract shared by every provider (Anthropic, OpenAI, offline, vLLM)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.cost import LedgerEvents, ModelPrice


class ToolSpec(BaseModel):
    """What the model sees of a tool: its name, what it does, and its JSON-schema arguments."""

    name: str
    description: str
    input_schema: dict[str, Any]
    side_effect: bool = False
    compensable: bool = False
    """True when the tool declared a compensating action (the saga undoes it if the run fails)."""


class ToolCall(BaseModel):
    """A tool call proposed by the model. `arguments_error` is set when the model's arguments
    were not valid JSON: the engine answers with a structured tool error instead of crashing."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    arguments_error: str | None = None


class ToolResultBlock(BaseModel):
    """The answer to one tool call, fed back to the model on the next turn."""

    tool_call_id: str
    name: str
    content: str
    is_error: bool = False


class Message(BaseModel):
    """One conversation turn in a provider-neutral shape."""

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_results: list[ToolResultBlock] = Field(default_factory=list)


class Usage(BaseModel):
    """Token counts for one call. `input_tokens` counts every prompt token, cached ones included;
    `cache_read_tokens`/`cache_write_tokens` say how many of those were read from/written to a cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


StepKind = Literal["classify", "extract", "plan", "generate", "judge", "summarize", "execute", "compose"]


class ModelTurnInput(BaseModel):
    """Input of the `model_turn` activity: one request to one model."""

    run_id: str
    step_id: str
    step_kind: StepKind = "execute"
    provider: str
    model: str
    system: str = ""
    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    max_tokens: int = 2048
    temperature: float = 0.0
    blueprint: str = ""
    """`name@version` of the blueprint the run uses (the offline model reads it)."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Structured facts for the offline/scripted models (the run input, the task); real providers ignore it."""
    task_queue: str | None = None
    """The queue the route scheduled this call on (recorded in the ledger)."""
    route_index: int = 0
    """Position of this model in the step's route (0 = first choice)."""
    route_reason: str = ""
    """Why the route chose this model (first choice, or fallback after which failures)."""
    price: ModelPrice | None = None
    """The model's price as of the run's start; the worker's own table when None."""
    price_table_version: str = ""
    ledger: LedgerEvents = Field(default_factory=LedgerEvents)
    """State transitions since the run's last activity: written with this call's ledger row."""


class ModelTurnResult(BaseModel):
    """What one model call returned: text, tool calls, why it stopped, and what it cost in tokens."""

    provider: str
    model: str
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    stop_reason: str = "end_turn"
    usage: Usage = Field(default_factory=Usage)
    offline: bool = False
    """True when the built-in offline model produced this: deterministic, not intelligence."""
    latency_ms: float = 0.0
    response_model: str = ""
    """The model the provider says answered (e.g. a dated snapshot of `model`); empty when unknown."""
    response_id: str = ""
    """The provider's id of this response (for support tickets and trace correlation)."""
    ttft_ms: float | None = None
    """Time to first token, when the provider streamed."""
    cost_usd: float = 0.0
    """What this (successful) attempt cost, at the run's prices."""
    attempt: int = 1
    """The Temporal attempt that produced this result."""
    failed_attempts_usage: Usage = Field(default_factory=Usage)
    """Tokens billed by earlier failed attempts of this same call (each counted once, from the ledger)."""
    failed_attempts_cost_usd: float = 0.0
