"""Plan validation: schema, only allowed tools, task count under a cap, dependencies that resolve."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from contracts.plan import Plan


def validate_plan(raw: Any, allowed_tools: list[str], max_tasks: int) -> tuple[Plan | None, list[str]]:
    """Return the plan and no problems, or None and every problem found (fed back to the model)."""
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as exc:
        return None, [f"{'.'.join(str(p) for p in e['loc']) or '$'}: {e['msg']}" for e in exc.errors()]
    problems: list[str] = []
    if not plan.tasks:
        problems.append("the plan has no tasks")
    if len(plan.tasks) > max_tasks:
        problems.append(f"the plan has {len(plan.tasks)} tasks; at most {max_tasks} are allowed")
    ids = [t.id for t in plan.tasks]
    if len(set(ids)) != len(ids):
        problems.append("task ids must be unique")
    allowed = set(allowed_tools)
    for task in plan.tasks:
        for tool in task.allowed_tools:
            if tool not in allowed:
                problems.append(f"task {task.id}: tool {tool!r} is not allowed (allowed: {sorted(allowed)})")
        for dep in task.depends_on:
            if dep not in ids:
                problems.append(f"task {task.id}: depends on unknown task {dep!r}")
            elif dep == task.id:
                problems.append(f"task {task.id}: depends on itself")
    if not problems and execution_waves(plan) is None:
        problems.append("task dependencies form a cycle")
    return (None, problems) if problems else (plan, [])


def execution_waves(plan: Plan) -> list[list[str]] | None:
    """Group task ids into waves whose tasks are independent of each other (None on a cycle)."""
    remaining = {t.id: set(t.depends_on) for t in plan.tasks}
    order = [t.id for t in plan.tasks]
    done: set[str] = set()
    waves: list[list[str]] = []
    while remaining:
        wave = [tid for tid in order if tid in remaining and remaining[tid] <= done]
        if not wave:
            return None
        waves.append(wave)
        for tid in wave:
            done.add(tid)
            del remaining[tid]
    return waves
