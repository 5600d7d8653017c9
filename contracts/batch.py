"""The factory line: one blueprint applied to many items as child runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from contracts.artifacts import ArtifactRef
from contracts.errors import ErrorInfo
from contracts.run import StateVisibility


class ChildOutcome(BaseModel):
    """The part of a child run's `RunResult` a batch counts. The batch reads each child's result
    as this: the output and report cards are skipped when it is parsed (they stay in the child's
    own result)."""

    state: str
    cost_usd: float = 0.0
    error: ErrorInfo | None = None
    dead_letter_id: str | None = None


class BatchFailure(BaseModel):
    """One item that did not complete."""

    index: int
    workflow_id: str
    state: str
    error_code: str = ""
    message: str = ""
    dead_letter_id: str | None = None


class BatchCarry(BaseModel):
    """Progress carried across continue-as-new (everything else is recomputed)."""

    next_index: int = 0
    """Items before this index have finished (the window drains before continuing as new)."""
    succeeded: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    failures: list[BatchFailure] = Field(default_factory=list)
    started_at: datetime | None = None
    continued_as_new: int = 0


class BatchRequest(BaseModel):
    """Start a factory line. Give `items` (small lists) or `items_ref` (a JSON list in the artifact store)."""

    blueprint: str
    version: str | None = None
    items: list[Any] | None = None
    items_ref: ArtifactRef | None = None
    total: int | None = None
    """Number of items behind `items_ref` (computed when the list is inline)."""
    concurrency: int = 20
    """Most child runs in flight at once (backpressure)."""
    items_per_run: int = 500
    """Items one workflow run handles before continuing as new (keeps history far under its limits)."""
    page_size: int = 200
    """Items read from the artifact store per activity call."""
    provider: str | None = None
    model: str | None = None
    tenant: str = "default"
    dry_run: bool = False
    task_queue: str | None = None
    """Task queue of the child runs; the batch's own when omitted."""
    state_visibility: StateVisibility = "notable"
    """Each child run's `RunRequest.state_visibility`. `notable` by default: a batch's live view is
    its `progress` query, and a child publishes `FactoryState` when it waits on a person and when
    it ends (a failed child is found by `FactoryState = 'FAILED'` as ever), not at each of its
    healthy states; each of those is a visibility write the server pays for every item
    (docs/quality-and-recovery.md, "Throughput"). `every` publishes them all, as a single run does."""
    carry: BatchCarry = Field(default_factory=BatchCarry)


class BatchProgress(BaseModel):
    """What the `progress` query answers."""

    batch_id: str
    total: int
    done: int
    succeeded: int
    failed: int
    in_flight: int
    cost_usd: float
    throughput_per_s: float
    elapsed_s: float
    continued_as_new: int


class BatchSummary(BaseModel):
    """The factory line's final result."""

    batch_id: str
    blueprint: str
    total: int
    succeeded: int
    failed: int
    failures: list[BatchFailure] = Field(default_factory=list)
    cost_usd: float
    cost_per_success_usd: float | None
    wall_time_s: float
    throughput_per_s: float
    continued_as_new: int


class LoadItemsInput(BaseModel):
    """Input of the `load_batch_items` activity: one page of a stored item list."""

    ref: ArtifactRef
    offset: int
    limit: int


class StashItemsInput(BaseModel):
    """Input of the `stash_batch_items` activity: put an inline item list into the artifact store."""

    items: list[Any]


class StashItemsResult(BaseModel):
    """The stored list's reference and length."""

    ref: ArtifactRef
    total: int
