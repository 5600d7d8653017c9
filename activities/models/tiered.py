"""A deterministic offline model set to succeed at a given rate per model, for routing simulations
and tests: whether a call succeeds depends only on (seed, item id, model, attempt), so a run is
reproducible and every strategy sees the same items succeed or fail at the same tier."""

from __future__ import annotations

import hashlib

from contracts.model import ModelTurnInput, ModelTurnResult, Usage

LABEL = "[tiered offline model]"


def succeeds(seed: int, item_id: str, model: str, attempt: int, rate: float) -> bool:
    """A stable coin flip with probability `rate` for this item, model and attempt."""
    digest = hashlib.sha256(f"{seed}|{item_id}|{model}|{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


class TieredOfflineModel:
    """Answers with an `ok` or a `fail` verdict per call; `context["item_id"]` and
    `context["attempt"]` identify the draw. Usage is fixed per call so prices map to cost per call."""

    def __init__(
        self,
        success_rates: dict[str, float],
        *,
        seed: int = 0,
        name: str = "tiered",
        usage: Usage | None = None,
    ) -> None:
        self.name = name
        self.success_rates = success_rates
        self.seed = seed
        self.usage = usage or Usage(input_tokens=1_000, output_tokens=0)

    async def complete(self, request: ModelTurnInput) -> ModelTurnResult:
        """One call: `text` is `ok` when the draw succeeds, `fail` otherwise (billed either way)."""
        rate = self.success_rates[request.model]
        item_id = str(request.context.get("item_id", request.step_id))
        attempt = int(request.context.get("attempt", 1))
        verdict = "ok" if succeeds(self.seed, item_id, request.model, attempt, rate) else "fail"
        return ModelTurnResult(
            provider=self.name,
            model=request.model,
            text=verdict,
            usage=self.usage,
            offline=True,
        )
