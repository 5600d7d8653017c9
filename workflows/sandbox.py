"""Modules passed through the workflow sandbox, declared in one place, each with its reason."""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = (
    "pydantic",  # models cross every boundary; re-importing per workflow run is slow and breaks isinstance
    "pydantic_core",  # pydantic's compiled core, same reason
    "annotated_types",  # pydantic's constraint types
    "contracts",  # our pure data models: no I/O, deterministic
    "states",  # the state machine: pure
    "policies",  # pure decisions: deterministic by design
    "opentelemetry",  # one global tracer/meter provider, replay-safe (Temporal's contrib), shared with the host
    "observability",  # metric instruments and baggage keys live on the host's providers; nothing runs at import
)


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The sandbox stays on; only the modules above are shared with the host."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )
