"""CPU per ledger write on SQLite: the ledger's group-commit writer against two older ways.

    PYTHONPATH=. python benchmarks/ledger_writes.py [--writes 2000] [--concurrency 50]

Writes the same model-call rows (each with two state transitions, as `model_turn` writes them)
three ways, side by side on one fresh SQLite file each:
- `Ledger.record_model_call`: on the ledger's writer thread, writes that queued up meanwhile
  sharing one transaction (activities/ledger/writer.py);
- the same statements, one transaction per write on a one-thread executor (the ledger before);
- the same statements run one by one through the async engine (aiosqlite, the ledger before that).
Prints CPU ms and wall ms per write, and the writer's writes per transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import create_async_engine

from activities.ledger import Ledger, ModelCallRecord, schema
from activities.ledger.db import sqlite_pragmas
from contracts.cost import TransitionEvent


def _call(i: int) -> tuple[ModelCallRecord, list[TransitionEvent]]:
    now = datetime.now(UTC)
    events = [
        TransitionEvent(seq=0, source=None, target="INTAKE", at=now, reason="request received"),
        TransitionEvent(seq=1, source="INTAKE", target="VALIDATING", at=now, reason="intake done"),
    ]
    return ModelCallRecord(run_id=f"run-{i}", step_id="plan/1", provider="offline", model="m"), events


async def _timed(writes: int, concurrency: int, write: Any) -> dict[str, float]:
    await write(-1)  # warm: connections, compiled statements
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, writes, concurrency):
        await asyncio.gather(*(write(i) for i in range(start, min(writes, start + concurrency))))
    return {
        "cpu_ms_per_write": round((time.process_time() - cpu) / writes * 1000, 3),
        "wall_ms_per_write": round((time.perf_counter() - wall) / writes * 1000, 3),
    }


async def bench(writes: int, concurrency: int) -> dict[str, Any]:
    """The three ways, one fresh database each; returns their figures and the ratio of CPU per write."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(f"sqlite+aiosqlite:///{Path(tmp) / 'writer.sqlite3'}")
        await ledger.upgrade()

        async def via_writer(i: int) -> None:
            call, events = _call(i)
            await ledger.record_model_call(call, events)

        writer = await _timed(writes, concurrency, via_writer)
        assert ledger._writer is not None
        per_transaction = ledger._writer.writes / max(ledger._writer.transactions, 1)
        await ledger.close()

        calls = sqlite.insert(schema.model_calls).on_conflict_do_nothing()
        transitions = sqlite.insert(schema.state_transitions).on_conflict_do_nothing()

        def rows_of(i: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            call, events = _call(i)
            row = call.model_dump(exclude={"usage"})
            row.update(input_tokens=0, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0)
            return row, [{"run_id": call.run_id, **e.model_dump()} for e in events]

        single = Ledger(f"sqlite+aiosqlite:///{Path(tmp) / 'single.sqlite3'}")
        await single.upgrade()
        await single.close()
        engine = create_engine(f"sqlite:///{Path(tmp) / 'single.sqlite3'}")
        thread = ThreadPoolExecutor(max_workers=1)

        async def one_transaction_each(i: int) -> None:
            row, rows = rows_of(i)

            def run() -> None:
                with engine.begin() as conn:
                    conn.execute(calls, row)
                    conn.execute(transitions, rows)

            await asyncio.get_running_loop().run_in_executor(thread, run)

        one_each = await _timed(writes, concurrency, one_transaction_each)
        thread.shutdown(wait=True)
        engine.dispose()

        url = f"sqlite+aiosqlite:///{Path(tmp) / 'async.sqlite3'}"
        migrated = Ledger(url)
        await migrated.upgrade()
        await migrated.close()
        # Pooled, as the ledger's async engine was when it wrote (it pools nothing now).
        pooled = create_async_engine(url)
        sqlite_pragmas(pooled.sync_engine)
        lock = asyncio.Lock()  # one SQLite writer at a time, as the ledger queued them

        async def via_async_driver(i: int) -> None:
            row, rows = rows_of(i)
            async with lock, pooled.begin() as conn:
                await conn.execute(calls, row)
                await conn.execute(transitions, rows)

        statement_by_statement = await _timed(writes, concurrency, via_async_driver)
        await pooled.dispose()
    return {
        "writes": writes,
        "concurrency": concurrency,
        "group_commit_writer": {**writer, "writes_per_transaction": round(per_transaction, 1)},
        "one_transaction_per_write": one_each,
        "async_driver": statement_by_statement,
        "cpu_ratio_to_one_transaction_per_write": round(
            writer["cpu_ms_per_write"] / one_each["cpu_ms_per_write"], 3
        ),
        "cpu_ratio_to_async_driver": round(
            writer["cpu_ms_per_write"] / statement_by_statement["cpu_ms_per_write"], 3
        ),
    }


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args.writes, args.concurrency)), indent=1))


if __name__ == "__main__":
    main()
