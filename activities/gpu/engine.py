"""The narrow interface between GPU activities and a generation engine.

Activities, the worker and the tests only see `GenerationEngine`; the vLLM implementation lives in
`activities.gpu.vllm_engine` and is the one module that imports vLLM (lazily, on a GPU machine).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from settings import Settings


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample one batch: the subset of sampling parameters our activities use."""

    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    """One finished completion: its text, token counts and why it stopped (`stop`, `length`)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"


@dataclass(frozen=True)
class EngineInfo:
    """What the worker logs at start: the model and the engine settings that shape throughput."""

    model: str
    served_name: str
    engine: str
    settings: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class GenerationEngine(Protocol):
    """Generates completions for batches of prompts, optionally constrained to a JSON schema.

    Many activities call `generate` concurrently; the engine batches them (vLLM does continuous
    batching), so implementations must be safe to call from many asyncio tasks at once."""

    info: EngineInfo

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """Turn role/content messages into one prompt string with the model's chat template."""
        ...

    async def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingSettings,
        json_schema: Mapping[str, Any] | None = None,
    ) -> list[Generation]:
        """One `Generation` per prompt, in order; with `json_schema`, output is guided to match it."""
        ...

    async def shutdown(self) -> None:
        """Release the engine (GPU memory, background processes). Called once, after the drain."""
        ...


class EngineUnavailable(RuntimeError):
    """The engine cannot start here; `exit_code` tells the operator's tooling why."""

    MODEL_NOT_FOUND = 3
    NO_GPU_RUNTIME = 4

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def looks_like_path(model: str) -> bool:
    """True when `model` names a local folder rather than a hub name (`org/name`)."""
    return model.startswith((".", "/", "~")) or Path(model).expanduser().exists() or model.count("/") > 1


def create_engine(settings: Settings, model: str, *, max_num_seqs: int | None = None) -> GenerationEngine:
    """Build the process's engine: vLLM, or `settings.gpu_engine_factory` (tests) when set.

    Raises `EngineUnavailable` with a clear message for a missing model path, a missing vLLM or no GPU."""
    if looks_like_path(model) and not Path(model).expanduser().exists():
        raise EngineUnavailable(f"model path {model!r} does not exist", EngineUnavailable.MODEL_NOT_FOUND)
    if settings.gpu_engine_factory:
        module_name, _, attr = settings.gpu_engine_factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attr or "create_engine")
        return factory(settings, model)  # type: ignore[no-any-return]
    from activities.gpu.vllm_engine import VllmEngine

    return VllmEngine.start(settings, model, max_num_seqs=max_num_seqs)
