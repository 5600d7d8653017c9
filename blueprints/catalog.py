"""Where blueprints are found by name and version."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from blueprints.base import Blueprint
from contracts.errors import ErrorCode, ErrorInfo


def _version_key(version: str) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in version.split("."))


class Catalog:
    """Blueprints by name and version."""

    def __init__(self, blueprints: Iterable[Blueprint] = ()) -> None:
        self._by_name: dict[str, dict[str, Blueprint]] = {}
        for bp in blueprints:
            self.add(bp)

    def add(self, blueprint: Blueprint) -> None:
        """Register a blueprint version; registering the same name@version twice is a mistake."""
        versions = self._by_name.setdefault(blueprint.name, {})
        if blueprint.version in versions:
            raise ValueError(f"blueprint {blueprint.ref} is already registered")
        versions[blueprint.version] = blueprint

    def resolve(self, name: str, version: str | None = None) -> tuple[Blueprint | None, ErrorInfo | None]:
        """The blueprint for `name` at `version` (newest when None), or a structured error."""
        versions = self._by_name.get(name)
        if not versions:
            return None, ErrorInfo(
                code=ErrorCode.UNKNOWN_BLUEPRINT,
                message=f"no blueprint named {name!r}",
                details={"known": sorted(self._by_name)},
            )
        if version is None:
            version = max(versions, key=_version_key)
        bp = versions.get(version)
        if bp is None:
            return None, ErrorInfo(
                code=ErrorCode.UNKNOWN_VERSION,
                message=f"blueprint {name!r} has no version {version!r}",
                details={"known_versions": sorted(versions, key=_version_key)},
            )
        return bp, None

    def all(self) -> list[Blueprint]:
        """Every registered blueprint version, by name then version."""
        return [
            self._by_name[n][v]
            for n in sorted(self._by_name)
            for v in sorted(self._by_name[n], key=_version_key)
        ]


def load_catalog(modules: Iterable[str]) -> Catalog:
    """Import each module and collect its `BLUEPRINTS` list."""
    catalog = Catalog()
    for name in modules:
        module = importlib.import_module(name)
        for bp in getattr(module, "BLUEPRINTS", []):
            catalog.add(bp)
    return catalog


def default_catalog(extension_modules: Iterable[str] | None = None) -> Catalog:
    """The shipped examples plus the blueprints of the configured extension modules."""
    if extension_modules is None:
        from settings import get_settings

        extension_modules = get_settings().extension_modules
    return load_catalog(["blueprints.examples", *extension_modules])
