"""Heartbeat while an activity awaits slow work, so a dead worker is noticed within the
heartbeat timeout instead of the (much longer) start-to-close timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")


async def with_heartbeats(work: Awaitable[T], every_s: float = 2.0) -> T:
    """Await `work`, heartbeating every `every_s` seconds until it finishes.

    A timer on the event loop beats, so work that finishes before the first beat (most model
    turns of a small model) costs one timer, not a task and a wait."""
    loop = asyncio.get_running_loop()
    handle: asyncio.TimerHandle | None = None

    def beat() -> None:
        nonlocal handle
        activity.heartbeat()
        handle = loop.call_later(every_s, beat)

    handle = loop.call_later(every_s, beat)
    try:
        return await work
    finally:
        handle.cancel()
