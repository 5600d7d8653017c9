"""The ledger: where every run, transition, model call, tool call, escalation and dead letter is
written, on a SQLite file by default or PostgreSQL when `DATABASE_URL` says so.

Writes are idempotent (INSERT ... ON CONFLICT DO NOTHING on the table's natural key), so an
activity that runs twice never counts twice. Other parts of the engine write through the
`record_*` methods only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from activities.ledger import schema
from activities.ledger.records import (
    DeadLetterRecord,
    DecisionRecord,
    EscalationRecord,
    ModelCallRecord,
    RunEndRecord,
    RunStartRecord,
    ToolCallRecord,
)
from activities.ledger.writer import GroupWriter
from contracts.cost import LedgerEvents, TransitionEvent
from contracts.model import Usage
from settings import Settings

Events = LedgerEvents | Iterable[TransitionEvent]
T = TypeVar("T")
#: Audit actions that are answers to an escalation (a person's decision or the policy's default).
DECISION_ACTIONS = frozenset({"approve", "reject", "revise", "timeout"})
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


def ledger_url(settings: Settings) -> str:
    """The async SQLAlchemy URL: `database_url` (plain `postgresql://` gets asyncpg), else a
    SQLite file under `data_dir`."""
    url = settings.database_url
    if not url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{settings.data_dir / 'ledger.sqlite3'}"
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url[len(plain) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def create_engine_for(url: str) -> AsyncEngine:
    """An async engine; SQLite files get WAL and a busy timeout so concurrent activities queue
    for the write lock instead of failing."""
    # A local SQLite file has no connection to lose: pinging it before every write only costs a
    # round trip through aiosqlite's thread. Network databases keep the ping. SQLite's async engine
    # serves migrations and reads only (writes go through the sync engine on the writer thread),
    # so it pools nothing: an aiosqlite connection left in a pool keeps a thread, and if it is
    # garbage-collected during a workflow activation its close lands on the workflow's loop.
    sqlite_file = url.startswith("sqlite")
    if sqlite_file:
        engine = create_async_engine(url, poolclass=NullPool)
    else:
        engine = create_async_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        sqlite_pragmas(engine.sync_engine)
    return engine


def sqlite_pragmas(engine: Engine) -> None:
    """WAL, normal sync and a busy timeout on every new connection of `engine`."""

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


#: Databases this process has already migrated, and the lock that serializes each one's upgrade.
_MIGRATED_URLS: set[str] = set()
_MIGRATE_LOCKS: dict[str, asyncio.Lock] = {}


class Ledger:
    """The write API (and the few reads the engine needs) over one database."""

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        self.url = url
        self.engine = create_engine_for(url)
        # A ledger nobody migrated (a test worker, a script) upgrades itself before its first use.
        self._auto_migrate = auto_migrate
        # Built once per table: a statement without inline values stays in SQLAlchemy's compiled cache.
        self._insert_ignore_statements: dict[str, Any] = {}
        # SQLite has one writer at a time, so this process writes from one thread, each write a
        # function run there synchronously inside a transaction: one hand-off from the event loop
        # per write instead of one per statement, and no transaction held open across awaits (on
        # a busy loop those made our own connections wait on each other until "database is
        # locked"). Writes that queue up meanwhile share one transaction (writer.py). Measured in
        # `benchmarks/ledger_writes.py`. Reads stay on the async engine; WAL lets them run beside it.
        self._writer: GroupWriter | None = None
        self._sync_engine: Engine | None = None
        if self.dialect == "sqlite":
            self._sync_engine = create_engine(self.engine.url.set(drivername="sqlite"))
            sqlite_pragmas(self._sync_engine)
            self._writer = GroupWriter(self._sync_engine)

    @classmethod
    def from_settings(cls, settings: Settings) -> Ledger:
        """The ledger the settings point at."""
        return cls(ledger_url(settings))

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    async def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations (workers call this at start; it is a no-op when current)."""
        from alembic import command
        from alembic.config import Config

        def _upgrade(connection: Any) -> None:
            config = Config(str(ALEMBIC_INI))
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)
        _MIGRATED_URLS.add(self.url)

    async def _ready(self) -> None:
        if self.url in _MIGRATED_URLS or not self._auto_migrate:
            return
        # One upgrade per database per process, whichever Ledger instance gets there first: two
        # concurrent upgrades of a fresh SQLite file collide ("table already exists") and leave it
        # unstamped.
        async with _MIGRATE_LOCKS.setdefault(self.url, asyncio.Lock()):
            if self.url not in _MIGRATED_URLS:
                await self.upgrade()

    async def _transact(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction: on the writer thread for SQLite (sharing the
        transaction with other queued writes), through the async connection (`run_sync`) for
        PostgreSQL. `work` may run twice (a batch that failed is retried write by write)."""
        await self._ready()
        if self._writer is None:
            async with self.engine.begin() as conn:
                return await conn.run_sync(work)
        return await self._writer.submit(work)

    async def close(self) -> None:
        """Dispose of the connection pools and stop the writer thread."""
        await self.engine.dispose()
        if self._writer is not None and self._sync_engine is not None:
            self._writer.close()
            self._sync_engine.dispose()

    # ------------------------------------------------------------------------------ writes
    async def record_run_start(self, run: RunStartRecord, events: Events = ()) -> None:
        """A run's first row (kept if it exists) and any transitions riding along."""
        row = run.model_dump()
        row["state"] = "VALIDATING"
        rows = self._event_rows(run.run_id, events)

        def work(conn: Connection) -> None:
            self._insert_ignore(conn, schema.runs, [row])
            self._insert_events(conn, rows)

        await self._transact(work)

    async def record_transitions(self, run_id: str, events: Events) -> None:
        """State transitions (unique by run and sequence number)."""
        rows = self._event_rows(run_id, events)
        await self._transact(lambda conn: self._insert_events(conn, rows))

    async def record_model_call(self, call: ModelCallRecord, events: Events = ()) -> bool:
        """One attempt of a model call (unique by run, step, attempt). Returns False when it was
        already recorded (a retried activity): the caller must not count it again."""
        row = call.model_dump(exclude={"usage"})
        row.update(
            input_tokens=call.usage.input_tokens,
            output_tokens=call.usage.output_tokens,
            cache_read_tokens=call.usage.cache_read_tokens,
            cache_write_tokens=call.usage.cache_write_tokens,
        )
        rows = self._event_rows(call.run_id, events)

        def work(conn: Connection) -> bool:
            inserted = self._insert_ignore(conn, schema.model_calls, [row])
            self._insert_events(conn, rows)
            return inserted > 0

        return await self._transact(work)

    async def record_tool_call(self, call: ToolCallRecord, events: Events = ()) -> bool:
        """One tool call (unique by run and step); False when already recorded."""
        row = call.model_dump()
        rows = self._event_rows(call.run_id, events)

        def work(conn: Connection) -> bool:
            inserted = self._insert_ignore(conn, schema.tool_calls, [row])
            self._insert_events(conn, rows)
            return inserted > 0

        return await self._transact(work)

    async def record_run_end(self, end: RunEndRecord, events: Events = ()) -> None:
        """The run's outcome and totals (the same values on a retry, so an update is idempotent)."""
        row = end.model_dump()
        rows = self._event_rows(end.run_id, events)
        statement = self._run_end_statement(tuple(row))

        def work(conn: Connection) -> None:
            conn.execute(statement, row)
            self._insert_events(conn, rows)

        await self._transact(work)

    async def record_escalation(self, escalation: EscalationRecord) -> bool:
        """A run asked a human; False when this escalation id was already recorded."""
        row = escalation.model_dump()
        return await self._transact(lambda conn: self._insert_ignore(conn, schema.escalations, [row]) > 0)

    async def record_decision(self, decision: DecisionRecord) -> bool:
        """The answer to an escalation; False when this decision id was already recorded."""
        row = decision.model_dump()
        return await self._transact(lambda conn: self._insert_ignore(conn, schema.decisions, [row]) > 0)

    async def record_dead_letter(self, letter: DeadLetterRecord) -> bool:
        """A dead letter; False when this id was already recorded."""
        row = letter.model_dump()
        return await self._transact(lambda conn: self._insert_ignore(conn, schema.dead_letters, [row]) > 0)

    async def mark_redriven(self, dead_letter_id: str, redriven_by: str) -> bool:
        """Link a dead letter to the run that redrove it; False when it does not exist or was
        already redriven by another run."""
        table = schema.dead_letters
        statement = (
            update(table)
            .where(table.c.id == dead_letter_id)
            .where((table.c.redriven_by.is_(None)) | (table.c.redriven_by == redriven_by))
            .values(redriven_by=redriven_by)
        )
        return await self._transact(lambda conn: (conn.execute(statement).rowcount or 0) > 0)

    # ------------------------------------------------------------------------------- reads
    async def failed_attempts_spend(
        self, run_id: str, step_id: str, before_attempt: int | None = None
    ) -> tuple[Usage, float, int]:
        """(usage, USD, count) of the failed attempts of one call that billed tokens."""
        await self._ready()
        table = schema.model_calls
        query = select(
            func.coalesce(func.sum(table.c.input_tokens), 0),
            func.coalesce(func.sum(table.c.output_tokens), 0),
            func.coalesce(func.sum(table.c.cache_read_tokens), 0),
            func.coalesce(func.sum(table.c.cache_write_tokens), 0),
            func.coalesce(func.sum(table.c.cost_usd), 0.0),
            func.count(),
        ).where(table.c.run_id == run_id, table.c.step_id == step_id, table.c.status == "failed")
        if before_attempt is not None:
            query = query.where(table.c.attempt < before_attempt)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).one()
        usage = Usage(
            input_tokens=row[0], output_tokens=row[1], cache_read_tokens=row[2], cache_write_tokens=row[3]
        )
        return usage, float(row[4]), int(row[5])

    async def run_spend(self, run_id: str) -> tuple[int, float]:
        """(tokens, USD) the ledger holds for a run, every attempt included."""
        await self._ready()
        table = schema.model_calls
        query = select(
            func.coalesce(func.sum(table.c.input_tokens + table.c.output_tokens), 0),
            func.coalesce(func.sum(table.c.cost_usd), 0.0),
        ).where(table.c.run_id == run_id)
        async with self.engine.connect() as conn:
            tokens, usd = (await conn.execute(query)).one()
        return int(tokens), float(usd)

    async def rows(self, table: Table, **where: Any) -> list[dict[str, Any]]:
        """Rows of a table matching equality filters (tests and the CLI read with this)."""
        await self._ready()
        query = select(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]

    # ----------------------------------------------------------------------------- helpers
    @staticmethod
    def _event_rows(run_id: str, events: Events) -> dict[str, list[dict[str, Any]]]:
        """Rows for transitions, and escalations/decisions from the run's audit trail, keyed so that
        the same event carried by several activities is stored once (built before the transaction)."""
        if not isinstance(events, LedgerEvents):
            events = LedgerEvents(transitions=list(events))
        transitions = [{"run_id": run_id, **t.model_dump()} for t in events.transitions]
        escalations, decisions = [], []
        for entry in events.audit:
            if entry.action == "escalated" and entry.escalation_id:
                escalations.append(
                    EscalationRecord(
                        escalation_id=f"{run_id}/{entry.escalation_id}",
                        run_id=run_id,
                        state=entry.escalated_from or "",
                        reason=entry.reason,
                        policy=str(entry.details.get("kind", "")),
                        details=entry.details,
                        created_at=entry.at,
                    ).model_dump()
                )
            elif entry.action in DECISION_ACTIONS and entry.outcome == "applied" and entry.escalation_id:
                decisions.append(
                    DecisionRecord(
                        decision_id=f"{run_id}/audit-{entry.seq}",
                        escalation_id=f"{run_id}/{entry.escalation_id}",
                        run_id=run_id,
                        decision=entry.action,
                        actor=entry.actor,
                        comment=entry.reason,
                        created_at=entry.at,
                    ).model_dump()
                )
        return {"state_transitions": transitions, "escalations": escalations, "decisions": decisions}

    def _insert_events(self, conn: Connection, rows: dict[str, list[dict[str, Any]]]) -> None:
        for name in ("state_transitions", "escalations", "decisions"):
            if rows[name]:
                self._insert_ignore(conn, schema.metadata.tables[name], rows[name])

    def _run_end_statement(self, columns: tuple[str, ...]) -> Any:
        """INSERT the run's row, or UPDATE every given column of the existing one: one statement
        (built once, its values bound per call, so it stays in SQLAlchemy's compiled cache)."""
        key = f"runs-end:{','.join(columns)}"
        statement = self._insert_ignore_statements.get(key)
        if statement is None:
            insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
            base = insert(schema.runs)
            statement = self._insert_ignore_statements[key] = base.on_conflict_do_update(
                index_elements=[schema.runs.c.run_id],
                set_={c: base.excluded[c] for c in columns if c != "run_id"},
            )
        return statement

    def _insert_ignore(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
        """INSERT ... ON CONFLICT DO NOTHING on either dialect; for one row, returns whether it was
        inserted (1 or 0). Several rows go as one executemany of the same cached statement (no
        count: no caller needs one)."""
        statement = self._insert_ignore_statements.get(table.name)
        if statement is None:
            insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
            statement = self._insert_ignore_statements[table.name] = insert(table).on_conflict_do_nothing()
        if len(rows) == 1:
            return conn.execute(statement, rows[0]).rowcount or 0
        conn.execute(statement, list(rows))
        return 0
