"""The idempotency journal: a side-effecting tool call with a given key acts once, then replays.

Layout, per workspace, beside the workspace and never inside it (the model cannot see or touch it):

    <workspace_root>/.journal/<workspace>/
        done/<sha256(key)>.json    the recorded result of a completed call (written atomically)
        executions.jsonl           one fsync-ed line each time an effect is entered
        locks/<sha256(key)>.lock   flock: one execution per key at a time, across processes

Guarantee: once `run_once` has returned for a key, later calls with that key replay the recorded
result and never run the effect again. The at-least-once window: if the process dies (SIGKILL,
power loss) after the effect started but before `done/<key>.json` was renamed into place, the key
is not recorded as done and a retry runs the effect again. Effects must therefore be idempotent
on their own; the file tools are (a write is temp file + atomic rename of the same content, a
delete of an absent file succeeds). `executions.jsonl` records every entry into an effect, so a
crash test can count exactly how often each key's effect ran.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.tools.registry import ToolError
from activities.tools.sandbox import JOURNAL_DIRNAME, validate_workspace_name

#: Longest idempotency key accepted (run id + step id fit easily).
MAX_KEY_CHARS = 1024

_EXECUTIONS = "executions.jsonl"


@dataclass(frozen=True)
class Outcome:
    """The result of a journaled call, and whether it came from the journal (`replayed`)."""

    result: Any
    replayed: bool


def journal_dir(workspace_root: Path, workspace: str) -> Path:
    """The journal folder of one workspace: `<workspace_root>/.journal/<workspace>`."""
    return Path(workspace_root) / JOURNAL_DIRNAME / validate_workspace_name(workspace)


def request_fingerprint(tool: str, arguments: Any) -> str:
    """A stable hash of what was asked, so a reused key with different arguments is caught."""
    canonical = json.dumps({"tool": tool, "arguments": arguments}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Journal:
    """Records side-effect results by idempotency key in one folder (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The recorded entry for `key` (`key`, `request`, `result`, `recorded_at`), or None."""
        path = self._done_path(_checked_key(key))
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            entry = json.loads(raw)
        except ValueError:
            raise ToolError(
                "journal_corrupt", "the idempotency journal entry is unreadable", key=key
            ) from None
        if not isinstance(entry, dict) or entry.get("key") != key:
            raise ToolError(
                "journal_corrupt", "the idempotency journal entry does not match its key", key=key
            )
        return entry

    def run_once(self, key: str, request: str, effect: Callable[[], Any]) -> Outcome:
        """Return the recorded result for `key`, or run `effect()` (JSON-able result), record it
        durably, and return it. `request` is a fingerprint of the call; reusing a key for a
        different request is refused with `idempotency_conflict` instead of replaying a wrong result."""
        key = _checked_key(key)
        for sub in ("done", "locks"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self._lock_path(key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # Serializes a retry that overlaps a still-running first attempt (heartbeat timeout).
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            entry = self.lookup(key)
            if entry is not None:
                if entry.get("request") != request:
                    raise ToolError(
                        "idempotency_conflict",
                        "this idempotency key was already used for a different call",
                        key=key,
                    )
                return Outcome(entry.get("result"), replayed=True)
            self._log_execution(key, request)
            result = effect()
            # A crash before the rename below leaves the key not done: the at-least-once window.
            self._record(key, {"key": key, "request": request, "result": result, "recorded_at": time.time()})
            return Outcome(result, replayed=False)
        finally:
            os.close(lock_fd)  # closing the descriptor releases the flock

    async def arun_once(self, key: str, request: str, effect: Callable[[], Any]) -> Outcome:
        """`run_once` in a worker thread, so file I/O and fsync never block the event loop."""
        return await asyncio.to_thread(self.run_once, key, request, effect)

    def executions(self) -> dict[str, int]:
        """How many times each key's effect was entered, from `executions.jsonl`."""
        counts: Counter[str] = Counter()
        try:
            lines = (self.directory / _EXECUTIONS).read_bytes().splitlines()
        except FileNotFoundError:
            return {}
        for line in lines:
            try:
                counts[json.loads(line)["key"]] += 1
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-append
        return dict(counts)

    def _log_execution(self, key: str, request: str) -> None:
        line = json.dumps({"key": key, "request": request, "pid": os.getpid(), "at": time.time()}) + "\n"
        fd = os.open(
            self.directory / _EXECUTIONS, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _record(self, key: str, entry: dict[str, Any]) -> None:
        done = self.directory / "done"
        final = self._done_path(key)
        temp = done / f".{final.name}.{os.getpid()}.tmp"
        data = json.dumps(entry, sort_keys=True).encode("utf-8")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
        dir_fd = os.open(done, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a power cut
        finally:
            os.close(dir_fd)

    def _done_path(self, key: str) -> Path:
        return self.directory / "done" / f"{_key_hash(key)}.json"

    def _lock_path(self, key: str) -> Path:
        return self.directory / "locks" / f"{_key_hash(key)}.lock"


def executions(workspace_root: Path, workspace: str | None = None) -> dict[str, int]:
    """Effect executions per key in one workspace's journal, or summed over all workspaces."""
    base = Path(workspace_root) / JOURNAL_DIRNAME
    if workspace is not None:
        return Journal(journal_dir(workspace_root, workspace)).executions()
    total: Counter[str] = Counter()
    if base.is_dir():
        for child in sorted(base.iterdir()):
            if child.is_dir():
                total.update(Journal(child).executions())
    return dict(total)


def effect_count(workspace_root: Path, key: str, workspace: str | None = None) -> int:
    """How many times the effect for `key` actually ran (0 if never)."""
    return executions(workspace_root, workspace).get(key, 0)


def _checked_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ToolError("missing_idempotency_key", "a side-effecting tool call needs an idempotency key")
    if len(key) > MAX_KEY_CHARS:
        raise ToolError(
            "invalid_idempotency_key", f"idempotency key is longer than {MAX_KEY_CHARS} characters"
        )
    return key


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
