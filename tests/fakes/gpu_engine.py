"""A fake `GenerationEngine` for CPU tests: deterministic, configurable latency, and observable.

It records how many generations were in flight at once (to prove that concurrent activities reach
the engine together), can return invalid JSON for its first N guided generations, and writes
`start`/`done` lines to an events file when a subprocess worker uses it (`FAKE_GPU_EVENTS`).

A subprocess worker selects it with `GPU_ENGINE_FACTORY=tests.fakes.gpu_engine:from_settings`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from activities.gpu.engine import EngineInfo, Generation, SamplingSettings
from activities.models.offline import synthesize
from settings import Settings


def count_tokens(text: str) -> int:
    """Whitespace tokens: deterministic and easy to check by hand."""
    return len(text.split())


class FakeEngine:
    """Answers guided prompts with a schema-valid value (the offline synthesizer) and free prompts
    with a fixed echo, after `latency_s` seconds per generate call."""

    def __init__(
        self,
        latency_s: float = 0.0,
        invalid_outputs: int = 0,
        model: str = "fake-small",
        events_file: Path | None = None,
        responder: Callable[[str, Mapping[str, Any] | None], str | None] | None = None,
    ) -> None:
        self.info = EngineInfo(
            model=model, served_name=model, engine="fake", settings={"latency_s": latency_s}
        )
        self.latency_s = latency_s
        self.invalid_outputs = invalid_outputs
        self.events_file = events_file
        self.responder = responder
        """Answers (prompt, schema) with a text of its choosing; None falls back to the default answer."""
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls: list[dict[str, Any]] = []
        self.shut_down = False
        self.entered = asyncio.Event()
        """Set once a generation has started."""
        self._release: asyncio.Event | None = None

    def hold(self) -> asyncio.Event:
        """Make generations wait until the returned event is set (tests control timing exactly)."""
        self._release = asyncio.Event()
        return self._release

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """A plain role-tagged template."""
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    async def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingSettings,
        json_schema: Mapping[str, Any] | None = None,
    ) -> list[Generation]:
        """Deterministic completions for `prompts`."""
        key = hashlib.sha256("".join(prompts).encode()).hexdigest()[:12]
        self.in_flight += len(prompts)
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.calls.append({"prompts": list(prompts), "sampling": sampling, "schema": json_schema})
        self._event("start", key)
        self.entered.set()
        try:
            if self._release is not None:
                await self._release.wait()
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            results = [self._answer(prompt, sampling, json_schema) for prompt in prompts]
        finally:
            self.in_flight -= len(prompts)
        self._event("done", key)
        return results

    def _answer(
        self, prompt: str, sampling: SamplingSettings, schema: Mapping[str, Any] | None
    ) -> Generation:
        scripted = self.responder(prompt, schema) if self.responder else None
        if scripted is not None:
            text = scripted
        elif schema is None:
            text = f"fake answer to {hashlib.sha256(prompt.encode()).hexdigest()[:8]}"
        elif self.invalid_outputs > 0:
            self.invalid_outputs -= 1
            text = '{"tool": "unterminated'
        else:
            text = json.dumps(synthesize(dict(schema), dict(schema), None, "output"))
        words = text.split()[: sampling.max_tokens]
        return Generation(
            text=text,
            prompt_tokens=count_tokens(prompt),
            completion_tokens=len(words),
            finish_reason="stop",
        )

    def _event(self, kind: str, key: str) -> None:
        if self.events_file is not None:
            with self.events_file.open("a") as f:
                f.write(f"{kind} {key}\n")

    async def shutdown(self) -> None:
        """Mark the engine stopped (the drain test checks the order)."""
        self.shut_down = True
        self._event("shutdown", "-")


def from_settings(settings: Settings, model: str) -> FakeEngine:
    """The factory `GPU_ENGINE_FACTORY` names: latency and the events file come from env vars."""
    events = os.environ.get("FAKE_GPU_EVENTS")
    return FakeEngine(
        latency_s=float(os.environ.get("FAKE_GPU_LATENCY_S", "0")),
        invalid_outputs=int(os.environ.get("FAKE_GPU_INVALID_OUTPUTS", "0")),
        model=settings.gpu_served_model_name or Path(model).name,
        events_file=Path(events) if events else None,
    )
