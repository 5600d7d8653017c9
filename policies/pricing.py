"""The versioned price table (USD per million tokens) and the cost of one call.

The operator overrides or extends it with a JSON or TOML file (`settings.price_file`); a run
records the version and the prices of its routed models at start, so a later price change never
rewrites what an old run cost.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

from pydantic import ValidationError

from contracts.cost import ModelPrice
from contracts.model import Usage

_PRICES_2026_11_01: dict[str, ModelPrice] = {
    "offline-v1": ModelPrice(input=0.0, output=0.0, context_window=200_000),
    "claude-sonnet-4-5": ModelPrice(
        input=3.0, output=15.0, cache_read=0.30, cache_write=3.75, context_window=200_000
    ),
    "claude-haiku-4-5": ModelPrice(
        input=1.0, output=5.0, cache_read=0.10, cache_write=1.25, context_window=200_000
    ),
    "claude-opus-4-1": ModelPrice(
        input=15.0, output=75.0, cache_read=1.50, cache_write=18.75, context_window=200_000
    ),
    "gpt-4o-mini": ModelPrice(input=0.15, output=0.60, cache_read=0.075, context_window=128_000),
    "gpt-4o": ModelPrice(input=2.5, output=10.0, cache_read=1.25, context_window=128_000),
    # Small local models on GPU workers: priced at an amortized GPU-hour rate, not zero.
    "Qwen/Qwen2.5-0.5B-Instruct": ModelPrice(input=0.02, output=0.04, context_window=32_768),
    "Qwen/Qwen2.5-1.5B-Instruct": ModelPrice(input=0.03, output=0.06, context_window=32_768),
}
#: Shipped tables by version; the newest is the default. Add a version, never edit a published one.
PRICE_TABLES: dict[str, dict[str, ModelPrice]] = {
    "2026-11-01": _PRICES_2026_11_01,
    # Claude Sonnet 4.6, the Anthropic default from here on (Sonnet 4.5 reaches its end of life on
    # 2026-11-30; its price stays for runs that still name it). Its 1M-token window is priced flat.
    "2026-11-21": {
        **_PRICES_2026_11_01,
        "claude-sonnet-4-6": ModelPrice(
            input=3.0, output=15.0, cache_read=0.30, cache_write=3.75, context_window=1_000_000
        ),
    },
}
PRICE_TABLE_VERSION = max(PRICE_TABLES)
PRICES: dict[str, ModelPrice] = PRICE_TABLES[PRICE_TABLE_VERSION]


class PriceFileError(ValueError):
    """The operator's price file is unreadable as a price table (a worker refuses to start)."""


def parse_price_file(text: str, *, toml: bool) -> tuple[str | None, dict[str, ModelPrice]]:
    """(version, prices) from an operator file: `{"version": "...", "models": {model: {input, output,
    cache_read, cache_write, context_window}}}` in JSON or TOML. Raises `PriceFileError`."""
    try:
        raw: Any = tomllib.loads(text) if toml else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise PriceFileError(f"price file is not valid {'TOML' if toml else 'JSON'}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict):
        raise PriceFileError("price file needs a `models` table: {model: {input, output, ...}}")
    prices: dict[str, ModelPrice] = {}
    for model, entry in raw["models"].items():
        try:
            prices[str(model)] = ModelPrice.model_validate(entry)
        except ValidationError as exc:
            raise PriceFileError(f"price of {model!r} is invalid: {exc.errors()[0]['msg']}") from exc
    version = raw.get("version")
    return (str(version) if version is not None else None), prices


def price_table(
    overrides: dict[str, ModelPrice] | None = None,
    override_version: str | None = None,
    base_version: str = PRICE_TABLE_VERSION,
) -> tuple[str, dict[str, ModelPrice]]:
    """The effective (version, table): a shipped version with the operator's entries on top."""
    table = dict(PRICE_TABLES[base_version])
    if not overrides:
        return base_version, table
    table.update(overrides)
    return f"{base_version}+{override_version or 'operator'}", table


def cost_of(price: ModelPrice, usage: Usage) -> float:
    """USD of `usage` at `price`: cache reads and writes at their own rates, the rest as input."""
    uncached_input = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
    total = (
        uncached_input * price.input
        + usage.output_tokens * price.output
        + usage.cache_read_tokens * price.cache_read
        + usage.cache_write_tokens * price.cache_write
    )
    return round(total / 1_000_000, 8)


def cost_usd(model: str, usage: Usage, prices: dict[str, ModelPrice] | None = None) -> float:
    """What `usage` costs on `model`; unknown models cost 0 here (validation refuses them at start)."""
    price = (prices or PRICES).get(model)
    return 0.0 if price is None else cost_of(price, usage)


def max_call_cost(price: ModelPrice, input_tokens: int, max_output_tokens: int) -> float:
    """Worst-case USD of one call: every input token uncached at full input price (a cache write
    can cost more than input, so take the dearer rate) and every allowed output token."""
    per_input = max(price.input, price.cache_write)
    return (input_tokens * per_input + max_output_tokens * price.output) / 1_000_000
