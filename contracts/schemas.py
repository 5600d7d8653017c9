"""JSON schemas of pydantic models, generated once per model and copied out (pure, no I/O)."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from pydantic import BaseModel


@lru_cache(maxsize=512)
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model.model_json_schema()`, built once per model; callers get their own copy to change."""
    return copy.deepcopy(_schema(model))
