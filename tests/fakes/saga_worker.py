"""A worker process for crash tests: test tools, scripted model, on a given server and task queue.

python tests/fakes/saga_worker.py --target HOST:PORT --task-queue Q --data-dir DIR
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from temporalio.client import Client

from tests.fakes import harness


async def main() -> None:
    """Serve until SIGTERM (the test usually SIGKILLs it instead)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    settings = harness.settings_for(Path(args.data_dir))
    raw = await Client.connect(args.target)
    client = harness.codec_client(raw, settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with harness.running_worker(client, settings, args.task_queue):
        print("worker ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
