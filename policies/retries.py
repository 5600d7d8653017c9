"""Retry policy and timeouts per activity kind. Every policy has a maximum (Temporal's default is
unlimited); provider errors marked non-retryable stop at once."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ActivityPolicy:
    """How long one attempt may take and how often to try."""

    start_to_close_s: float
    max_attempts: int
    initial_interval_s: float = 1.0
    backoff: float = 2.0
    max_interval_s: float = 30.0
    heartbeat_s: float | None = None
    non_retryable_types: tuple[str, ...] = field(default_factory=tuple)


#: Error types that no retry can fix (the provider mapping and our activities raise these).
NON_RETRYABLE = (
    "ProviderBadRequest",
    "ProviderAuthError",
    "UnknownProvider",
    "InvalidActivityInput",
    "CircuitOpen",
)

POLICIES: dict[str, ActivityPolicy] = {
    # A model call: slow, rate limited, worth a few tries with backoff (retry-after overrides it).
    "model": ActivityPolicy(
        start_to_close_s=180,
        max_attempts=5,
        initial_interval_s=2,
        max_interval_s=60,
        heartbeat_s=20,
        non_retryable_types=NON_RETRYABLE,
    ),
    # A model turn on a GPU worker's queue: long generations, heartbeats while generating.
    "gpu_model": ActivityPolicy(
        start_to_close_s=600,
        max_attempts=3,
        initial_interval_s=1,
        max_interval_s=10,
        heartbeat_s=30,
        non_retryable_types=NON_RETRYABLE,
    ),
    # A tool call: quick; idempotency keys make a retry safe.
    "tool": ActivityPolicy(
        start_to_close_s=60,
        max_attempts=3,
        initial_interval_s=1,
        max_interval_s=10,
        heartbeat_s=10,
        non_retryable_types=NON_RETRYABLE,
    ),
    # Validation and review: pure CPU in an activity; a failure is a bug, do not hammer.
    "check": ActivityPolicy(
        start_to_close_s=30,
        max_attempts=3,
        initial_interval_s=1,
        max_interval_s=5,
        non_retryable_types=NON_RETRYABLE,
    ),
    # Undoing a side effect: keep trying longer (each try is idempotent by key); a heartbeat notices a
    # dead worker in seconds instead of waiting out the whole attempt.
    "compensation": ActivityPolicy(
        start_to_close_s=120,
        max_attempts=6,
        initial_interval_s=1,
        max_interval_s=20,
        heartbeat_s=5,
        non_retryable_types=NON_RETRYABLE,
    ),
    # Writes to our own stores (dead letters, artifacts): cheap, idempotent, worth many tries.
    "store": ActivityPolicy(
        start_to_close_s=30,
        max_attempts=10,
        initial_interval_s=1,
        max_interval_s=30,
        non_retryable_types=NON_RETRYABLE,
    ),
}


def policy_for(kind: str) -> ActivityPolicy:
    """The policy for an activity kind (`model`, `gpu_model`, `tool`, `check`, `compensation`, `store`)."""
    return POLICIES[kind]
