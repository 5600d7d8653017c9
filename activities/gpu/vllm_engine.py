"""`GenerationEngine` over vLLM's async engine, started once per worker process.

The only module of the project that imports vLLM, and only inside functions: importing this module
on a machine without vLLM or a GPU works; starting the engine there raises `EngineUnavailable`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from activities.gpu.engine import EngineInfo, EngineUnavailable, Generation, SamplingSettings
from settings import Settings

log = logging.getLogger("ai_factory.gpu")

INSTALL_HINT = "install the GPU extra on a machine with an NVIDIA GPU: pip install -e '.[gpu]'"


def require_vllm() -> Any:
    """The `vllm` module and a visible CUDA device, or `EngineUnavailable` saying which is missing."""
    try:
        import vllm
    except ImportError as exc:
        raise EngineUnavailable(
            f"vLLM is not installed ({exc}); {INSTALL_HINT}", EngineUnavailable.NO_GPU_RUNTIME
        ) from None
    try:
        import torch
    except ImportError as exc:  # vLLM always brings torch; a broken install is still worth a clear line
        raise EngineUnavailable(
            f"torch is not importable ({exc})", EngineUnavailable.NO_GPU_RUNTIME
        ) from None
    if not torch.cuda.is_available():
        raise EngineUnavailable(
            "no CUDA GPU is visible to this process (torch.cuda.is_available() is False)",
            EngineUnavailable.NO_GPU_RUNTIME,
        )
    return vllm


def structured_sampling_kwargs(json_schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """SamplingParams keyword arguments that guide decoding to `json_schema`, for old and new vLLM."""
    if json_schema is None:
        return {}
    try:  # vLLM ≥ 0.10.2 names it structured outputs
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json=dict(json_schema))}
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=dict(json_schema))}


def engine_settings(settings: Settings, max_num_seqs: int) -> dict[str, Any]:
    """The engine arguments we set, from settings (logged at start, passed to AsyncEngineArgs)."""
    args: dict[str, Any] = {
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "dtype": settings.gpu_dtype,
        "enforce_eager": settings.gpu_enforce_eager,
        "max_num_seqs": max_num_seqs,
    }
    if settings.gpu_max_model_len:
        args["max_model_len"] = settings.gpu_max_model_len
    return args


def render_chat(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """A prompt from the tokenizer's chat template; a plain role-tagged layout when it has none
    (random test models). The benchmark renders its offline prompts with this too."""
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))
    lines = [f"<|{m['role']}|>\n{m['content']}" for m in messages]
    return "\n".join([*lines, "<|assistant|>\n"])


class VllmEngine:
    """vLLM's AsyncLLM (continuous batching across concurrent `generate` calls) plus the model's
    tokenizer for chat templates."""

    def __init__(self, engine: Any, tokenizer: Any, info: EngineInfo) -> None:
        self._engine = engine
        self._tokenizer = tokenizer
        self.info = info

    @classmethod
    def start(cls, settings: Settings, model: str, max_num_seqs: int | None = None) -> VllmEngine:
        """Start the engine in this process (loads weights onto the GPU; takes a while)."""
        vllm = require_vllm()
        from transformers import AutoTokenizer

        try:
            from vllm.v1.engine.async_llm import AsyncLLM as engine_class
        except ImportError:  # older releases: the pre-v1 async engine
            engine_class = vllm.AsyncLLMEngine
        served = settings.gpu_served_model_name or Path(model.rstrip("/")).name
        extra = engine_settings(settings, max_num_seqs or settings.gpu_max_concurrent_activities)
        engine_args = vllm.AsyncEngineArgs(model=model, served_model_name=[served], **extra)
        engine = engine_class.from_engine_args(engine_args)
        tokenizer = AutoTokenizer.from_pretrained(model)
        info = EngineInfo(
            model=model,
            served_name=served,
            engine=f"vllm {vllm.__version__} {engine_class.__name__}",
            settings=extra,
        )
        return cls(engine, tokenizer, info)

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The model's own chat template (see `render_chat`)."""
        return render_chat(self._tokenizer, messages)

    async def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingSettings,
        json_schema: Mapping[str, Any] | None = None,
    ) -> list[Generation]:
        """Submit every prompt at once; vLLM batches them with whatever else is in flight."""
        from vllm import SamplingParams

        kwargs: dict[str, Any] = {}
        try:
            from vllm.sampling_params import RequestOutputKind

            kwargs["output_kind"] = (
                RequestOutputKind.FINAL_ONLY
            )  # no per-token outputs to stream through asyncio
        except ImportError:
            pass
        params = SamplingParams(
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            **kwargs,
            **structured_sampling_kwargs(json_schema),
        )
        return list(await asyncio.gather(*(self._one(prompt, params) for prompt in prompts)))

    async def _one(self, prompt: str, params: Any) -> Generation:
        final = None
        # Cancelling this coroutine closes the generator, which makes vLLM abort the request.
        async for output in self._engine.generate(prompt, params, uuid.uuid4().hex):
            final = output
        if final is None or not final.outputs:
            raise RuntimeError("vLLM returned no output")
        completion = final.outputs[0]
        return Generation(
            text=completion.text,
            prompt_tokens=len(final.prompt_token_ids or []),
            completion_tokens=len(completion.token_ids),
            finish_reason=str(completion.finish_reason or "stop"),
        )

    async def shutdown(self) -> None:
        """Stop the engine's background processes and free the GPU."""
        stop = getattr(self._engine, "shutdown", None)
        if stop is None:
            return
        outcome = stop()
        if inspect.isawaitable(outcome):
            await outcome
        log.info("vLLM engine shut down")
