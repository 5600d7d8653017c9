"""A scripted model for tests: each turn is answered by a test-supplied function.

The function may return a `ModelTurnResult`, a list of `ToolCall`s, or None to let the
offline model answer that turn (so a test scripts only the turns it cares about).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from activities.models.offline import OfflineProvider
from blueprints.catalog import Catalog, default_catalog
from contracts.model import ModelTurnInput, ModelTurnResult, ToolCall, Usage

TurnScript = Callable[[ModelTurnInput], "ModelTurnResult | list[ToolCall] | None | Awaitable[Any]"]


def call(
    name: str, arguments: dict[str, Any] | None = None, call_id: str | None = None, **extra: Any
) -> ToolCall:
    """A tool call the scripted model makes."""
    return ToolCall(id=call_id or f"call-{name}", name=name, arguments=arguments or {}, **extra)


class ScriptedProvider:
    """Answers turns from `script`; records every request it saw in `requests`."""

    def __init__(
        self,
        script: TurnScript,
        *,
        name: str = "scripted",
        catalog: Catalog | None = None,
        usage: Usage | None = None,
    ) -> None:
        self.name = name
        self._script = script
        self._offline = OfflineProvider(catalog or default_catalog())
        self._usage = usage or Usage(input_tokens=100, output_tokens=20)
        self.requests: list[ModelTurnInput] = []

    async def complete(self, request: ModelTurnInput) -> ModelTurnResult:
        """One scripted turn (or the offline model's, when the script returns None)."""
        self.requests.append(request)
        answer = self._script(request)
        if asyncio.iscoroutine(answer):
            answer = await answer
        if answer is None:
            result = await self._offline.complete(request)
            return result.model_copy(update={"provider": self.name, "offline": False})
        if isinstance(answer, ModelTurnResult):
            return answer
        return ModelTurnResult(
            provider=self.name,
            model=request.model,
            text="",
            tool_calls=list(answer),
            stop_reason="tool_use",
            usage=self._usage,
        )

    def turns(self, step_kind: str) -> list[ModelTurnInput]:
        """The requests seen for one step kind."""
        return [r for r in self.requests if r.step_kind == step_kind]
