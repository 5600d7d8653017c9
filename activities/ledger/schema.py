"""The ledger's tables (SQLAlchemy Core). Alembic migrations under `migrations/` create them.

Every table that records an event has a natural unique key, and every write is
INSERT ... ON CONFLICT DO NOTHING: an activity that runs twice never counts twice.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(255), primary_key=True, comment="workflow id"),
    Column("temporal_run_id", String(64)),
    Column("blueprint", String(255), nullable=False, server_default=""),
    Column("blueprint_version", String(64), nullable=False, server_default=""),
    Column("tenant", String(255), nullable=False, server_default="default"),
    Column("state", String(32), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("success", Boolean, nullable=False, server_default=false()),
    Column("error_code", String(64)),
    Column("budget_max_tokens", Integer),
    Column("budget_max_usd", Float),
    Column("budget_alerted", Boolean, nullable=False, server_default=false()),
    Column("budget_stopped", Boolean, nullable=False, server_default=false()),
    Column("input_tokens", Integer, nullable=False, server_default="0"),
    Column("output_tokens", Integer, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("model_calls", Integer, nullable=False, server_default="0"),
    Column("tool_calls", Integer, nullable=False, server_default="0"),
    Column("partial_output", JSON, comment="what a stopped run had done (task results, last output)"),
)

state_transitions = Table(
    "state_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(255), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("source", String(32)),
    Column("target", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    UniqueConstraint("run_id", "seq", name="uq_state_transitions_run_seq"),
)

model_calls = Table(
    "model_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(255), nullable=False, index=True),
    Column("step_id", String(255), nullable=False),
    Column("step_kind", String(32), nullable=False),
    Column("attempt", Integer, nullable=False, comment="Temporal activity attempt (1-based)"),
    Column("provider", String(64), nullable=False),
    Column("model", String(255), nullable=False),
    Column("task_queue", String(255)),
    Column("route_index", Integer, nullable=False, server_default="0"),
    Column("route_reason", Text, nullable=False, server_default=""),
    Column("status", String(16), nullable=False, comment="ok | failed"),
    Column("error_type", String(64)),
    Column("input_tokens", Integer, nullable=False, server_default="0"),
    Column("output_tokens", Integer, nullable=False, server_default="0"),
    Column("cache_read_tokens", Integer, nullable=False, server_default="0"),
    Column("cache_write_tokens", Integer, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("price_table_version", String(64), nullable=False, server_default=""),
    Column("latency_ms", Float, nullable=False, server_default="0"),
    Column("ttft_ms", Float, comment="time to first token, when streaming"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_id", "step_id", "attempt", name="uq_model_calls_run_step_attempt"),
)

tool_calls = Table(
    "tool_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(255), nullable=False, index=True),
    Column("step_id", String(255), nullable=False),
    Column("tool", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("duration_ms", Float, nullable=False, server_default="0"),
    Column("idempotency_key", String(512), nullable=False, server_default=""),
    Column("replayed", Boolean, nullable=False, server_default=false()),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_id", "step_id", name="uq_tool_calls_run_step"),
)

escalations = Table(
    "escalations",
    metadata,
    Column("escalation_id", String(255), primary_key=True),
    Column("run_id", String(255), nullable=False, index=True),
    Column("state", String(32), nullable=False, comment="the state that escalated"),
    Column("reason", Text, nullable=False, server_default=""),
    Column("policy", String(64), nullable=False, server_default=""),
    Column("details", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(255), primary_key=True),
    Column("escalation_id", String(255), nullable=False, index=True),
    Column("run_id", String(255), nullable=False, index=True),
    Column("decision", String(32), nullable=False, comment="approve | reject | send_back | timeout default"),
    Column("actor", String(255), nullable=False, server_default=""),
    Column("comment", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("workflow_id", String(255), nullable=False, index=True),
    Column("run_id", String(64), nullable=False),
    Column("failed_state", String(32), nullable=False),
    Column("error", JSON, nullable=False),
    Column("last_checkpoint", JSON),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("redriven_by", String(255), comment="workflow id of the run that redrove this one"),
)
