"""Heartbeat while an activity awaits slow work, so a dead worker is noticed within the
heartbeat timeout instead of the (much longer) start-to-close timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")


async def with_heartbeats(work: Awaitable[T], every_s: float = 2.0) -> T:
    """Await `work`, heartbeating every `every_s` seconds until it finishes."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=every_s)
        if done:
            return task.result()
        activity.heartbeat()
