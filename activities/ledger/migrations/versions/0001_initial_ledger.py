"""ledger: runs, transitions, model and tool calls, escalations, decisions, dead letters

Revision ID: 0001
Revises:
Create Date: 2026-11-21 10:37:35.144483
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("failed_state", sa.String(length=32), nullable=False),
        sa.Column("error", sa.JSON(), nullable=False),
        sa.Column("last_checkpoint", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Float(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "redriven_by",
            sa.String(length=255),
            nullable=True,
            comment="workflow id of the run that redrove this one",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dead_letters_workflow_id"), ["workflow_id"], unique=False)

    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(length=255), nullable=False),
        sa.Column("escalation_id", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column(
            "decision",
            sa.String(length=32),
            nullable=False,
            comment="approve | reject | send_back | timeout default",
        ),
        sa.Column("actor", sa.String(length=255), server_default="", nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("decision_id"),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_escalation_id"), ["escalation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_run_id"), ["run_id"], unique=False)

    op.create_table(
        "escalations",
        sa.Column("escalation_id", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False, comment="the state that escalated"),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("policy", sa.String(length=64), server_default="", nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("escalation_id"),
    )
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_escalations_run_id"), ["run_id"], unique=False)

    op.create_table(
        "model_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("step_id", sa.String(length=255), nullable=False),
        sa.Column("step_kind", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False, comment="Temporal activity attempt (1-based)"),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("task_queue", sa.String(length=255), nullable=True),
        sa.Column("route_index", sa.Integer(), server_default="0", nullable=False),
        sa.Column("route_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="ok | failed"),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.Column("input_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Float(), server_default="0", nullable=False),
        sa.Column("price_table_version", sa.String(length=64), server_default="", nullable=False),
        sa.Column("latency_ms", sa.Float(), server_default="0", nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True, comment="time to first token, when streaming"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step_id", "attempt", name="uq_model_calls_run_step_attempt"),
    )
    with op.batch_alter_table("model_calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_calls_run_id"), ["run_id"], unique=False)

    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(length=255), nullable=False, comment="workflow id"),
        sa.Column("temporal_run_id", sa.String(length=64), nullable=True),
        sa.Column("blueprint", sa.String(length=255), server_default="", nullable=False),
        sa.Column("blueprint_version", sa.String(length=64), server_default="", nullable=False),
        sa.Column("tenant", sa.String(length=255), server_default="default", nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("success", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("budget_max_tokens", sa.Integer(), nullable=True),
        sa.Column("budget_max_usd", sa.Float(), nullable=True),
        sa.Column("budget_alerted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("budget_stopped", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Float(), server_default="0", nullable=False),
        sa.Column("model_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tool_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "partial_output",
            sa.JSON(),
            nullable=True,
            comment="what a stopped run had done (task results, last output)",
        ),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "state_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=True),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "seq", name="uq_state_transitions_run_seq"),
    )
    with op.batch_alter_table("state_transitions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_state_transitions_run_id"), ["run_id"], unique=False)

    op.create_table(
        "tool_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("step_id", sa.String(length=255), nullable=False),
        sa.Column("tool", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("duration_ms", sa.Float(), server_default="0", nullable=False),
        sa.Column("idempotency_key", sa.String(length=512), server_default="", nullable=False),
        sa.Column("replayed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step_id", name="uq_tool_calls_run_step"),
    )
    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tool_calls_run_id"), ["run_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tool_calls_run_id"))

    op.drop_table("tool_calls")
    with op.batch_alter_table("state_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_state_transitions_run_id"))

    op.drop_table("state_transitions")
    op.drop_table("runs")
    with op.batch_alter_table("model_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_calls_run_id"))

    op.drop_table("model_calls")
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalations_run_id"))

    op.drop_table("escalations")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_run_id"))
        batch_op.drop_index(batch_op.f("ix_decisions_escalation_id"))

    op.drop_table("decisions")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dead_letters_workflow_id"))

    op.drop_table("dead_letters")
