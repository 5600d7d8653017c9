"""The offline model: deterministic, built in, no network, never presented as intelligence.

It follows the protocol the workflow speaks (a `submit_plan` / `submit_result` / `submit_output`
tool per step kind), calls the step's tools once each with arguments synthesized from their
schemas, and builds schema-valid output from the run input. Every result says `offline=True`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from blueprints.catalog import Catalog
from contracts.model import ModelTurnInput, ModelTurnResult, ToolCall, Usage
from policies.protocol import SUBMIT_OUTPUT, SUBMIT_PLAN, SUBMIT_RESULT, SUBMIT_VERDICT

OFFLINE_MODEL = "offline-v1"
LABEL = "[offline model]"


def approx_tokens(text: str) -> int:
    """A stable token estimate (4 characters a token) so offline runs still account usage."""
    return max(1, (len(text) + 3) // 4)


class OfflineProvider:
    """The default provider when no API key is set."""

    name = "offline"

    def __init__(self, catalog: Catalog | None = None) -> None:
        self._catalog = catalog

    async def complete(self, request: ModelTurnInput) -> ModelTurnResult:
        """Answer one turn deterministically from the request alone."""
        if request.step_kind == "summarize":
            return self._summary(request)
        tool_names = [t.name for t in request.tools]
        if SUBMIT_PLAN in tool_names:
            calls = [self._call(request, SUBMIT_PLAN, self._plan(request))]
        elif SUBMIT_OUTPUT in tool_names:
            calls = [self._call(request, SUBMIT_OUTPUT, self._output(request))]
        elif SUBMIT_VERDICT in tool_names:
            # No judgement is possible offline: say so in the reasons instead of pretending to grade.
            verdict = {"score": 1.0, "reasons": f"{LABEL} no judgement made: the offline model cannot grade"}
            calls = [self._call(request, SUBMIT_VERDICT, verdict)]
        else:
            calls = [self._next_tool_call(request)]
        text = f"{LABEL} deterministic step for {request.step_id}"
        prompt = request.system + json.dumps([m.model_dump(mode="json") for m in request.messages])
        completion = text + json.dumps([c.arguments for c in calls])
        return ModelTurnResult(
            provider=self.name,
            model=request.model or OFFLINE_MODEL,
            text=text,
            tool_calls=calls,
            stop_reason="tool_use",
            usage=Usage(input_tokens=approx_tokens(prompt), output_tokens=approx_tokens(completion)),
            offline=True,
        )

    def _summary(self, request: ModelTurnInput) -> ModelTurnResult:
        """A short, deterministic digest of the turns handed to a summarize step."""
        prompt = "\n".join(m.content for m in request.messages)
        actions = [
            line for line in prompt.splitlines() if " called " in line or line.startswith("result of ")
        ]
        text = f"{LABEL} {len(actions)} earlier actions: " + "; ".join(a[:60] for a in actions[-6:])
        return ModelTurnResult(
            provider=self.name,
            model=request.model or OFFLINE_MODEL,
            text=text[:600],
            stop_reason="end_turn",
            usage=Usage(
                input_tokens=approx_tokens(request.system + prompt), output_tokens=approx_tokens(text[:600])
            ),
            offline=True,
        )

    @staticmethod
    def _call(request: ModelTurnInput, name: str, arguments: dict[str, Any]) -> ToolCall:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        return ToolCall(id=f"offline-{request.step_id}-{turn}-{name}", name=name, arguments=arguments)

    # PLANNING -----------------------------------------------------------------------------------
    def _plan(self, request: ModelTurnInput) -> dict[str, Any]:
        run_input = request.context.get("input")
        tools = list(request.context.get("allowed_tools", []))
        items = _work_items(run_input)[: int(request.context.get("max_tasks", 4))]
        tasks = []
        seen: set[str] = set()
        for i, item in enumerate(items, start=1):
            task_id = _slug(item)
            task_id = task_id if task_id not in seen else f"{task_id}-{i}"
            seen.add(task_id)
            tasks.append(
                {
                    "id": task_id,
                    "kind": "execute" if tools else "generate",
                    "instructions": f"{LABEL} handle {item!r}"
                    + (f" using {', '.join(tools)}" if tools else ""),
                    "allowed_tools": tools,
                    "expected_result_schema": {"type": "object"},
                    "depends_on": [],
                }
            )
        return {"tasks": tasks, "rationale": f"{LABEL} one task per work item ({len(tasks)})"}

    # EXECUTING ----------------------------------------------------------------------------------
    def _next_tool_call(self, request: ModelTurnInput) -> ToolCall:
        called = {c.name for m in request.messages for c in m.tool_calls}
        task = request.context.get("task", {})
        item = _slug(str(task.get("id", request.step_id)))
        for spec in request.tools:
            if spec.name == SUBMIT_RESULT or spec.name in called:
                continue
            return self._call(request, spec.name, _synthesize_args(spec.input_schema, item, request))
        observations = [
            {"tool": r.name, "error": r.is_error, "content": _maybe_json(r.content)}
            for m in request.messages
            for r in m.tool_results
        ]
        result = {"item": item, "observations": observations}
        return self._call(
            request,
            SUBMIT_RESULT,
            {"status": "success", "result": result, "summary": f"{LABEL} finished {item}"},
        )

    # EXECUTING (compose) ------------------------------------------------------------------------
    def _output(self, request: ModelTurnInput) -> dict[str, Any]:
        blueprint = None
        if self._catalog is not None and "@" in request.blueprint:
            name, version = request.blueprint.split("@", 1)
            blueprint, _ = self._catalog.resolve(name, version)
        hook = blueprint.offline_output if blueprint is not None else None
        run_input = request.context.get("input")
        task_results = request.context.get("task_results", [])
        if hook is not None:
            return {"output": hook(run_input, task_results)}
        # The output schema travels once, in the submit tool the request offers (the caller checked it is there).
        schema = next(tool for tool in request.tools if tool.name == SUBMIT_OUTPUT).input_schema
        return {"output": synthesize(schema["properties"]["output"], schema, run_input, "output")}


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:40] or "item"


def _work_items(run_input: Any) -> list[str]:
    """The items a plan splits into: the first list of strings in the input, else one item."""
    if isinstance(run_input, dict):
        for value in run_input.values():
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                return list(value)
        for value in run_input.values():
            if isinstance(value, str) and value:
                return [value[:60]]
    return ["request"]


def _input_text(run_input: Any) -> str:
    if isinstance(run_input, dict):
        parts = [str(v) for v in run_input.values() if isinstance(v, str | int | float)]
        return " ".join(parts)[:400]
    return str(run_input)[:400]


def _synthesize_args(schema: dict[str, Any], item: str, request: ModelTurnInput) -> dict[str, Any]:
    """Arguments for a tool: required fields only, file paths derived from the work item."""
    args: dict[str, Any] = {}
    props = schema.get("properties", {})
    for field in schema.get("required", []):
        prop = props.get(field, {})
        if field in {"path", "file", "filename"}:
            args[field] = f"{item}.md"
        elif field in {"content", "text", "body"}:
            topic = _input_text(request.context.get("input"))
            args[field] = f"# {item}\n\n{LABEL} Notes on {item} for: {topic}\n"
        else:
            args[field] = synthesize(prop, schema, request.context.get("input"), field)
    return args


def synthesize(schema: dict[str, Any], root: dict[str, Any], run_input: Any, name: str) -> Any:
    """A value valid against a (pydantic-generated) JSON schema, built from the run input.

    Strings copy an input field of the same name when there is one; otherwise they say plainly
    that the offline model wrote them.
    """
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        return synthesize(root.get("$defs", {}).get(ref, {}), root, run_input, name)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return synthesize(options[0], root, run_input, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema.get("type") not in {"object", "array"}:
        return schema["default"]
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {key: synthesize(sub, root, run_input, key) for key, sub in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        items = schema.get("items", {})
        return [synthesize(items, root, run_input, f"{name}_{i + 1}") for i in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return False
    if isinstance(run_input, dict) and isinstance(run_input.get(name), str):
        text = str(run_input[name])
    else:
        text = f"{LABEL} {name.replace('_', ' ')} for: {_input_text(run_input)[:120]}"
    min_len = int(schema.get("minLength", 0))
    max_len = int(schema.get("maxLength", 10_000))
    if len(text) < min_len:
        text = text + " " * (min_len - len(text))
    return text[:max_len]
