"""Several accounts served by one worker process: a prototype `tests.bench.accounts` measures.

Each account is a whole `worker.main.BrowserWorker` (its browser, display, heartbeat, queues and
Redis connections), as a worker process runs one; here they share one Python process and its
event loop. Settings come from LMB_* as for `lmarena-bridge worker`; LMB_WORKER_ID is ignored.

    python -m tests.bench.one_process worker-1 worker-2 worker-3
"""

from __future__ import annotations

import asyncio
import signal
import sys

from shared import logs
from shared.settings import Settings
from worker.main import BrowserWorker


async def serve(worker_ids: list[str]) -> None:
    settings = Settings()
    logs.configure(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await asyncio.gather(*(BrowserWorker(settings, id).serve(stopping) for id in worker_ids))


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1:]))
