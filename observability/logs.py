"""structlog JSON lines for everything: our loggers, Temporal's `workflow.logger`/`activity.logger`,
and any library logging through the standard library.

Every line carries what is known where it was written: workflow id and run id (from Temporal's
log context), the activity, the trace and span id (from OpenTelemetry), and the run's state and
`blueprint@version` (carried as W3C baggage from the workflow into its activities). Secrets are
blanked by the process's redactor as the last step before rendering. Workflow code logs through
`workflow.logger`, which stays silent while history replays, so replay writes no duplicate lines.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog
from opentelemetry import baggage, trace
from temporalio import activity, workflow

from observability import redaction
from observability.keys import BAGGAGE_BLUEPRINT, BAGGAGE_STATE

_HANDLER_NAME = "ai-factory-structlog"


def _temporal_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Flatten the log context Temporal attaches (or the current activity's) into plain keys."""
    wf = event.pop("temporal_workflow", None)
    act = event.pop("temporal_activity", None)
    if act is None and activity.in_activity():
        info = activity.info()
        act = {
            "workflow_id": info.workflow_id,
            "workflow_run_id": info.workflow_run_id,
            "activity_type": info.activity_type,
            "attempt": info.attempt,
        }
    if isinstance(wf, dict):
        event.setdefault("workflow_id", wf.get("workflow_id"))
        event.setdefault("run_id", wf.get("run_id"))
        event.setdefault("workflow_type", wf.get("workflow_type"))
    if isinstance(act, dict):
        event.setdefault("workflow_id", act.get("workflow_id"))
        event.setdefault("run_id", act.get("workflow_run_id"))
        event.setdefault("activity", act.get("activity_type"))
        event.setdefault("attempt", act.get("attempt"))
    return event


def _otel_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Trace and span id of the current span; state and blueprint from the current baggage."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    state = baggage.get_baggage(BAGGAGE_STATE)
    blueprint = baggage.get_baggage(BAGGAGE_BLUEPRINT)
    if state:
        event.setdefault("state", state)
    if blueprint:
        event.setdefault("blueprint", blueprint)
    return event


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Blank secrets in every field (the last step before rendering)."""
    redactor = redaction.current()
    meta = {k: event.pop(k) for k in ("_record", "_from_structlog") if k in event}
    cleaned = redactor.value(event)
    cleaned.update(meta)
    return cleaned


def _drop_empty(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if v is not None}


def shared_processors() -> list[Any]:
    """The processors structlog loggers and standard-library records both go through."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _temporal_context,
        _otel_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _drop_empty,
        _redact,
    ]


def formatter(json_lines: bool = True) -> structlog.stdlib.ProcessorFormatter:
    """A logging formatter rendering one redacted JSON object per line (or a console line)."""
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str) if json_lines else structlog.dev.ConsoleRenderer()
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )


def configure_logging(
    level: str = "INFO", *, json_lines: bool = True, stream: IO[str] | None = None
) -> logging.Handler:
    """Route structlog and standard logging through one handler on the root logger (idempotent)."""
    structlog.configure(
        processors=[
            *shared_processors()[:1],
            structlog.stdlib.filter_by_level,
            *shared_processors()[1:],
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter(json_lines))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The ledger migrates itself when a worker first writes; alembic announces every plugin and
    # step of that at INFO, more lines than a run writes. Shown at DEBUG only.
    logging.getLogger("alembic").setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
    # The fields go into structured keys; Temporal's default "(... info ...)" message suffix would
    # only repeat them in free text.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    return handler


def get_logger(name: str) -> Any:
    """A structlog logger (bind fields with `.bind(...)`)."""
    return structlog.get_logger(name)
