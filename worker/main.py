"""One browser worker from start to stop: `run(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import Iterator

from arq.connections import ArqRedis, create_pool

from shared import keys, queue
from shared.settings import Settings
from shared.workers import WorkerState
from worker import catalog
from worker.completion import Completion
from worker.heartbeat import Heartbeat
from worker.queue_worker import QueueWorker, SlotGroup
from worker.session import ArenaSession
from worker.state import StateMachine

logger = logging.getLogger(__name__)

#: How often the catalog is read off the page again.
CATALOG_REFRESH_S = 300.0
#: Longest wait for the first reCAPTCHA tokens before serving without them.
TOKEN_WARM_UP_S = 5.0
#: arq's own job timeout is a backstop behind the worker's, which reports the timeout to the client.
JOB_TIMEOUT_GRACE_S = 10.0


def new_worker_id() -> str:
    return f"w-{secrets.token_hex(3)}"


async def run(settings: Settings) -> None:
    """Serve jobs until SIGINT/SIGTERM or cancellation; then close the browser and say stopped."""
    if not settings.redis_url:
        raise ValueError("a worker needs settings.redis_url")
    stopping = asyncio.Event()
    with _stop_on_signals(stopping):
        await BrowserWorker(settings, settings.worker_id or new_worker_id()).serve(stopping)


@contextlib.contextmanager
def _stop_on_signals(stopping: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stopping.set)
        except (ValueError, RuntimeError):  # not the main thread: the caller stops us by cancelling
            continue
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


class BrowserWorker:
    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.settings = settings
        self.id = worker_id
        self.machine = StateMachine(worker_id, settings.worker_capacity)
        self.session: ArenaSession | None = None
        self._recovery: asyncio.Task[None] | None = None

    async def serve(self, stopping: asyncio.Event) -> None:
        settings = self.settings
        redis_settings = queue.redis_settings(settings.redis_url or "")
        redis = await create_pool(
            redis_settings, job_serializer=queue.serialize, job_deserializer=queue.deserialize
        )
        heartbeat = Heartbeat(redis, self.machine, period=settings.heartbeat_seconds)
        group = SlotGroup(settings.worker_capacity, lambda: self.machine.serving)
        self.machine.on_change(group.wake)
        completion = Completion(
            worker_id=self.id,
            settings=settings,
            redis=redis,
            page=lambda: self._session().page,
            tokens=lambda: self._session().tokens,
            machine=self.machine,
            on_challenge=self._on_challenge,
        )
        workers = [
            QueueWorker(
                group,
                completion.run,
                queue_name=name,
                redis_settings=redis_settings,
                job_timeout_s=settings.job_timeout_seconds + JOB_TIMEOUT_GRACE_S,
            )
            for name in (keys.SHARED_QUEUE, keys.worker_queue(self.id))
        ]
        background = [asyncio.create_task(heartbeat.run(), name="heartbeat")]
        try:
            await self._open(redis, heartbeat)
            background += [
                asyncio.create_task(group.listen(redis), name="wake-listener"),
                asyncio.create_task(self._refresh_catalog(redis, heartbeat), name="catalog"),
                *(asyncio.create_task(worker.async_run(), name=worker.queue_name) for worker in workers),
            ]
            await self._until_stopped(stopping, background, redis, heartbeat)
        finally:
            await self._shut_down(workers, background, redis, heartbeat)

    def _session(self) -> ArenaSession:
        if self.session is None:
            raise RuntimeError("no browser session")
        return self.session

    async def _open(self, redis: ArqRedis, heartbeat: Heartbeat) -> None:
        """Start the browser, open the arena, wait until usable, publish the catalog, serve."""
        self.session = session = await ArenaSession.start(self.settings, self.id)
        await session.browser.open(self.settings.arena_url)
        html = await session.until_usable(self.machine)
        heartbeat.models = await catalog.publish(redis, self.id, html)
        session.tokens.start()
        # The first requests should find tokens waiting, as later ones do.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TOKEN_WARM_UP_S):
                await session.tokens.filled()
        self.machine.resume("the arena page is usable")

    async def _until_stopped(
        self, stopping: asyncio.Event, background: list[asyncio.Task[None]], redis: ArqRedis, heartbeat: Heartbeat
    ) -> None:
        stop = asyncio.create_task(stopping.wait())
        try:
            while True:
                died = asyncio.create_task(self._session().cdp.wait_closed())
                try:
                    done, _ = await asyncio.wait({stop, died, *background}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    died.cancel()
                if stop in done:
                    return
                for task in done & set(background):
                    task.result()  # a loop that should run forever ended: let its error out
                    raise RuntimeError(f"{task.get_name()} ended")
                await self._restart(redis, heartbeat)
        finally:
            stop.cancel()

    async def _restart(self, redis: ArqRedis, heartbeat: Heartbeat) -> None:
        self.machine.to(WorkerState.RESTARTING, reason="the browser went away")
        await self._session().close()
        self.session = None
        self.machine.to(WorkerState.STARTING, reason="starting a new browser")
        await self._open(redis, heartbeat)

    def _on_challenge(self) -> None:
        """A request met a Cloudflare check: stop serving until a human has passed it."""
        if self._recovery is not None and not self._recovery.done():
            return
        if self.machine.can(WorkerState.CHALLENGE):
            self.machine.to(WorkerState.CHALLENGE, reason="the arena answered with a Cloudflare check")
        self._recovery = asyncio.create_task(self._recover(), name="challenge")

    async def _recover(self) -> None:
        session = self._session()
        try:
            # Load the page again, so that the check shows where a human (noVNC) can pass it.
            await session.browser.open(self.settings.arena_url)
            await session.until_usable(self.machine)
        except Exception:
            logger.exception("could not bring the arena page back")
            return
        if self.machine.state is WorkerState.CHALLENGE:
            self.machine.resume("the Cloudflare check is passed")

    async def _refresh_catalog(self, redis: ArqRedis, heartbeat: Heartbeat) -> None:
        while True:
            await asyncio.sleep(CATALOG_REFRESH_S)
            if not self.machine.serving:
                continue
            try:
                heartbeat.models = await catalog.publish(redis, self.id, await self._session().page.html())
            except Exception as exc:
                logger.warning("could not refresh the catalog: %s", exc)

    async def _shut_down(
        self,
        workers: list[QueueWorker],
        background: list[asyncio.Task[None]],
        redis: ArqRedis,
        heartbeat: Heartbeat,
    ) -> None:
        if self.machine.state is not WorkerState.STOPPED:
            self.machine.to(WorkerState.STOPPED, reason="shutting down")
        with contextlib.suppress(Exception):
            await heartbeat.beat()
        # Jobs end first, while the page can still stop their answers in the arena.
        for worker in workers:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await worker.close()
        for task in [*background, *filter(None, [self._recovery])]:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.close()
        with contextlib.suppress(Exception):
            await heartbeat.remove()
        await redis.aclose()
        logger.info("worker %s stopped", self.id)
