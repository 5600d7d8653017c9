"""Cost reports over the ledger: spend by run, blueprint, model and day; outcomes per blueprint
(success rate, cost per successful output, budget stops). What `starter.py costs` prints."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import case, func, select

from activities.ledger import schema
from activities.ledger.db import Ledger

Dimension = Literal["run", "blueprint", "model", "day"]
DIMENSIONS: tuple[Dimension, ...] = ("run", "blueprint", "model", "day")


async def spend_by(ledger: Ledger, dimension: Dimension, limit: int = 50) -> list[dict[str, Any]]:
    """Model-call spend grouped by one dimension (every attempt that billed included), dearest first."""
    calls = schema.model_calls
    runs = schema.runs
    key: Any
    source: Any
    if dimension == "run":
        key = calls.c.run_id
        source = calls
    elif dimension == "model":
        key = calls.c.provider + "/" + calls.c.model
        source = calls
    elif dimension == "day":
        key = func.date(calls.c.created_at)
        source = calls
    else:
        key = func.coalesce(runs.c.blueprint, "(running)")
        source = calls.outerjoin(runs, runs.c.run_id == calls.c.run_id)
    query = (
        select(
            key.label("key"),
            func.count().label("calls"),
            func.sum(case((calls.c.status == "failed", 1), else_=0)).label("failed_calls"),
            func.sum(calls.c.input_tokens).label("input_tokens"),
            func.sum(calls.c.output_tokens).label("output_tokens"),
            func.sum(calls.c.cache_read_tokens).label("cache_read_tokens"),
            func.sum(calls.c.cost_usd).label("cost_usd"),
        )
        .select_from(source)
        .group_by(key)
        .order_by(func.sum(calls.c.cost_usd).desc(), key)
        .limit(limit)
    )
    async with ledger.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        {
            "key": str(r.key),
            "calls": int(r.calls),
            "failed_calls": int(r.failed_calls or 0),
            "input_tokens": int(r.input_tokens or 0),
            "output_tokens": int(r.output_tokens or 0),
            "cache_read_tokens": int(r.cache_read_tokens or 0),
            "cost_usd": round(float(r.cost_usd or 0.0), 8),
        }
        for r in rows
    ]


async def outcomes(ledger: Ledger) -> list[dict[str, Any]]:
    """Per blueprint (and `*` for all): ended runs, success rate, total cost, cost per successful
    output (all spend, failed runs included, over the outputs that passed), budget alerts and stops."""
    runs = schema.runs
    query = select(
        runs.c.blueprint,
        func.count().label("runs"),
        func.sum(case((runs.c.success.is_(True), 1), else_=0)).label("successes"),
        func.sum(runs.c.cost_usd).label("cost_usd"),
        func.sum(case((runs.c.budget_alerted.is_(True), 1), else_=0)).label("budget_alerts"),
        func.sum(case((runs.c.budget_stopped.is_(True), 1), else_=0)).label("budget_stops"),
    ).group_by(runs.c.blueprint)
    async with ledger.engine.connect() as conn:
        rows = [r._asdict() for r in (await conn.execute(query)).all()]
    if rows:
        total: dict[str, Any] = {"blueprint": "*"}
        for field in ("runs", "successes", "cost_usd", "budget_alerts", "budget_stops"):
            total[field] = sum(r[field] or 0 for r in rows)
        rows.append(total)
    out = []
    for r in sorted(rows, key=lambda r: (r["blueprint"] == "*", r["blueprint"])):
        successes = int(r["successes"] or 0)
        cost = float(r["cost_usd"] or 0.0)
        out.append(
            {
                "blueprint": r["blueprint"],
                "runs": int(r["runs"]),
                "successes": successes,
                "success_rate": round(successes / r["runs"], 4) if r["runs"] else None,
                "cost_usd": round(cost, 8),
                "cost_per_success_usd": round(cost / successes, 8) if successes else None,
                "budget_alerts": int(r["budget_alerts"] or 0),
                "budget_stops": int(r["budget_stops"] or 0),
            }
        )
    return out
