"""The SQL ledger: schema (Alembic-migrated), the idempotent write API, and cost reports.

Writers call `Ledger.record_*` with a record from `activities.ledger.records`:
`record_dead_letter(DeadLetterRecord(...))`, `mark_redriven(id, by)`,
`record_escalation(EscalationRecord(...))`, `record_decision(DecisionRecord(...))`.
"""

from activities.ledger.db import Ledger, ledger_url
from activities.ledger.records import (
    DeadLetterRecord,
    DecisionRecord,
    EscalationRecord,
    ModelCallRecord,
    RunEndRecord,
    RunStartRecord,
    ToolCallRecord,
)

__all__ = [
    "DeadLetterRecord",
    "DecisionRecord",
    "EscalationRecord",
    "Ledger",
    "ModelCallRecord",
    "RunEndRecord",
    "RunStartRecord",
    "ToolCallRecord",
    "ledger_url",
]
