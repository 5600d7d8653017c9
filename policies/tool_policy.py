"""The policy over every proposed tool call: allow, deny or require approval. Pure and deterministic.

Order of precedence: a tool outside the task's allowed list is denied; otherwise every matching
rule votes and deny wins over require_approval, which wins over allow; with no matching rule the
run's autonomy level decides.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field
from typing import Any

from contracts.policy import ArgumentPredicate, Autonomy, PolicyDecision, PolicyVerdict, ToolPolicy, ToolRule

_STRENGTH: dict[PolicyVerdict, int] = {"allow": 0, "require_approval": 1, "deny": 2}
TASK_ALLOWED_TOOLS_RULE = "task_allowed_tools"


@dataclass(frozen=True)
class ProposedCall:
    """What the policy sees of one tool call and where it happens."""

    step_id: str
    tool: str
    arguments: dict[str, Any]
    side_effect: bool = False
    blueprint: str = ""
    blueprint_version: str = ""
    tenant: str = "default"
    allowed_tools: tuple[str, ...] = field(default_factory=tuple)


def autonomy_default(autonomy: Autonomy, side_effect: bool) -> PolicyVerdict:
    """The verdict when no rule matched: supervised gates everything, bounded gates side effects."""
    if autonomy == "supervised":
        return "require_approval"
    if autonomy == "bounded" and side_effect:
        return "require_approval"
    return "allow"


def evaluate(policy: ToolPolicy, call: ProposedCall, autonomy: Autonomy | None = None) -> PolicyDecision:
    """Decide one proposed call; `autonomy` (the run's setting) overrides the policy's default level."""
    level = autonomy or policy.autonomy
    if call.tool not in call.allowed_tools:
        return PolicyDecision(
            step_id=call.step_id,
            tool=call.tool,
            verdict="deny",
            rule=TASK_ALLOWED_TOOLS_RULE,
            reason=f"{call.tool!r} is not among the task's tools {sorted(call.allowed_tools)}",
        )
    matched = [rule for rule in policy.rules if rule_matches(rule, call)]
    if not matched:
        verdict = autonomy_default(level, call.side_effect)
        kind = "side-effecting" if call.side_effect else "read-only"
        return PolicyDecision(
            step_id=call.step_id,
            tool=call.tool,
            verdict=verdict,
            rule=f"autonomy:{level}",
            reason=f"no rule matched; {level} autonomy for a {kind} tool",
        )
    # The first rule with the strongest verdict decides (deny wins); ties go to the earliest rule.
    deciding = max(matched, key=lambda r: _STRENGTH[r.verdict])
    return PolicyDecision(
        step_id=call.step_id,
        tool=call.tool,
        verdict=deciding.verdict,
        rule=deciding.id,
        reason=deciding.reason or f"rule {deciding.id} says {deciding.verdict}",
        matched_rules=[r.id for r in matched],
    )


def rule_matches(rule: ToolRule, call: ProposedCall) -> bool:
    """True when the rule applies to this tool, blueprint and tenant and all its predicates match."""
    if "*" not in rule.tools and call.tool not in rule.tools:
        return False
    if rule.blueprints:
        ref = f"{call.blueprint}@{call.blueprint_version}"
        if call.blueprint not in rule.blueprints and ref not in rule.blueprints:
            return False
    if rule.tenants and call.tenant not in rule.tenants:
        return False
    return all(predicate_matches(p, call.arguments) for p in rule.when)


_MISSING = object()


def _lookup(arguments: dict[str, Any], dotted: str) -> Any:
    value: Any = arguments
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def predicate_matches(predicate: ArgumentPredicate, arguments: dict[str, Any]) -> bool:
    """Evaluate one predicate; a value that cannot be checked matches (fail closed)."""
    value = _lookup(arguments, predicate.argument)
    if predicate.kind == "amount_over":
        amount = _as_number(value)
        return amount is None or amount > (predicate.limit if predicate.limit is not None else 0.0)
    if predicate.kind == "path_outside":
        return path_outside(value, predicate.folder or "")
    domains = _domains(value)
    allowed = {d.lower().strip() for d in predicate.domains}
    if domains is None:
        return True
    if predicate.kind == "recipient_domain_not_in":
        return any(d not in allowed for d in domains)
    return any(d in allowed for d in domains)  # recipient_domain_in: a blocklist


def _as_number(value: Any) -> float | None:
    # Tools validate arguments in lax mode, so "5000" would be paid as 5000: read it as a number.
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def path_outside(value: Any, folder: str) -> bool:
    """True when `value` is not a relative path inside `folder` (after normalizing `..` and `.`)."""
    if not isinstance(value, str) or not value or "\x00" in value or "\\" in value:
        return True
    if value.startswith("/"):
        return True
    path = posixpath.normpath(value)
    base = posixpath.normpath(folder) if folder else "."
    if path == ".." or path.startswith("../"):
        return True
    if base == ".":
        return False
    return not (path == base or path.startswith(base + "/"))


def _domains(value: Any) -> list[str] | None:
    addresses = value if isinstance(value, list) else [value]
    if not addresses:
        return None
    found: list[str] = []
    for address in addresses:
        if not isinstance(address, str) or address.count("@") < 1:
            return None
        domain = address.rsplit("@", 1)[1].strip().strip(">").lower()
        if not domain:
            return None
        found.append(domain)
    return found
