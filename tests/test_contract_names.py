"""Workflow, activity, signal and query names are public contract: changing one breaks running
workflows and every caller. This test pins them; change it only on purpose."""

from __future__ import annotations

from temporalio import activity, workflow

from activities.bundle import build_activities
from activities.models.base import ProviderRegistry
from activities.tools.registry import ToolRegistry
from blueprints.catalog import default_catalog
from settings import Settings
from worker import WORKFLOWS
from workflows.activity_stubs import ActivityNames

PINNED_WORKFLOWS = {
    "AgentRunWorkflow": {"queries": {"status"}, "signals": {"approve", "reject", "revise"}},
    "FactoryLineWorkflow": {"queries": {"progress"}, "signals": set()},
}
PINNED_ACTIVITIES = {
    "validate_request",
    "model_turn",
    "call_tool",
    "review_output",
    "review_and_close",
    "record_run_end",
    "compensate_tool",
    "record_dead_letter",
    "load_batch_items",
    "stash_batch_items",
}


def test_workflow_names_queries_and_signals_are_pinned() -> None:
    found = {}
    for cls in WORKFLOWS:
        defn = workflow._Definition.must_from_class(cls)
        found[defn.name] = {
            "queries": {q for q in defn.queries if q is not None and not q.startswith("__")},
            "signals": {s for s in defn.signals if s is not None and not s.startswith("__")},
        }
    assert found == PINNED_WORKFLOWS


def test_activity_names_are_pinned_on_both_sides(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    hosted = build_activities(
        settings, catalog=default_catalog(), tools=ToolRegistry(), providers=ProviderRegistry()
    )
    names = {activity._Definition.must_from_callable(fn).name for fn in hosted}
    assert names == PINNED_ACTIVITIES
    # the names workflows schedule are the names workers host
    called = {v for k, v in vars(ActivityNames).items() if not k.startswith("_")}
    assert called == PINNED_ACTIVITIES
