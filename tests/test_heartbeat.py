"""`with_heartbeats`: an activity awaiting slow work heartbeats on schedule; fast work costs none."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import ActivityEnvironment

from activities.heartbeat import with_heartbeats


async def _slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


async def test_slow_work_heartbeats_until_it_finishes_and_fast_work_never_does() -> None:
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    async def activity_body(seconds: float) -> str:
        return await with_heartbeats(_slow(seconds), every_s=0.05)

    assert await env.run(activity_body, 0.32) == "done"
    slow_beats = len(beats)
    assert (
        2 <= slow_beats <= 6
    )  # a beat every 0.05 s of a 0.32 s wait (a loaded machine beats late, never early)
    await asyncio.sleep(0.15)
    assert len(beats) == slow_beats  # the timer stops with the work

    beats.clear()
    assert await env.run(activity_body, 0.0) == "done"
    assert beats == []


async def test_a_failure_of_the_work_propagates_and_stops_the_beats() -> None:
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    async def failing() -> None:
        await asyncio.sleep(0.12)
        raise RuntimeError("provider down")

    async def activity_body() -> None:
        await with_heartbeats(failing(), every_s=0.05)

    with pytest.raises(RuntimeError, match="provider down"):
        await env.run(activity_body)
    seen = len(beats)
    assert seen >= 1
    await asyncio.sleep(0.15)
    assert len(beats) == seen
