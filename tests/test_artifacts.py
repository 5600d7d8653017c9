"""Large payloads travel by reference through the artifact store, never through history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment

from activities.artifacts import REF_ENCODING, ArtifactCodec, ArtifactMissing, FileArtifactStore
from contracts.model import ModelTurnInput, ToolCall
from contracts.run import RunRequest, RunResult
from policies.protocol import SUBMIT_OUTPUT
from tests.fakes import harness, steps
from tests.fakes.scripted import call

THRESHOLD = 256 * 1024


async def test_codec_offloads_only_large_payloads_and_restores_them(tmp_path: Path) -> None:
    codec = ArtifactCodec(FileArtifactStore(tmp_path), THRESHOLD)
    small = Payload(metadata={"encoding": b"json/plain"}, data=b'"hi"')
    large = Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"x" * (THRESHOLD + 10) + b'"')
    encoded = await codec.encode([small, large])
    assert encoded[0] == small
    assert encoded[1].metadata["encoding"] == REF_ENCODING and encoded[1].ByteSize() < 500
    assert await codec.decode(encoded) == [small, large]
    again = await codec.encode([large])  # content addressed: stored once
    assert again[1:] == [] and again[0].data == encoded[1].data
    assert len(_files(tmp_path)) == 1


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_a_missing_or_corrupted_artifact_is_an_error_not_garbage(tmp_path: Path) -> None:
    store = FileArtifactStore(tmp_path)
    ref = store.put_json({"big": "value"})
    store._path(ref.key).write_bytes(b"tampered")
    with pytest.raises(ArtifactMissing, match="corrupted"):
        store.get_json(ref)
    store._path(ref.key).unlink()
    with pytest.raises(ArtifactMissing, match="not in"):
        store.get_json(ref)


async def test_a_3mb_output_completes_through_the_artifact_store(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(env.client, settings)
    big_summary = "0123456789abcdef" * (3 * 1024 * 1024 // 16)  # 3 MiB of text

    def script(request: ModelTurnInput) -> list[ToolCall] | None:
        if request.step_kind == "compose":
            return [call(SUBMIT_OUTPUT, {"output": {"summary": big_summary}})]
        return steps.steps_script(request)

    async with harness.running_worker(client, settings, task_queue, script=script):
        handle = await client.start_workflow(
            "AgentRunWorkflow",
            RunRequest(
                blueprint="tool-steps",
                input={"steps": [{"tool": "bump", "label": "a"}]},
                provider="scripted",
                model="offline-v1",
            ),
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunResult,
        )
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.state == "COMPLETE", result.error
    assert result.output == {"summary": big_summary}
    sizes = [event.ByteSize() for event in history.events]
    assert max(sizes) < THRESHOLD, f"an event of {max(sizes)} bytes entered history"
    refs = [
        p for event in history.events for p in _payloads(event) if p.metadata.get("encoding") == REF_ENCODING
    ]
    assert len(refs) >= 2  # the model's answer and the run's result (the review is a local activity)
    assert (
        sum(p.stat().st_size for p in settings.resolved_artifact_dir().rglob("*") if p.is_file()) > 3_000_000
    )


def _payloads(event: Any) -> list[Payload]:
    """Every Payload message anywhere inside a history event."""
    found: list[Payload] = []

    def walk(message: Any) -> None:
        if isinstance(message, Payload):
            found.append(message)
            return
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if field.message_type.GetOptions().map_entry:
                items = list(value.values())
            elif field.is_repeated:
                items = list(value)
            else:
                items = [value]
            for item in items:
                if hasattr(item, "ListFields"):
                    walk(item)

    walk(event)
    return found
