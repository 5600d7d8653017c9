"""Prices per million tokens, and the cost of one call. The offline model is free."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.model import Usage


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float = 0.0
    cache_write: float = 0.0


PRICE_TABLE_VERSION = "2026-11-01"

PRICES: dict[str, Price] = {
    "offline-v1": Price(0.0, 0.0),
    "claude-sonnet-4-5": Price(3.0, 15.0, 0.30, 3.75),
    "claude-haiku-4-5": Price(1.0, 5.0, 0.10, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075, 0.0),
    "gpt-4o": Price(2.5, 10.0, 1.25, 0.0),
}


def cost_usd(model: str, usage: Usage, prices: dict[str, Price] | None = None) -> float:
    """What `usage` costs on `model`; unknown models cost 0 here (routing refuses them at start)."""
    price = (prices or PRICES).get(model)
    if price is None:
        return 0.0
    uncached_input = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
    total = (
        uncached_input * price.input
        + usage.output_tokens * price.output
        + usage.cache_read_tokens * price.cache_read
        + usage.cache_write_tokens * price.cache_write
    )
    return round(total / 1_000_000, 8)
