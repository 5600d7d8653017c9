"""Tools as one JSON schema for guided decoding, the chat prompt around it, and output validation.

A small local model has no native tool calling we can rely on, so a turn with tools asks for one
JSON object `{"tool": <name>, "arguments": {...}}` and vLLM's guided decoding holds the model to it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import jsonschema

from contracts.model import Message, ModelTurnInput, ToolSpec

REF_PREFIX = "#/$defs/"


def tools_schema(tools: list[ToolSpec]) -> dict[str, Any] | None:
    """The schema a turn's output must match: one call of one of `tools`; None without tools.

    Each tool's `$defs` move to the root (guided decoding resolves `#/$defs/...` from there); a name
    two tools define differently is renamed in the second tool, references included."""
    if not tools:
        return None
    root_defs: dict[str, Any] = {}
    options: list[dict[str, Any]] = []
    for tool in tools:
        schema = copy.deepcopy(tool.input_schema)
        defs = schema.pop("$defs", {}) or {}
        renames: dict[str, str] = {}
        for name, definition in defs.items():
            target = name
            if name in root_defs and root_defs[name] != definition:
                target = f"{tool.name}__{name}"
                renames[name] = target
            root_defs[target] = definition
        if renames:
            schema = _rename_refs(schema, renames)
            for target in renames.values():
                root_defs[target] = _rename_refs(root_defs[target], renames)
        options.append(
            {
                "type": "object",
                "properties": {"tool": {"type": "string", "enum": [tool.name]}, "arguments": schema},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    result: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    if root_defs:
        result = {**result, "$defs": root_defs}
    return result


def _rename_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                name = value[len(REF_PREFIX) :]
                out[key] = REF_PREFIX + renames.get(name, name)
            else:
                out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    return node


def validation_problems(text: str, schema: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """Parse `text` as JSON and check it against `schema`: (value, []) or (None, problems)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"not valid JSON: {exc.msg} at position {exc.pos}"]
    validator = jsonschema.Draft202012Validator(schema)
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '$'}: {error.message}"[:300]
        for error in validator.iter_errors(value)
    ]
    return (None, problems[:10]) if problems else (value, [])


def chat_messages(inp: ModelTurnInput) -> list[dict[str, str]]:
    """The turn as role/content messages a chat template understands (tool traffic as text)."""
    system = inp.system
    if inp.tools:
        catalog = "\n".join(f"- {t.name}: {t.description}" for t in inp.tools)
        system = (
            f"{system}\n\nYou can call exactly one of these tools per reply:\n{catalog}\n"
            'Reply with one JSON object: {"tool": "<tool name>", "arguments": {...}}.'
        ).strip()
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    for message in inp.messages:
        messages.append(_as_chat(message))
    return messages


def repair_messages(
    messages: list[dict[str, str]], bad_output: str, problems: list[str]
) -> list[dict[str, str]]:
    """The same conversation plus the invalid reply and what was wrong with it, for one retry."""
    feedback = "That reply did not match the required JSON schema:\n- " + "\n- ".join(problems)
    return [
        *messages,
        {"role": "assistant", "content": bad_output[:4000]},
        {"role": "user", "content": feedback + "\nReply again with one valid JSON object."},
    ]


def _as_chat(message: Message) -> dict[str, str]:
    if message.role == "assistant":
        parts = [message.content] if message.content else []
        parts += [json.dumps({"tool": c.name, "arguments": c.arguments}) for c in message.tool_calls]
        return {"role": "assistant", "content": "\n".join(parts)}
    if message.role == "tool":
        lines = [
            f"Result of {r.name}{' (error)' if r.is_error else ''}: {r.content}" for r in message.tool_results
        ]
        # Chat templates of small models rarely accept a `tool` role; a user turn carries it.
        return {"role": "user", "content": "\n".join(lines) or message.content}
    return {"role": "user", "content": message.content}
