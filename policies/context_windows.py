"""Context window sizes per model, and how much of the window a call used. Pure data."""

from __future__ import annotations

#: Prompt + completion tokens each model accepts. Unknown models have no utilization figure.
CONTEXT_WINDOWS: dict[str, int] = {
    "offline-v1": 200_000,
    "claude-sonnet-4-6": 1_000_000,
    "claude-sonnet-4-5": 200_000,
    "claude-haiku-4-5": 200_000,
    "claude-opus-4-1": 200_000,
    "gpt-4o-mini": 128_000,
    "gpt-4o": 128_000,
}


def context_window(model: str) -> int | None:
    """The window of `model`, also for dated names (`claude-sonnet-4-5-20250929`)."""
    if model in CONTEXT_WINDOWS:
        return CONTEXT_WINDOWS[model]
    matches = [name for name in CONTEXT_WINDOWS if model.startswith(name + "-")]
    return CONTEXT_WINDOWS[max(matches, key=len)] if matches else None


def context_utilization(model: str, input_tokens: int) -> float | None:
    """Share of the model's window the prompt filled (0..1+), or None for an unknown model."""
    window = context_window(model)
    if not window:
        return None
    return input_tokens / window
