"""Routing simulation: 1,000 items, three model tiers, three strategies; success rate and cost per
successful output.

The tiered offline model succeeds per tier at the given rates, deterministically per (seed, item,
model, attempt). Each call bills a fixed 1,000 input tokens, and the tiers are priced (USD per
million tokens) so one call costs: small $0.005, mid $0.03, frontier $0.21. Strategies walk
`policies.routing` chains and price every call, successful or not, with `policies.pricing`:

- frontier-only: one call on the frontier model;
- mid with retries: up to `--mid-attempts` calls on the mid model;
- routed: small → mid → frontier, one call each, stopping at the first success.

    PYTHONPATH=. python benchmarks/routing_sim.py [--items 1000] [--seed 7] [--json]

Target: routed reaches >= 99% success at <= $0.04 per successful output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from activities.models.tiered import TieredOfflineModel
from contracts.cost import ModelPrice, ModelTarget
from contracts.model import Message, ModelTurnInput
from policies.pricing import cost_of
from policies.routing import CATCH_ALL, chain_for

SMALL, MID, FRONTIER = "sim-small", "sim-mid", "sim-frontier"
PRICES = {  # 1,000 input tokens a call → $0.005, $0.03, $0.21 a call
    SMALL: ModelPrice(input=5.0, output=0.0),
    MID: ModelPrice(input=30.0, output=0.0),
    FRONTIER: ModelPrice(input=210.0, output=0.0),
}


def target(model: str) -> ModelTarget:
    return ModelTarget(provider="tiered", model=model)


STRATEGIES: dict[str, tuple[dict[str, list[ModelTarget]], int]] = {
    # name: (routes, attempts per target)
    "frontier-only": ({CATCH_ALL: [target(FRONTIER)]}, 1),
    "mid with retries": ({CATCH_ALL: [target(MID)]}, 3),
    "routed": (
        {"classify": [target(SMALL), target(MID), target(FRONTIER)], CATCH_ALL: [target(FRONTIER)]},
        1,
    ),
}


async def simulate(
    model: TieredOfflineModel, routes: dict[str, list[ModelTarget]], attempts: int, items: int
) -> dict[str, Any]:
    """Run every item through the route; count successes, calls and dollars."""
    successes = calls = 0
    cost = 0.0
    calls_by_model: dict[str, int] = {}
    for index in range(items):
        item_id = f"item-{index:05d}"
        done = False
        for tgt in chain_for(routes, "classify"):
            for attempt in range(1, attempts + 1):
                result = await model.complete(
                    ModelTurnInput(
                        run_id="routing-sim",
                        step_id=f"{item_id}/{tgt.model}/{attempt}",
                        step_kind="classify",
                        provider=tgt.provider,
                        model=tgt.model,
                        messages=[Message(role="user", content=f"classify {item_id}")],
                        context={"item_id": item_id, "attempt": attempt},
                    )
                )
                calls += 1
                calls_by_model[tgt.model] = calls_by_model.get(tgt.model, 0) + 1
                cost += cost_of(PRICES[tgt.model], result.usage)  # failed calls cost the same
                if result.text == "ok":
                    done = True
                    break
            if done:
                break
        successes += done
    return {
        "items": items,
        "successes": successes,
        "success_rate": round(successes / items, 4),
        "calls": calls,
        "calls_by_model": calls_by_model,
        "cost_usd": round(cost, 4),
        "cost_per_item_usd": round(cost / items, 5),
        "cost_per_success_usd": round(cost / successes, 5) if successes else None,
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--small-rate", type=float, default=0.85)
    parser.add_argument("--mid-rate", type=float, default=0.60)
    parser.add_argument("--frontier-rate", type=float, default=0.995)
    parser.add_argument("--mid-attempts", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    model = TieredOfflineModel(
        {SMALL: args.small_rate, MID: args.mid_rate, FRONTIER: args.frontier_rate}, seed=args.seed
    )
    report: dict[str, Any] = {"seed": args.seed, "rates": model.success_rates, "strategies": {}}
    for name, (routes, attempts) in STRATEGIES.items():
        if name == "mid with retries":
            attempts = args.mid_attempts
        report["strategies"][name] = await simulate(model, routes, attempts, args.items)
    routed = report["strategies"]["routed"]
    report["target_met"] = routed["success_rate"] >= 0.99 and (routed["cost_per_success_usd"] or 1e9) <= 0.04
    if args.json:
        print(json.dumps(report))
    else:
        rates = ", ".join(f"{m} {r:.1%}" for m, r in model.success_rates.items())
        print(f"{args.items} items, seed {args.seed}; success rates: {rates}")
        print(f"{'strategy':<18} {'success':>8} {'calls':>6} {'USD':>9} {'USD/success':>12}")
        for name, row in report["strategies"].items():
            print(
                f"{name:<18} {row['success_rate']:>8.1%} {row['calls']:>6} {row['cost_usd']:>9.2f}"
                f" {row['cost_per_success_usd']:>12.4f}"
            )
        print("target (routed >= 99% at <= $0.04 per success):", "met" if report["target_met"] else "NOT met")
    return 0 if report["target_met"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
