"""SQLite's writer thread: concurrent writes share transactions, a bad write fails alone, and a
write's awaiter resumes only after its transaction has committed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

from activities.ledger.writer import GroupWriter


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Path, GroupWriter]]:
    """A SQLite file with one table, and a writer over it (closed after the test)."""
    path = tmp_path / "w.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    writer = GroupWriter(engine, name="writer-under-test")
    yield path, writer
    writer.close()
    engine.dispose()


def _insert(k: int):  # type: ignore[no-untyped-def]
    def write(conn: Connection) -> int:
        return conn.execute(text("INSERT OR IGNORE INTO t (k) VALUES (:k)"), {"k": k}).rowcount

    return write


def _committed(path: Path) -> set[int]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(path) as db:
        return {k for (k,) in db.execute("SELECT k FROM t")}


async def test_writes_that_queue_up_share_a_transaction_and_each_gets_its_own_result(
    db: tuple[Path, GroupWriter],
) -> None:
    path, writer = db
    gate = threading.Event()

    def hold(conn: Connection) -> str:
        gate.wait(10)
        return "held"

    # The thread is busy with `hold` while 200 writes queue up behind it.
    first = writer.submit(hold)
    queued = [writer.submit(_insert(k % 150)) for k in range(200)]
    gate.set()
    assert await first == "held"
    results = await asyncio.gather(*queued)
    # 150 distinct keys: the 50 repeats found their row already there, inside the same batch or not.
    assert sum(results) == 150 and results[:150] == [1] * 150 and results[150:] == [0] * 50
    assert _committed(path) == set(range(150))
    assert writer.writes == 201
    assert writer.transactions <= 1 + 200 // 64 + 1, writer.transactions


async def test_a_failing_write_fails_alone_and_its_batch_neighbours_commit(
    db: tuple[Path, GroupWriter],
) -> None:
    path, writer = db
    gate = threading.Event()

    def broken(conn: Connection) -> None:
        conn.execute(text("INSERT INTO nowhere VALUES (1)"))

    blocker = writer.submit(lambda conn: gate.wait(10))
    before, bad, after = writer.submit(_insert(1)), writer.submit(broken), writer.submit(_insert(2))
    gate.set()
    await blocker
    assert await before == 1 and await after == 1
    with pytest.raises(Exception, match="nowhere"):
        await bad
    assert _committed(path) == {1, 2}


async def test_an_awaiter_resumes_only_after_its_write_is_committed(db: tuple[Path, GroupWriter]) -> None:
    path, writer = db
    seen: list[set[int]] = []
    for k in range(20):
        await writer.submit(_insert(k))
        seen.append(_committed(path))
    assert seen == [set(range(k + 1)) for k in range(20)]


async def test_close_runs_what_is_queued_then_stops_the_thread(db: tuple[Path, GroupWriter]) -> None:
    path, writer = db
    futures = [writer.submit(_insert(k)) for k in range(30)]
    await asyncio.to_thread(writer.close)
    assert _committed(path) == set(range(30))
    assert [await f for f in futures] == [1] * 30
    assert not any(t.name == "writer-under-test" for t in threading.enumerate())
