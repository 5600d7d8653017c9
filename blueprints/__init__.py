"""Blueprints: user-defined agents (versioned prompt, tools, output schema, checks, limits).

Define one with `Blueprint(...)` and add it to a catalog; the shipped examples live in
`blueprints.examples`.
"""

from blueprints.base import Blueprint
from blueprints.catalog import Catalog, default_catalog

__all__ = ["Blueprint", "Catalog", "default_catalog"]
