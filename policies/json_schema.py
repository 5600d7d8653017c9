"""A small JSON-schema checker for tool arguments, pure so the workflow can run it in a signal handler.

It covers what pydantic emits for tool argument models: type, enum, const, required, properties,
additionalProperties, items, min/max (length, items, value), pattern, anyOf/oneOf/allOf and local
`$ref`s. Keywords it does not know are ignored rather than guessed at; the tool's own pydantic model
still validates the arguments inside the activity.
"""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
}


def validate(value: Any, schema: dict[str, Any]) -> list[str]:
    """Every problem found, as `path: message` strings; an empty list means valid."""
    problems: list[str] = []
    _check(value, schema, schema, "$", problems, depth=0)
    return problems


def _type_ok(value: Any, name: str) -> bool:
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    kinds = _TYPES.get(name)
    return True if kinds is None else isinstance(value, kinds)


def _check(value: Any, schema: Any, root: dict[str, Any], path: str, problems: list[str], depth: int) -> None:
    if not isinstance(schema, dict) or depth > 50:
        return
    if "$ref" in schema:
        ref = str(schema["$ref"])
        if ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            _check(value, target, root, path, problems, depth + 1)
        return
    for sub in schema.get("allOf", []):
        _check(value, sub, root, path, problems, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [_sub_problems(value, s, root, path, depth) for s in schema[key]]
            if not any(not b for b in branches):
                problems.append(f"{path}: matches none of the allowed shapes ({key})")
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_type_ok(value, n) for n in names):
            problems.append(f"{path}: expected {' or '.join(names)}, got {type(value).__name__}")
            return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: must be one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{path}: must be {schema['const']!r}")
    if isinstance(value, str):
        _check_string(value, schema, path, problems)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, path, problems)
    elif isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{path}: needs at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{path}: allows at most {schema['maxItems']} items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                _check(item, schema["items"], root, f"{path}[{i}]", problems, depth + 1)
    elif isinstance(value, dict):
        _check_object(value, schema, root, path, problems, depth)


def _sub_problems(value: Any, schema: Any, root: dict[str, Any], path: str, depth: int) -> list[str]:
    found: list[str] = []
    _check(value, schema, root, path, found, depth + 1)
    return found


def _check_string(value: str, schema: dict[str, Any], path: str, problems: list[str]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(f"{path}: shorter than {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(f"{path}: longer than {schema['maxLength']} characters")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                problems.append(f"{path}: does not match {pattern!r}")
        except re.error:
            pass  # a pattern Python cannot read is left to the tool's own validation


def _check_number(value: float, schema: dict[str, Any], path: str, problems: list[str]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        problems.append(f"{path}: less than {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        problems.append(f"{path}: greater than {schema['maximum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        problems.append(f"{path}: must be greater than {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        problems.append(f"{path}: must be less than {schema['exclusiveMaximum']}")


def _check_object(
    value: dict[str, Any],
    schema: dict[str, Any],
    root: dict[str, Any],
    path: str,
    problems: list[str],
    depth: int,
) -> None:
    for name in schema.get("required", []):
        if name not in value:
            problems.append(f"{path}.{name}: required")
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in props:
            _check(item, props[name], root, f"{path}.{name}", problems, depth + 1)
        elif extra is False:
            problems.append(f"{path}.{name}: unexpected field")
        elif isinstance(extra, dict):
            _check(item, extra, root, f"{path}.{name}", problems, depth + 1)
