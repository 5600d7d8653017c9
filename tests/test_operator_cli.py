"""The operator CLI for batches, dead letters and replay, run as a real process against the dev server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from contracts.run import RunRequest, RunResult
from tests.fakes import harness

ROOT = Path(__file__).resolve().parent.parent
STATEMENT = "Given an array of integers, return the indices of two numbers that add up to a target."


async def _cli(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_batch_dlq_and_replay_commands_end_to_end(
    devserver_env: WorkflowEnvironment,
    devserver_target_host: str,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(devserver_env.client, settings)
    cli_env = {
        "TEMPORAL_ADDRESS": devserver_target_host,
        "TASK_QUEUE": task_queue,
        "DATA_DIR": str(tmp_path),
        "MODEL_PROVIDER": "offline",
    }
    items = tmp_path / "items.jsonl"
    lines = [{"title": f"Problem {i}", "statement": STATEMENT} for i in range(4)] + [{"title": "x"}]
    items.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    async with harness.running_worker(client, settings, task_queue):
        code, out, err = await _cli(
            ["batch", "algorithm-explainer", "--items", str(items), "--concurrency", "2", "--json"], cli_env
        )
        summary = json.loads(out)
        assert code == 1, err  # one item failed
        assert (summary["total"], summary["succeeded"], summary["failed"]) == (5, 4, 1)
        letter_id = summary["failures"][0]["dead_letter_id"]

        # the live view: a progress bar, then the summary and failure tables (wide enough not to wrap)
        code, out, _ = await _cli(
            ["batch", "algorithm-explainer", "--items", str(items)], {**cli_env, "COLUMNS": "250"}
        )
        assert code == 1 and "5/5" in out and "succeeded" in out and "dead letter" in out

        code, out, _ = await _cli(["dlq", "list", "--json"], cli_env)
        listed = json.loads(out)
        assert code == 0 and letter_id in [x["id"] for x in listed]
        code, out, _ = await _cli(["dlq", "show", letter_id, "--json"], cli_env)
        assert code == 0 and json.loads(out)["failed_state"] == "VALIDATING"

        run = await client.execute_workflow(
            "AgentRunWorkflow",
            RunRequest(blueprint="algorithm-explainer", input=lines[0], provider="offline"),
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunResult,
        )
        assert run.state == "COMPLETE"
        code, out, err = await _cli(["replay", workflow_id, "--json"], cli_env)
        assert code == 0, err
        assert json.loads(out) == {"workflow_id": workflow_id, "deterministic": True, "failure": None}
