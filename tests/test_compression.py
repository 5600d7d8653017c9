"""Payload compression: with `payload_compression_min_bytes` set, large payloads enter history
zlib-compressed; the run completes and replays, the codec server shows them readable, and turning
compression off later still decodes what was written compressed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.bundle import build_activities
from activities.models.base import ProviderRegistry
from activities.models.offline import OfflineProvider
from observability.codec import (
    COMPRESSED_ENCODING,
    ENCRYPTED_ENCODING,
    CompressionCodec,
    EncryptionCodec,
    data_converter,
    decode_key,
    generate_key,
)
from observability.codec_server import CodecServer, from_settings
from starter import make_request, start_run
from tests.fakes.telemetry import glossary_catalog, lookup_tools, observed_client, settings_for_test
from tests.test_encryption import _payloads
from worker import WORKFLOWS, build_worker
from workflows.sandbox import sandbox_runner

MIN_BYTES = 512


def _json(size: int) -> Payload:
    """A JSON payload of about `size` bytes, repetitive as model requests and outputs are."""
    text = json.dumps(
        {"messages": [{"role": "user", "content": "explain the two-sum problem " * (size // 28)}]}
    )
    return Payload(metadata={"encoding": b"json/plain", "messageType": b"ModelRequest"}, data=text.encode())


async def test_a_large_payload_is_compressed_and_decodes_to_the_same_payload() -> None:
    codec = CompressionCodec(MIN_BYTES, max_bytes=100_000)
    large = _json(8_000)
    [packed] = await codec.encode([large])
    assert packed.metadata["encoding"] == COMPRESSED_ENCODING
    assert len(packed.data) < len(large.data) / 5
    assert await codec.decode([packed]) == [large]  # metadata (messageType included) comes back whole
    [again] = await codec.encode([packed])
    assert again == packed  # never compressed twice


async def test_what_compression_leaves_alone() -> None:
    codec = CompressionCodec(MIN_BYTES, max_bytes=20_000)
    small = _json(100)
    over = _json(30_000)  # over the artifact threshold: left whole for the store
    noise = Payload(metadata={"encoding": b"binary/plain"}, data=os.urandom(4_000))  # would not shrink
    sealed = await EncryptionCodec(decode_key(generate_key())).encode([_json(4_000)])
    assert await codec.encode([small, over, noise, *sealed]) == [small, over, noise, *sealed]
    # Off, it compresses nothing and still decodes what was compressed while it was on.
    off = CompressionCodec(None)
    [packed] = await codec.encode([_json(4_000)])
    assert await off.encode([_json(4_000)]) == [_json(4_000)]
    assert await off.decode([packed]) == [_json(4_000)]


async def test_the_converter_compresses_before_it_encrypts(tmp_path: Path) -> None:
    settings = settings_for_test(
        tmp_path, payload_compression_min_bytes=MIN_BYTES, payload_encryption_key=generate_key()
    )
    codec = data_converter(settings).payload_codec
    assert codec is not None
    large = _json(8_000)
    [stored] = await codec.encode([large])
    assert stored.metadata["encoding"] == ENCRYPTED_ENCODING
    encryption = EncryptionCodec.from_settings(settings)
    assert encryption is not None
    assert encryption.decrypt(stored).metadata["encoding"] == COMPRESSED_ENCODING
    assert len(stored.data) < len(large.data) / 4  # ciphertext of the compressed form
    assert await codec.decode([stored]) == [large]


async def test_a_run_with_compression_on_completes_replays_and_reads_through_the_codec_server(
    env: WorkflowEnvironment, tmp_path: Path, task_queue: str, workflow_id: str
) -> None:
    settings = settings_for_test(tmp_path, payload_compression_min_bytes=MIN_BYTES)
    client = observed_client(env.client, settings)
    catalog = glossary_catalog()
    providers = ProviderRegistry()
    providers.register(OfflineProvider(catalog))
    activities = build_activities(settings, catalog=catalog, tools=lookup_tools(), providers=providers)
    async with build_worker(client, settings, task_queue=task_queue, activities=activities):
        request = make_request(
            "glossary", input_value={"terms": ["idempotency", "saga"], "note": "for operators"}
        )
        handle = await start_run(client, request, task_queue=task_queue, workflow_id=workflow_id)
        result = await handle.result()
    assert result.state == "COMPLETE", result.error

    # As the server holds it: every payload of MIN_BYTES or more went in compressed.
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    payloads = _payloads(history)
    compressed = [p for p in payloads if p.metadata.get("encoding") == COMPRESSED_ENCODING]
    plain_large = [
        p for p in payloads if p.metadata.get("encoding") == b"json/plain" and len(p.data) >= MIN_BYTES
    ]
    assert len(compressed) >= 4  # model requests and results, the run's result
    assert plain_large == []
    final = history.events[-1].workflow_execution_completed_event_attributes.result.payloads[0]
    assert final.metadata["encoding"] == COMPRESSED_ENCODING

    # Replays with the engine's converter, and with compression since turned off.
    off = settings_for_test(tmp_path)
    for converter_settings in (settings, off):
        replay = await Replayer(
            workflows=WORKFLOWS,
            data_converter=data_converter(converter_settings),
            workflow_runner=sandbox_runner(),
        ).replay_workflow(history)
        assert replay.replay_failure is None

    # The codec server (no encryption key configured) hands the UI the readable result.
    with from_settings(off, port=0) as server:
        assert isinstance(server, CodecServer)
        body = json_format.MessageToJson(Payloads(payloads=[final]))
        async with httpx.AsyncClient(base_url=server.url) as http:
            decoded = await http.post("/decode", content=body)
    assert decoded.status_code == 200
    [readable] = json_format.Parse(decoded.content, Payloads()).payloads
    assert readable.metadata["encoding"] == b"json/plain"
    assert json.loads(readable.data)["state"] == "COMPLETE"
