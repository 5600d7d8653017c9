"""SQLite's one writer: a thread that commits the ledger's queued writes together.

SQLite takes one writer at a time, so a process writes from one thread. Writes that arrive while
that thread is busy wait in its queue and are committed in one transaction when it is free (group
commit): under load one BEGIN/COMMIT, one wake-up of the thread and one wake-up of each event loop
serve many writes. Each write's awaiter resumes only once its transaction has committed, so an
activity never reports a write that a crash could still lose.

A write is a function of the connection that is safe to run again (the ledger's are idempotent
inserts and updates). If one raises, the batch is rolled back and each of its writes is run again
in a transaction of its own: a bad write fails alone and never takes its neighbours with it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

T = TypeVar("T")
Write = Callable[[Connection], Any]
#: (write, the loop that awaits it, the future to resolve there)
_Queued = tuple[Write, asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
_STOP = None


class GroupWriter:
    """Runs writes on one thread, as many per transaction as have queued up (at most `max_batch`)."""

    def __init__(self, engine: Engine, *, max_batch: int = 64, name: str = "ledger-writer") -> None:
        self._engine = engine
        self._max_batch = max(max_batch, 1)
        self._name = name
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.transactions = 0
        """Transactions committed or attempted (a figure for benchmarks and tests)."""
        self.writes = 0
        """Writes run (a figure for benchmarks and tests)."""

    def submit(self, write: Callable[[Connection], T]) -> asyncio.Future[T]:
        """Queue `write`; the future resolves on the caller's loop once its transaction commits."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._ensure_thread()
        self._queue.put((write, loop, future))
        return future

    def close(self) -> None:
        """Run what is queued, then stop the thread (blocks until it has)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                # A daemon: a process that exits without `close()` loses only writes nobody was
                # told had committed.
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Queued]) -> None:
        self.writes += len(batch)
        self.transactions += 1
        outcomes: list[tuple[bool, Any]]
        try:
            with self._engine.begin() as conn:
                outcomes = [(True, write(conn)) for write, _, _ in batch]
        except Exception as exc:
            if len(batch) == 1:
                outcomes = [(False, exc)]
            else:
                outcomes = [self._alone(write) for write, _, _ in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_, loop, future), (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, results)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass

    def _alone(self, write: Write) -> tuple[bool, Any]:
        self.transactions += 1
        try:
            with self._engine.begin() as conn:
                return True, write(conn)
        except Exception as exc:
            return False, exc


def _resolve(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
