"""What redaction and encryption cost per payload, side by side in one run.

    PYTHONPATH=. python benchmarks/codec_overhead.py [--rounds 2000]

Encodes a representative `model_turn` input (a run's input, a few turns of messages and tool
results, ~20 KB of JSON) with the pydantic converter alone, then with the redaction codec, then
with redaction + AES-GCM, and decodes it back; prints microseconds per payload and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.model import Message, ModelTurnInput, ToolCall, ToolResultBlock
from observability import redaction
from observability.codec import CodecChain, EncryptionCodec, RedactionCodec, decode_key, generate_key


def sample() -> ModelTurnInput:
    """A mid-run model turn: input, 6 turns of tool calls and JSON tool results."""
    run_input = {"topic": "durable execution " * 20, "sections": [f"section {i}" for i in range(6)]}
    messages = [Message(role="user", content="Task t1: write notes\n" + json.dumps(run_input, indent=1))]
    for turn in range(6):
        call = ToolCall(
            id=f"c{turn}", name="write_file", arguments={"path": f"n{turn}.md", "content": "x" * 800}
        )
        messages.append(Message(role="assistant", content="writing", tool_calls=[call]))
        result = json.dumps(
            {"status": "ok", "tool": "write_file", "output": {"path": f"n{turn}.md", "bytes": 800}}
        )
        messages.append(
            Message(
                role="tool",
                tool_results=[ToolResultBlock(tool_call_id=f"c{turn}", name="write_file", content=result)],
            )
        )
    return ModelTurnInput(
        run_id="run-1",
        step_id="t1/turn-7",
        provider="anthropic",
        model="claude-sonnet-4-5",
        system="You keep tidy notes. " * 30,
        messages=messages,
        context={"input": run_input},
    )


async def measure(label: str, codec: object | None, payloads: list, rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        encoded = await codec.encode(payloads) if codec else payloads  # type: ignore[attr-defined]
        if codec:
            await codec.decode(encoded)  # type: ignore[attr-defined]
    per = (time.perf_counter() - started) / rounds * 1e6
    print(f"{label:<28} {per:9.1f} µs per encode+decode")
    return per


async def main(rounds: int) -> None:
    redaction.install(
        redaction.Redactor.build(
            ["api_key", "authorization", "password", "token", "secret"],
            ["sk-ant-0123456789abcdef"],
            [r"sk-ant-[A-Za-z0-9_\-]{8,}", r"(?i)bearer\s+[A-Za-z0-9._~+/\-]{8,}=*"],
        )
    )
    value = sample()
    convert_start = time.perf_counter()
    for _ in range(rounds):
        payloads = pydantic_data_converter.payload_converter.to_payloads([value])
    convert = (time.perf_counter() - convert_start) / rounds * 1e6
    print(f"payload size: {len(payloads[0].data)} bytes; {rounds} rounds")
    print(f"{'pydantic to_payloads':<28} {convert:9.1f} µs")
    redact = await measure("+ redaction codec", RedactionCodec(), payloads, rounds)
    both = await measure(
        "+ redaction + AES-GCM",
        CodecChain([RedactionCodec(), EncryptionCodec(decode_key(generate_key()))]),
        payloads,
        rounds,
    )
    print(
        f"redaction / conversion = {redact / convert:.2f}x; redaction+encryption / conversion = {both / convert:.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    asyncio.run(main(parser.parse_args().rounds))
