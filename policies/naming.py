"""Deterministic names derived from ids: workspaces, steps, idempotency keys."""

from __future__ import annotations

import hashlib
import re


def workspace_name(workflow_id: str) -> str:
    """A single safe path component for a run's workspace (stable for the same workflow id)."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", workflow_id).strip(".-") or "run"
    if clean != workflow_id or len(clean) > 100:
        clean = f"{clean[:80]}-{hashlib.sha256(workflow_id.encode()).hexdigest()[:12]}"
    return clean


def idempotency_key(workflow_id: str, step_id: str) -> str:
    """Run id + step id: what makes a side-effecting tool safe to run twice."""
    return f"{workflow_id}/{step_id}"
