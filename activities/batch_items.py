"""Factory-line item storage: item lists live in the artifact store and are read a page at a time."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.artifacts import ArtifactMissing, FileArtifactStore
from contracts.artifacts import ArtifactRef
from contracts.batch import LoadItemsInput, StashItemsInput, StashItemsResult


class BatchItemActivities:
    """Reads and writes item lists in the artifact store."""

    def __init__(self, store: FileArtifactStore) -> None:
        self._store = store
        self._cache: dict[str, list[Any]] = {}

    def _items(self, key: str) -> list[Any]:
        # A batch reads the same list page after page: parse it once per worker process.
        if key not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            value = self._store.get_json(ArtifactRef(key=key, size_bytes=0))
            if not isinstance(value, list):
                raise ApplicationError(
                    "stored items are not a JSON list", type="InvalidActivityInput", non_retryable=True
                )
            self._cache[key] = value
        return self._cache[key]

    @activity.defn(name="load_batch_items")
    async def load_batch_items(self, inp: LoadItemsInput) -> list[Any]:
        """Items `offset .. offset+limit` of the stored list."""
        try:
            items = await asyncio.to_thread(self._items, inp.ref.key)
        except ArtifactMissing as exc:
            raise ApplicationError(str(exc), type="ArtifactMissing", non_retryable=True) from exc
        return items[inp.offset : inp.offset + inp.limit]

    @activity.defn(name="stash_batch_items")
    async def stash_batch_items(self, inp: StashItemsInput) -> StashItemsResult:
        """Store an inline list; the same list is stored once (content addressed)."""
        ref = await asyncio.to_thread(self._store.put_json, inp.items)
        return StashItemsResult(ref=ref, total=len(inp.items))
