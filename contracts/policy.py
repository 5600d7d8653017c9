"""Tool-call policy as data: rules, autonomy levels, escalation settings, and recorded decisions.

Blueprints declare a `ToolPolicy`; the pure evaluator lives in `policies.tool_policy`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PolicyVerdict = Literal["allow", "deny", "require_approval"]
"""What the policy says about one proposed tool call."""

Autonomy = Literal["supervised", "bounded", "autonomous"]
"""How much a run may do without a person: every call gated / side effects gated / only rules gate."""


class ArgumentPredicate(BaseModel):
    """A test on one argument (dotted path into the arguments). Fails closed: a value that cannot
    be checked (missing, wrong type, unparsable) counts as matching, so a rule never lets it slip."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["amount_over", "path_outside", "recipient_domain_not_in", "recipient_domain_in"]
    argument: str
    limit: float | None = None
    """`amount_over`: the call matches when the number is greater than this."""
    folder: str | None = None
    """`path_outside`: the call matches when the path leaves this relative folder."""
    domains: list[str] = Field(default_factory=list)
    """`recipient_domain_*`: e-mail domains (an address, or a list of them, in the argument)."""


class ToolRule(BaseModel):
    """One rule: when it applies (tools, blueprints, tenants, argument predicates) and its verdict."""

    model_config = ConfigDict(extra="forbid")

    id: str
    verdict: PolicyVerdict
    tools: list[str] = Field(default_factory=lambda: ["*"])
    """Tool names, or `*` for any tool."""
    blueprints: list[str] = Field(default_factory=list)
    """`name` or `name@version`; empty means any blueprint."""
    tenants: list[str] = Field(default_factory=list)
    """Tenant ids; empty means any tenant."""
    when: list[ArgumentPredicate] = Field(default_factory=list)
    """Every predicate must match for the rule to apply."""
    reason: str = ""


class EscalationSettings(BaseModel):
    """How long a person has to decide, and what happens without them or after a rejection."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = 24 * 3600
    """Durable deadline of a first-level escalation."""
    on_timeout: Literal["reject", "escalate"] = "reject"
    """At the deadline: apply a rejection, or hand the packet to the second level."""
    second_level: str = "second-level"
    """Who the second level is (recorded on the packet)."""
    second_level_timeout_s: float = 24 * 3600
    """Deadline of the second level; when it passes, the escalation is rejected."""
    on_reject: Literal["end_run", "tell_model"] = "end_run"
    """A rejected tool call ends the run REJECTED, or is reported to the model as denied."""
    on_planning_failure: Literal["escalate", "fail"] = "escalate"
    """After the planning attempts run out."""
    on_review_failure: Literal["escalate", "fail"] = "escalate"
    """After the review → revise cycles run out (MAX_RETRIES)."""


class ToolPolicy(BaseModel):
    """A blueprint's policy over tool calls. The default keeps today's behaviour: autonomous,
    no rules, escalations with a 24 h deadline that defaults to rejection."""

    model_config = ConfigDict(extra="forbid")

    autonomy: Autonomy = "autonomous"
    rules: list[ToolRule] = Field(default_factory=list)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)


class PolicyDecision(BaseModel):
    """A verdict on one proposed tool call and the rule that made it, as recorded in the run."""

    step_id: str
    tool: str
    verdict: PolicyVerdict
    rule: str
    """The deciding rule's id, or `autonomy:<level>` / `task_allowed_tools` for built-in defaults."""
    reason: str = ""
    matched_rules: list[str] = Field(default_factory=list)
