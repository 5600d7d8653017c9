"""Search attributes the engine writes, so the Temporal UI and `temporal workflow list --query` can filter.

The dev server registers exactly these (temporal-dev/); a production namespace needs them too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

FACTORY_STATE = SearchAttributeKey.for_keyword("FactoryState")
FACTORY_BLUEPRINT = SearchAttributeKey.for_keyword("FactoryBlueprint")
FACTORY_TENANT = SearchAttributeKey.for_keyword("FactoryTenant")
FACTORY_BUDGET_ALERT = SearchAttributeKey.for_bool("FactoryBudgetAlert")
FACTORY_COST_USD = SearchAttributeKey.for_float("FactoryCostUsd")

ALL_KEYS: list[SearchAttributeKey[Any]] = [
    FACTORY_STATE,
    FACTORY_BLUEPRINT,
    FACTORY_TENANT,
    FACTORY_BUDGET_ALERT,
    FACTORY_COST_USD,
]

#: What a quiet run sends along with its first real update rather than on its own.
_FIXED = frozenset({FACTORY_BLUEPRINT.name, FACTORY_TENANT.name, FACTORY_COST_USD.name})

#: name → the type word `temporal server start-dev --search-attribute` and `operator` expect.
REGISTRATION: dict[str, str] = {
    "FactoryState": "Keyword",
    "FactoryBlueprint": "Keyword",
    "FactoryTenant": "Keyword",
    "FactoryBudgetAlert": "Bool",
    "FactoryCostUsd": "Double",
}


class SearchAttributePublisher:
    """A run's search attribute updates: sent at once, or (`coalesce`) gathered and sent as one
    upsert at the end of the workflow activation that made them.

    Each upsert is a history event and a visibility write, while nobody can observe a value that
    an activation sets and replaces before it ends: coalesced, the attributes still hold the
    run's state whenever it waits (on an activity, a timer or a person), at a fraction of the cost.
    A local activity does not end the workflow task, so updates wait through one (`held`).

    `quiet(states)` (coalesced runs only) keeps updates pending while they are only these values of
    `FactoryState` and the run's fixed attributes (blueprint, tenant, cost so far): a run that
    never leaves them publishes once, when it ends (`flush(force=True)`). The first other update
    (a wait on a person, a budget alert) sends everything pending, and from then on every update
    goes out as usual, so a published value is never left stale."""

    def __init__(self) -> None:
        self.coalesce = False
        self._pending: dict[str, tuple[SearchAttributeKey[Any], Any]] = {}
        self._scheduled = False
        self._held = 0
        self._quiet_states: frozenset[str] = frozenset()
        self._published = False

    def quiet(self, states: frozenset[str]) -> None:
        """Hold back updates that only say the run is in one of `states` (see the class)."""
        self._quiet_states = states

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep updates pending while the workflow awaits a local activity: it runs inside the
        same workflow task, so nothing set before it completes could be seen before what is set
        after it. (A local activity that outlasts the task's timeout shows the older value longer.)"""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if self._pending and not self._held and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)

    def set(self, *values: tuple[SearchAttributeKey[Any], Any]) -> None:
        """Set attributes, given as (key, value) (the last value set for a key in an activation
        wins). Updates are built only when sent: building one costs more than the move it records."""
        if not self.coalesce:
            workflow.upsert_search_attributes(_updates(values))
            return
        for key, value in values:
            self._pending[key.name] = (key, value)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self, *, force: bool = False) -> None:
        """Send what is pending (`force`: even while held or quiet, as before the workflow returns)."""
        self._scheduled = False
        if self._pending and (force or not (self._held or self._holding_quietly())):
            updates = _updates(self._pending.values())
            self._pending.clear()
            self._published = True
            workflow.upsert_search_attributes(updates)

    def _holding_quietly(self) -> bool:
        if self._published or not self._quiet_states:
            return False
        return all(
            name in _FIXED or (name == FACTORY_STATE.name and value in self._quiet_states)
            for name, (_, value) in self._pending.items()
        )


def _updates(values: Iterable[tuple[SearchAttributeKey[Any], Any]]) -> list[SearchAttributeUpdate[Any]]:
    return [key.value_set(value) for key, value in values]
