"""Context control: when a step's conversation passes a share of the model's window, older turns
are replaced by a summary (a `summarize` step of its own), keeping the task and the recent turns.

Without it, a tool loop's input grows with every turn and its total cost grows quadratically.
"""

from __future__ import annotations

import json

from contracts.cost import ContextPolicy
from contracts.model import Message, ToolSpec
from policies.budget import estimate_input_tokens

SUMMARY_HEADER = "Summary of earlier turns (older messages were compressed to save context):"
#: Most characters of one message shown to the summarizer.
MAX_CHARS_PER_MESSAGE = 2_000


def window_of(policy: ContextPolicy, model_window: int) -> int:
    """The window compaction measures against (the policy's override, else the model's)."""
    return policy.window_tokens or model_window


def needs_compaction(
    policy: ContextPolicy, model_window: int, system: str, messages: list[Message], tools: list[ToolSpec]
) -> bool:
    """True when the prompt's estimated size has passed `threshold` of the window and there is
    something old enough to compress."""
    if not policy.enabled or split_for_compaction(messages, policy.keep_recent) is None:
        return False
    used = estimate_input_tokens(system, messages, tools)
    return used > policy.threshold * window_of(policy, model_window)


def split_for_compaction(
    messages: list[Message], keep_recent: int
) -> tuple[Message, list[Message], list[Message]] | None:
    """(task message, older turns to summarize, recent turns kept verbatim), or None when there is
    nothing to compress. The recent part starts at an assistant turn, so no tool result is ever
    separated from the call it answers."""
    if len(messages) < 3:
        return None
    # Walk back from the keep line to an assistant turn, so recent turns keep at least one whole
    # call/result pair and never begin with an orphaned tool result.
    start = len(messages) - max(keep_recent, 1)
    while start > 1 and messages[start].role != "assistant":
        start -= 1
    if start <= 1:
        return None
    older = messages[1:start]
    if len(older) < 2:
        return None
    return messages[0], older, messages[start:]


def summary_request(older: list[Message]) -> list[Message]:
    """The summarize step's prompt: the older turns as text, and what to keep."""
    lines = []
    for message in older:
        if message.content:
            lines.append(f"{message.role}: {message.content[:MAX_CHARS_PER_MESSAGE]}")
        for call in message.tool_calls:
            lines.append(
                f"{message.role} called {call.name}({json.dumps(call.arguments)[:MAX_CHARS_PER_MESSAGE]})"
            )
        for result in message.tool_results:
            flag = " (error)" if result.is_error else ""
            lines.append(f"result of {result.name}{flag}: {result.content[:MAX_CHARS_PER_MESSAGE]}")
    return [
        Message(
            role="user",
            content=(
                "Summarize these earlier turns of an agent's work in a few lines: the facts learned, the "
                "actions taken and their outcomes, and anything still open. Reply with the summary only.\n\n"
                + "\n".join(lines)
            ),
        )
    ]


def compacted(task: Message, summary: str, recent: list[Message]) -> list[Message]:
    """The conversation after compaction: the task with the summary folded in, then recent turns."""
    base = task.content.split(f"\n\n{SUMMARY_HEADER}")[0]
    folded = Message(role="user", content=f"{base}\n\n{SUMMARY_HEADER}\n{summary.strip()}")
    return [folded, *recent]
