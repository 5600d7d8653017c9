"""`./run demo`: the embedded stack end to end, on the defaults of a fresh clone.

Starts (or finds) the local dev server, starts a worker process, runs every example blueprint
once with its example input, prints the states each run walked, then stops the worker. The dev
server keeps running so the runs stay visible in the UI.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "temporal-dev"))

import devserver  # noqa: E402  (temporal-dev/ is not a package: its name has a dash)
from rich.console import Console  # noqa: E402

from blueprints.catalog import default_catalog  # noqa: E402
from settings import get_settings  # noqa: E402
from starter import _print_result, connect, make_request, start_run  # noqa: E402


async def run_examples(console: Console) -> int:
    client = await connect()
    failures = 0
    for blueprint in default_catalog().all():
        console.rule(f"{blueprint.ref}")
        handle = await start_run(client, make_request(blueprint.name, input_value=blueprint.example_input))
        result = await handle.result()
        _print_result(console, result)
        failures += result.state != "COMPLETE"
    return failures


def main() -> int:
    console = Console()
    settings = get_settings()
    address = devserver.ensure_running(settings)
    found = devserver.status(settings)
    console.print(f"Temporal dev server at [bold]{address}[/]; UI {found.ui_url or '(headless)'}")
    log_path = settings.data_dir / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    try:
        failures = asyncio.run(run_examples(console))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=40)
        except subprocess.TimeoutExpired:
            worker.kill()
    console.rule()
    console.print(f"worker log: {log_path}")
    console.print(
        "The dev server keeps running (UI above). Stop it with: "
        "[bold].venv/bin/python temporal-dev/devserver.py stop[/]"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
