"""Alembic environment for the ledger: runs on a connection handed in by `Ledger.upgrade()`, or
builds its own async engine from settings when invoked by the `alembic` command."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from activities.ledger.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    from activities.ledger.db import create_engine_for, ledger_url
    from settings import get_settings

    engine = create_engine_for(config.get_main_option("sqlalchemy.url") or ledger_url(get_settings()))
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported for the ledger")
connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_with_own_engine())
