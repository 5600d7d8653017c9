"""Search attributes the engine writes, so the Temporal UI and `temporal workflow list --query` can filter.

The dev server registers exactly these (temporal-dev/); a production namespace needs them too.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

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

#: name → the type word `temporal server start-dev --search-attribute` and `operator` expect.
REGISTRATION: dict[str, str] = {
    "FactoryState": "Keyword",
    "FactoryBlueprint": "Keyword",
    "FactoryTenant": "Keyword",
    "FactoryBudgetAlert": "Bool",
    "FactoryCostUsd": "Double",
}
