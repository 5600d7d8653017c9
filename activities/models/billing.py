"""Tokens a provider billed for a call that then failed (a response cut short, a body that did
not parse): a provider attaches them to the exception it raises, and `model_turn` records them."""

from __future__ import annotations

from contracts.model import Usage

_ATTRIBUTE = "billed_usage"


def attach_billed_usage(exc: BaseException, usage: Usage) -> BaseException:
    """Mark `exc` as having consumed `usage` at the provider; returns `exc` for `raise`."""
    setattr(exc, _ATTRIBUTE, usage)
    return exc


def billed_usage(exc: BaseException) -> Usage | None:
    """The tokens a failed call consumed, when its provider said so (on it or on its cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        usage = getattr(current, _ATTRIBUTE, None)
        if isinstance(usage, Usage):
            return usage
        current = current.__cause__ or current.__context__
    return None
