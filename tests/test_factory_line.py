"""The factory line: many items as child runs, under a cap, across continue-as-new and crashes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.batch import BatchProgress, BatchRequest, BatchSummary
from starter import read_items, start_batch
from tests.fakes import harness
from tests.fakes.steps import read_jsonl
from tests.support import published_states
from tests.test_saga import _start_worker
from workflows.factory_line import item_workflow_id
from workflows.search_attributes import FACTORY_STATE


def bump_item(i: int, fail: bool = False) -> dict[str, Any]:
    return {"steps": [{"tool": "bump", "label": f"item-{i}", "fail": fail}]}


async def test_batch_continues_as_new_and_summarizes_successes_and_failures(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(env.client, settings)
    items = [bump_item(i, fail=i in (3, 8)) for i in range(12)] + [{"steps": []}]  # the last is invalid input
    async with harness.running_worker(client, settings, task_queue):
        handle = await client.start_workflow(
            "FactoryLineWorkflow",
            BatchRequest(
                blueprint="tool-steps",
                items=items,
                concurrency=3,
                items_per_run=5,
                page_size=2,
                provider="scripted",
                model="claude-haiku-4-5",
            ),  # a priced model: the cost adds up
            id=workflow_id,
            task_queue=task_queue,
            result_type=BatchSummary,
        )
        summary = await handle.result()
        progress = await client.get_workflow_handle(workflow_id).query("progress", result_type=BatchProgress)
    assert (summary.total, summary.succeeded, summary.failed) == (13, 10, 3)
    assert summary.continued_as_new == 2  # 13 items, 5 per run
    assert [(f.index, f.state) for f in summary.failures] == [(3, "FAILED"), (8, "FAILED"), (12, "REJECTED")]
    assert all(f.dead_letter_id for f in summary.failures)
    assert summary.failures[0].workflow_id == item_workflow_id(workflow_id, 3)
    letter = await harness.dead_letters(settings).get(summary.failures[0].dead_letter_id or "")
    assert letter is not None and letter.workflow_id == item_workflow_id(workflow_id, 3)
    assert summary.cost_usd > 0 and summary.cost_per_success_usd == round(summary.cost_usd / 10, 8)
    assert (progress.done, progress.in_flight, progress.total) == (13, 0, 13)
    labels = Counter(e["label"] for e in read_jsonl(tmp_path / "state" / "effects.jsonl"))
    assert labels == Counter({f"item-{i}": 1 for i in range(12)})
    # Children publish FactoryState as notable runs: a healthy one once, as it ends; a failed or
    # rejected one is found by its end state, as ever.
    published = {}
    for index in (0, 3, 12):
        child = client.get_workflow_handle(item_workflow_id(workflow_id, index))
        states = [
            u["FactoryState"] for u in published_states(await child.fetch_history()) if "FactoryState" in u
        ]
        published[index] = (states, (await child.describe()).typed_search_attributes.get(FACTORY_STATE))
    assert published == {
        0: (["COMPLETE"], "COMPLETE"),
        3: (["FAILED"], "FAILED"),
        12: (["REJECTED"], "REJECTED"),
    }


def test_items_file_errors_name_the_line(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n\n[2]\n')
    assert read_items(good) == [{"a": 1}, [2]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    try:
        read_items(bad)
    except ValueError as exc:
        assert getattr(exc, "line", None) == 2
    else:
        raise AssertionError("a malformed line was accepted")


@pytest.mark.timeout(900)  # ~190 s alone on 2 cores; room for a loaded machine
async def test_a_thousand_items_on_the_dev_server_complete_with_a_correct_summary(
    devserver_env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(devserver_env.client, settings)
    statement = "Given an array of integers, return the indices of two numbers that add up to a target."
    items: list[Any] = [{"title": f"Problem {i}", "statement": statement} for i in range(1000)]
    for i in (17, 404, 999):
        items[i] = {"title": "x", "statement": "short"}  # invalid: REJECTED at VALIDATING
    async with harness.running_worker(client, settings, task_queue):
        handle = await start_batch(
            client,
            "algorithm-explainer",
            items,
            settings=settings,
            concurrency=50,
            batch_id=workflow_id,
            task_queue=task_queue,
            provider="offline",
        )
        summary = await asyncio.wait_for(handle.result(), 600)
    assert (summary.total, summary.succeeded, summary.failed) == (1000, 997, 3)
    assert [f.index for f in summary.failures] == [17, 404, 999]
    assert {f.state for f in summary.failures} == {"REJECTED"} and all(
        f.dead_letter_id for f in summary.failures
    )
    assert summary.continued_as_new == 1  # 500 items per run
    assert summary.cost_usd == 0.0 and summary.cost_per_success_usd == 0.0  # the offline model is free
    print(f"\n1,000 items: {summary.wall_time_s:.1f}s wall, {summary.throughput_per_s:.1f} items/s")


async def test_killing_every_worker_mid_batch_loses_nothing_and_reruns_no_finished_item(
    devserver_env: WorkflowEnvironment,
    devserver_target_host: str,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(devserver_env.client, settings)
    count, concurrency = 60, 4
    log = tmp_path / "workers.log"
    first = _start_worker(devserver_target_host, task_queue, tmp_path, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        handle = await start_batch(
            client,
            "tool-steps",
            [bump_item(i) for i in range(count)],
            settings=settings,
            concurrency=concurrency,
            batch_id=workflow_id,
            task_queue=task_queue,
            provider="scripted",
            model="offline-v1",
            items_per_run=25,
        )
        deadline = time.monotonic() + 120
        while True:
            progress = await client.get_workflow_handle(workflow_id).query(
                "progress", result_type=BatchProgress
            )
            if progress.done >= 15:
                break
            assert time.monotonic() < deadline, "the batch made no progress"
            await asyncio.sleep(0.2)
        first.send_signal(signal.SIGKILL)  # the only worker dies mid-batch
        first.wait(10)
        done_at_kill = progress.done
        second = _start_worker(devserver_target_host, task_queue, tmp_path, log)
        summary = await asyncio.wait_for(handle.result(), 300)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    assert (summary.total, summary.succeeded, summary.failed) == (count, count, 0)
    labels = Counter(e["label"] for e in read_jsonl(tmp_path / "state" / "effects.jsonl"))
    assert set(labels) == {f"item-{i}" for i in range(count)}
    repeated = {label: n for label, n in labels.items() if n > 1}
    # Only a tool call in flight at the kill may run again (activities are at least once); a
    # finished item never does.
    assert len(repeated) <= concurrency and all(n == 2 for n in repeated.values()), repeated
    assert done_at_kill < count
