"""Payload encryption: with a key set, history on the server holds ciphertext only; the run still
completes, replays with the key (and not without it), and the codec server decodes for the UI."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.bundle import build_activities
from activities.models.base import ProviderRegistry
from activities.models.offline import OfflineProvider
from observability.codec import ENCRYPTED_ENCODING, EncryptionCodec, data_converter, decode_key, generate_key
from observability.codec_server import CodecServer
from starter import make_request, start_run
from tests.fakes.telemetry import (
    glossary_catalog,
    history_texts,
    lookup_tools,
    observed_client,
    search_attributes_ready,
    settings_for_test,
)
from worker import WORKFLOWS, build_worker
from workflows.sandbox import sandbox_runner

MARKER = "plaintext-marker-4471"
UI_ORIGIN = "http://localhost:8233"


# Left in clear text by design: search attributes (the server indexes them: state, blueprint,
# tenant) and headers (the W3C trace context). Neither carries run data.
_CLEAR_BY_DESIGN = ("search_attributes", "header")


def _payloads(history: WorkflowHistory) -> list[Payload]:
    """Every data payload in a history (outside search attributes and headers)."""
    found: list[Payload] = []

    def walk(message: object) -> None:
        if isinstance(message, Payload):
            found.append(message)
            return
        for descriptor, value in message.ListFields():  # type: ignore[attr-defined]
            if descriptor.message_type is None or descriptor.name in _CLEAR_BY_DESIGN:
                continue
            if descriptor.message_type.GetOptions().map_entry:
                values = [v for v in value.values() if hasattr(v, "ListFields")]
            elif descriptor.is_repeated:
                values = list(value)
            else:
                values = [value]
            for item in values:
                walk(item)

    for event in history.events:
        walk(event)
    return found


async def test_encrypted_history_holds_no_plaintext_and_the_run_completes_and_replays(
    devserver_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, workflow_id: str
) -> None:
    settings = settings_for_test(
        tmp_path, payload_encryption_key=generate_key(), payload_encryption_key_id="k1"
    )
    client = observed_client(devserver_env.client, settings)
    await search_attributes_ready(client)
    catalog = glossary_catalog()
    providers = ProviderRegistry()
    providers.register(OfflineProvider(catalog))
    activities = build_activities(settings, catalog=catalog, tools=lookup_tools(), providers=providers)
    async with build_worker(client, settings, task_queue=task_queue, activities=activities):
        request = make_request("glossary", input_value={"terms": [MARKER], "note": f"about {MARKER}"})
        handle = await start_run(client, request, task_queue=task_queue, workflow_id=workflow_id)
        result = await handle.result()
    assert result.state == "COMPLETE", result.error
    assert MARKER in json.dumps(result.output)  # the workflow saw the input in clear text

    # The history as the server holds it, read by a client without the key.
    history = await devserver_env.client.get_workflow_handle(workflow_id).fetch_history()
    # The SDK core writes its own bookkeeping into markers (a patch's id; a local activity's type,
    # seq and times) in clear text; they hold no run data (the scan below covers them too).
    core_metadata = [
        payload
        for event in history.events
        if event.HasField("marker_recorded_event_attributes")
        for key in ("patch-data", "data")
        if key in event.marker_recorded_event_attributes.details
        for payload in event.marker_recorded_event_attributes.details[key].payloads
    ]
    payloads = [
        p
        for p in _payloads(history)
        if p.metadata.get("encoding") != b"binary/null" and p not in core_metadata
    ]
    assert len(payloads) >= 10  # input, every activity's input and result, the result
    assert {p.metadata["encoding"] for p in payloads} == {ENCRYPTED_ENCODING}
    assert {p.metadata["encryption-key-id"] for p in payloads} == {b"k1"}
    assert all(MARKER not in text for text in history_texts(history))

    # Replays with the key; without it the input cannot even be read.
    replay = await Replayer(
        workflows=WORKFLOWS, data_converter=data_converter(settings), workflow_runner=sandbox_runner()
    ).replay_workflow(history)
    assert replay.replay_failure is None
    with pytest.raises(RuntimeError, match="Failed decoding arguments"):
        await Replayer(
            workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=sandbox_runner()
        ).replay_workflow(history)

    # The codec server hands the UI readable payloads, to allowed origins only.
    started = history.events[0].workflow_execution_started_event_attributes.input
    body = json_format.MessageToJson(Payloads(payloads=list(started.payloads)))
    codec = EncryptionCodec.from_settings(settings)
    assert codec is not None
    with CodecServer(codec, cors_origins=[UI_ORIGIN]) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            decoded = await http.post(
                "/decode", content=body, headers={"Origin": UI_ORIGIN, "X-Namespace": "default"}
            )
            preflight = await http.options("/decode", headers={"Origin": UI_ORIGIN})
            stranger = await http.options("/decode", headers={"Origin": "http://evil.example"})
            garbage = await http.post("/decode", content=b"not json")
    assert decoded.status_code == 200
    assert decoded.headers["access-control-allow-origin"] == UI_ORIGIN
    plain = json_format.Parse(decoded.content, Payloads()).payloads[0]
    assert plain.metadata["encoding"] == b"json/plain" and MARKER in plain.data.decode()
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "x-namespace" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in stranger.headers
    assert garbage.status_code == 400 and MARKER not in garbage.text


async def test_codec_round_trips_binds_the_key_id_and_refuses_a_wrong_key() -> None:
    key = decode_key(generate_key())
    codec = EncryptionCodec(key, "k1")
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"secret": 1}')
    [sealed] = await codec.encode([plain])
    assert sealed.metadata["encoding"] == ENCRYPTED_ENCODING and b"secret" not in sealed.data
    assert await codec.decode([sealed]) == [plain]
    [again] = await codec.encode([plain])
    assert again.data != sealed.data  # a fresh nonce every time
    with pytest.raises(ValueError, match="key id 'k1'"):
        await EncryptionCodec(key, "k2").decode([sealed])
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag: a wrong key cannot open it
        await EncryptionCodec(decode_key(generate_key()), "k1").decode([sealed])
    rotated = EncryptionCodec(decode_key(generate_key()), "k2", old_keys={"k1": key})
    assert await rotated.decode([sealed]) == [plain]


def test_codec_server_requires_the_token_when_one_is_set() -> None:
    codec = EncryptionCodec(decode_key(generate_key()))
    body = json_format.MessageToJson(
        Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    )
    with CodecServer(codec, token="t0ken-for-ui") as server:
        missing = httpx.post(f"{server.url}/encode", content=body)
        wrong = httpx.post(f"{server.url}/encode", content=body, headers={"Authorization": "Bearer nope"})
        right = httpx.post(
            f"{server.url}/encode", content=body, headers={"Authorization": "Bearer t0ken-for-ui"}
        )
    assert missing.status_code == wrong.status_code == 401
    assert right.status_code == 200
    [encoded] = json_format.Parse(right.content, Payloads()).payloads
    assert encoded.metadata["encoding"] == ENCRYPTED_ENCODING
