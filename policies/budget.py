"""Per-run budgets: validate them at start, project every call's worst case, decide alert or stop.

Pure: the workflow asks `plan_call` before each model call with what it has spent so far.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from contracts.cost import ModelPrice, RunBudget
from contracts.escalation import EscalationOption, EscalationPacket
from contracts.model import Message, ToolSpec, Usage
from contracts.policy import EscalationSettings
from policies.pricing import max_call_cost

#: Below this many output tokens a call is not worth making: the run stops at its cap instead.
MIN_OUTPUT_TOKENS = 64
#: Characters per token assumed when projecting input: deliberately pessimistic (real tokenizers
#: average ~4 on English and JSON), so projections overestimate and the cap holds.
CHARS_PER_TOKEN = 3
#: Fixed overhead per message for role markers and framing.
TOKENS_PER_MESSAGE = 8


def budget_problems(budget: RunBudget) -> list[str]:
    """Why a budget cannot be run with (zero, negative or non-finite caps, a bad alert fraction)."""
    problems = []
    if budget.max_tokens is not None and budget.max_tokens <= 0:
        problems.append(f"max_tokens must be positive, got {budget.max_tokens}")
    if budget.max_usd is not None and (not math.isfinite(budget.max_usd) or budget.max_usd <= 0):
        problems.append(f"max_usd must be a positive number, got {budget.max_usd}")
    if not 0 < budget.alert_fraction <= 1:
        problems.append(f"alert_fraction must be in (0, 1], got {budget.alert_fraction}")
    return problems


def merge_budget(default: RunBudget | None, max_tokens: int | None, max_usd: float | None) -> RunBudget:
    """The blueprint's default budget with the request's overrides on top."""
    budget = default or RunBudget()
    update: dict[str, Any] = {}
    if max_tokens is not None:
        update["max_tokens"] = max_tokens
    if max_usd is not None:
        update["max_usd"] = max_usd
    return budget.model_copy(update=update)


def estimate_input_tokens(system: str, messages: list[Message], tools: list[ToolSpec]) -> int:
    """A deterministic, pessimistic token count of a prompt (no tokenizer inside a workflow)."""
    chars = len(system)
    chars += sum(len(json.dumps(t.model_dump(mode="json"), separators=(",", ":"))) for t in tools)
    for message in messages:
        chars += len(message.content)
        chars += sum(
            len(c.name) + len(json.dumps(c.arguments, separators=(",", ":"))) for c in message.tool_calls
        )
        chars += sum(len(r.content) + len(r.name) for r in message.tool_results)
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * (len(messages) + 1)


@dataclass(frozen=True)
class Spend:
    """What a run has consumed so far (every attempt that billed tokens included)."""

    tokens: int = 0
    usd: float = 0.0


@dataclass(frozen=True)
class CallPlan:
    """The budget's answer before a call: go (with a possibly lowered `max_tokens` and a bound on
    attempts so retries fit too), or stop. `alert` says the spend has crossed the alert line."""

    action: Literal["go", "stop"]
    max_tokens: int
    max_attempts: int
    projected_tokens: int
    projected_usd: float
    alert: bool
    reason: str = ""


def plan_call(
    budget: RunBudget,
    spent: Spend,
    *,
    price: ModelPrice,
    input_tokens: int,
    max_tokens: int,
    max_attempts: int,
) -> CallPlan:
    """Fit the next call (and its retries) under the caps. Output tokens are trimmed first; then the
    number of attempts is bounded so `attempts × worst case` stays under what is left."""
    room_tokens = None if budget.max_tokens is None else budget.max_tokens - spent.tokens
    room_usd = None if budget.max_usd is None else budget.max_usd - spent.usd
    out = max_tokens
    if room_tokens is not None:
        out = min(out, room_tokens - input_tokens)
    if room_usd is not None and price.output > 0:
        per_input = max(price.input, price.cache_write)
        affordable = (room_usd * 1_000_000 - input_tokens * per_input) / price.output
        out = min(out, math.floor(affordable))
    if out < min(MIN_OUTPUT_TOKENS, max_tokens):
        return CallPlan(
            "stop",
            0,
            0,
            input_tokens + max(out, 0),
            0.0,
            True,
            reason=_stop_reason(budget, spent, input_tokens),
        )
    worst_tokens = input_tokens + out
    worst_usd = max_call_cost(price, input_tokens, out)
    attempts = max_attempts
    if room_tokens is not None:
        attempts = min(attempts, room_tokens // worst_tokens)
    if room_usd is not None and worst_usd > 0:
        attempts = min(attempts, math.floor(room_usd / worst_usd))
    attempts = max(attempts, 1)
    # The alert looks ahead: spend after this call's worst case crossing the line raises it now.
    alert = crossed_alert(budget, Spend(spent.tokens + worst_tokens, spent.usd + worst_usd))
    return CallPlan("go", out, attempts, worst_tokens, worst_usd, alert)


def crossed_alert(budget: RunBudget, spent: Spend) -> bool:
    """True once spend has reached `alert_fraction` of either cap."""
    if budget.max_tokens is not None and spent.tokens >= budget.alert_fraction * budget.max_tokens:
        return True
    return budget.max_usd is not None and spent.usd >= budget.alert_fraction * budget.max_usd


def _stop_reason(budget: RunBudget, spent: Spend, input_tokens: int) -> str:
    parts = []
    if budget.max_tokens is not None:
        parts.append(f"{spent.tokens}/{budget.max_tokens} tokens spent")
    if budget.max_usd is not None:
        parts.append(f"${spent.usd:.6f}/${budget.max_usd:.6f} spent")
    return f"the next call (~{input_tokens} input tokens) does not fit the budget: {', '.join(parts)}"


def extended(budget: RunBudget) -> RunBudget:
    """The budget after a person approved going past the cap: each cap grows by its original size."""
    return budget.model_copy(
        update={
            "max_tokens": None if budget.max_tokens is None else budget.max_tokens * 2,
            "max_usd": None if budget.max_usd is None else budget.max_usd * 2,
        }
    )


def budget_packet(
    esc_id: str,
    kind: Literal["budget_alert", "budget_cap"],
    escalated_from: str,
    details: dict[str, Any],
    spent_usage: Usage,
    model_calls: int,
    tool_calls: int,
    now: datetime,
    settings: EscalationSettings,
) -> EscalationPacket:
    """The packet that asks a person about a run's spend (the policy said `escalate`)."""
    spent = (
        f"${details.get('spent_usd', 0):.4f} of ${details.get('max_usd') or 0:.4f}"
        if details.get("max_usd")
        else (f"{details.get('spent_tokens', 0)} of {details.get('max_tokens')} tokens")
    )
    if kind == "budget_alert":
        question = f"the run has spent {spent} (past its alert line); may it go on?"
        approve = "the run goes on under its cap"
    else:
        question = f"the run's next call does not fit its budget ({spent}); may it spend up to twice its cap?"
        approve = "each cap doubles once and the run goes on; it asks again at the new cap"
    return EscalationPacket(
        escalation_id=esc_id,
        kind=kind,
        escalated_from=escalated_from,
        trying_to=f"step {details.get('step_id', '?')}: another model call",
        decision_needed=question,
        options=[
            EscalationOption(decision="approve", impact=approve),
            EscalationOption(
                decision="reject", impact="the run stops now, FAILED budget_exhausted, keeping what it did"
            ),
        ],
        evidence=details,
        cost_usd=float(details.get("spent_usd", 0.0)),
        usage=spent_usage,
        model_calls=model_calls,
        tool_calls=tool_calls,
        opened_at=now,
        deadline=now + timedelta(seconds=settings.timeout_s),
        assignee="first-level",
    )
