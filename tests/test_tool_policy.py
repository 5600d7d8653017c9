"""The tool-call policy and the escalation rules: pure functions, checked without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.escalation import EscalationPacket
from contracts.model import Usage
from contracts.policy import ArgumentPredicate, EscalationSettings, PolicyDecision, ToolPolicy, ToolRule
from policies.escalation import RunCost, judge_decision, on_deadline, tool_call_packet
from policies.json_schema import validate
from policies.tool_policy import ProposedCall, evaluate, path_outside

PAY_SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "number", "exclusiveMinimum": 0},
        "to": {"type": "string", "minLength": 3},
        "memo": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    },
    "required": ["amount", "to"],
    "additionalProperties": False,
}

POLICY = ToolPolicy(
    autonomy="autonomous",
    rules=[
        ToolRule(
            id="big-payments",
            verdict="require_approval",
            tools=["send_payment"],
            when=[ArgumentPredicate(kind="amount_over", argument="amount", limit=100)],
        ),
        ToolRule(
            id="outside-domains",
            verdict="deny",
            tools=["send_payment", "send_email"],
            when=[ArgumentPredicate(kind="recipient_domain_not_in", argument="to", domains=["example.com"])],
        ),
        ToolRule(
            id="reports-only",
            verdict="deny",
            tools=["write_file"],
            when=[ArgumentPredicate(kind="path_outside", argument="path", folder="reports")],
        ),
        ToolRule(id="acme-reads-gated", verdict="require_approval", tools=["read_file"], tenants=["acme"]),
        ToolRule(id="v2-no-delete", verdict="deny", tools=["delete_file"], blueprints=["notes@2.0.0"]),
    ],
)
ALL_TOOLS = ("send_payment", "send_email", "write_file", "read_file", "delete_file")


def proposed(tool: str, side_effect: bool = True, **arguments: object) -> ProposedCall:
    return ProposedCall(
        step_id="t1/turn-1/call-0",
        tool=tool,
        arguments=dict(arguments),
        side_effect=side_effect,
        blueprint="notes",
        blueprint_version="1.0.0",
        tenant="default",
        allowed_tools=ALL_TOOLS,
    )


def test_a_payment_over_the_limit_requires_approval_and_names_the_rule() -> None:
    decision = evaluate(POLICY, proposed("send_payment", amount=250, to="bob@example.com"))
    assert (decision.verdict, decision.rule) == ("require_approval", "big-payments")


def test_a_small_payment_inside_the_allowed_domain_falls_through_to_autonomy() -> None:
    decision = evaluate(POLICY, proposed("send_payment", amount=20, to="bob@example.com"))
    assert (decision.verdict, decision.rule) == ("allow", "autonomy:autonomous")


def test_deny_wins_over_require_approval_when_both_rules_match() -> None:
    decision = evaluate(POLICY, proposed("send_payment", amount=5000, to="mallory@evil.test"))
    assert decision.verdict == "deny" and decision.rule == "outside-domains"
    assert decision.matched_rules == ["big-payments", "outside-domains"]


def test_an_amount_sent_as_text_is_still_read_as_a_number() -> None:
    assert (
        evaluate(POLICY, proposed("send_payment", amount="5000", to="a@example.com")).verdict
        == "require_approval"
    )


@pytest.mark.parametrize("amount", [None, "lots", float("nan"), True, [1]])
def test_an_amount_that_cannot_be_checked_is_treated_as_over_the_limit(amount: object) -> None:
    assert (
        evaluate(POLICY, proposed("send_payment", amount=amount, to="a@example.com")).verdict
        == "require_approval"
    )


@pytest.mark.parametrize(
    "recipients",
    [
        "mallory@evil.test",
        ["bob@example.com", "eve@evil.test"],
        "no-at-sign",
        [],
        42,
        "bob@EXAMPLE.com.evil.test",
    ],
)
def test_any_recipient_outside_the_allowed_domains_is_denied(recipients: object) -> None:
    assert evaluate(POLICY, proposed("send_email", to=recipients)).verdict == "deny"


def test_recipients_all_inside_the_allowed_domain_pass() -> None:
    assert evaluate(POLICY, proposed("send_email", to=["a@example.com", "B@Example.COM"])).verdict == "allow"


@pytest.mark.parametrize(
    ("path", "outside"),
    [
        ("reports/q1.md", False),
        ("reports", False),
        ("./reports/a/../b.md", False),
        ("notes.md", True),
        ("reports/../secrets.txt", True),
        ("/etc/passwd", True),
        ("../reports/x", True),
        ("reportsX/a", True),
        ("reports\\..\\x", True),
        ("", True),
        (None, True),
    ],
)
def test_path_outside_a_subfolder_is_decided_after_normalizing(path: object, outside: bool) -> None:
    assert path_outside(path, "reports") is outside
    expected = "deny" if outside else "allow"
    assert evaluate(POLICY, proposed("write_file", path=path, content="x")).verdict == expected


def test_rules_can_target_a_tenant_and_a_blueprint_version() -> None:
    acme = ProposedCall(step_id="s", tool="read_file", arguments={}, tenant="acme", allowed_tools=ALL_TOOLS)
    assert evaluate(POLICY, acme).rule == "acme-reads-gated"
    v1 = proposed("delete_file", path="x")
    v2 = ProposedCall(
        step_id="s",
        tool="delete_file",
        arguments={"path": "x"},
        blueprint="notes",
        blueprint_version="2.0.0",
        allowed_tools=ALL_TOOLS,
    )
    assert evaluate(POLICY, v1).verdict == "allow"
    assert (evaluate(POLICY, v2).verdict, evaluate(POLICY, v2).rule) == ("deny", "v2-no-delete")


def test_a_tool_outside_the_tasks_list_is_denied_before_any_rule() -> None:
    call = ProposedCall(
        step_id="s", tool="send_payment", arguments={"amount": 1}, allowed_tools=("read_file",)
    )
    decision = evaluate(POLICY, call)
    assert (decision.verdict, decision.rule) == ("deny", "task_allowed_tools")


@pytest.mark.parametrize(
    ("autonomy", "side_effect", "verdict"),
    [
        ("supervised", False, "require_approval"),
        ("supervised", True, "require_approval"),
        ("bounded", False, "allow"),
        ("bounded", True, "require_approval"),
        ("autonomous", True, "allow"),
    ],
)
def test_the_runs_autonomy_level_sets_the_default_verdict(
    autonomy: str, side_effect: bool, verdict: str
) -> None:
    decision = evaluate(ToolPolicy(), proposed("write_file", side_effect=side_effect, path="x"), autonomy)  # type: ignore[arg-type]
    assert (decision.verdict, decision.rule) == (verdict, f"autonomy:{autonomy}")


def test_an_explicit_deny_rule_holds_even_for_an_autonomous_run() -> None:
    assert evaluate(POLICY, proposed("write_file", path="../x"), "autonomous").verdict == "deny"


def test_the_schema_checker_finds_what_pydantic_would_reject() -> None:
    assert validate({"amount": 50, "to": "bob@example.com"}, PAY_SCHEMA) == []
    assert validate({"amount": 50, "to": "bob@example.com", "memo": None}, PAY_SCHEMA) == []
    problems = validate({"amount": -1, "to": "b", "extra": 1, "memo": 3}, PAY_SCHEMA)
    assert any("$.amount" in p for p in problems)
    assert any("$.to" in p for p in problems)
    assert any("$.extra: unexpected field" in p for p in problems)
    assert any("$.memo" in p for p in problems)
    assert validate({"to": "bob@example.com"}, PAY_SCHEMA) == ["$.amount: required"]
    assert validate("not an object", PAY_SCHEMA) == ["$: expected object, got str"]


def _packet(settings: EscalationSettings | None = None) -> EscalationPacket:
    decision = PolicyDecision(
        step_id="t1/turn-1/call-0",
        tool="send_payment",
        verdict="require_approval",
        rule="big-payments",
        reason="over 100",
    )
    return tool_call_packet(
        "esc-1",
        decision,
        {"amount": 250, "to": "bob@example.com"},
        "t1",
        "pay the invoice",
        True,
        RunCost(0.25, Usage(input_tokens=10), 2, 1),
        datetime(2026, 1, 1, tzinfo=UTC),
        settings or EscalationSettings(),
    )


def test_a_tool_call_packet_carries_the_options_their_impact_the_evidence_and_the_cost() -> None:
    packet = _packet()
    assert [o.decision for o in packet.options] == ["approve", "reject", "revise"]
    assert all(o.impact for o in packet.options)
    assert "ends REJECTED" in packet.options[1].impact
    assert packet.evidence["arguments"] == {"amount": 250, "to": "bob@example.com"}
    assert packet.evidence["rule"] == "big-payments"
    assert (packet.cost_usd, packet.model_calls, packet.tool_calls) == (0.25, 2, 1)
    assert (packet.deadline - packet.opened_at).total_seconds() == 24 * 3600


def test_decisions_are_judged_applied_refused_ignored_or_duplicate() -> None:
    packet = _packet()
    packets = {"esc-1": packet}
    schemas = {"send_payment": PAY_SCHEMA}
    ok = {"escalation_id": "esc-1", "decided_by": "alice", "comment": "fine"}
    assert judge_decision("approve", ok, packets, schemas).outcome == "applied"
    assert judge_decision("approve", {**ok, "escalation_id": "esc-9"}, packets, schemas).outcome == "ignored"
    assert judge_decision("approve", {"escalation_id": "esc-1"}, packets, schemas).outcome == "refused"
    assert judge_decision("approve", {**ok, "decision": "maybe"}, packets, schemas).outcome == "refused"
    assert judge_decision("approve", "yes", packets, schemas).outcome == "refused"
    assert judge_decision("maybe", ok, packets, schemas).outcome == "refused"
    bad_args = {**ok, "arguments": {"amount": "lots", "to": "bob@example.com"}}
    refused = judge_decision("revise", bad_args, packets, schemas)
    assert refused.outcome == "refused" and "$.amount" in refused.reason
    packet.status, packet.decided_by, packet.comment = "approved", "alice", "fine"
    assert judge_decision("approve", ok, packets, schemas).outcome == "duplicate"
    assert judge_decision("reject", ok, packets, schemas).outcome == "ignored"


def test_a_deadline_goes_to_the_second_level_once_and_then_rejects() -> None:
    settings = EscalationSettings(on_timeout="escalate")
    packet = _packet(settings)
    assert on_deadline(packet, settings) == "escalate"
    packet.level = 2
    assert on_deadline(packet, settings) == "reject"
    assert on_deadline(_packet(), EscalationSettings()) == "reject"
