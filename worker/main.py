"""One browser worker from start to stop: `run(settings)`.

The worker keeps one browser serving: it opens the arena, waits for the page to be usable,
publishes the catalog and serves jobs. When the arena puts up a Cloudflare check or asks for a
signed-in account, the worker stops taking jobs and waits for a person to clear it through
noVNC, then serves again by itself. A browser that dies or stops answering is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import Iterator
from typing import Any

from arq.connections import ArqRedis

from shared.arena.errors import ArenaError, AuthRequired, Challenge
from shared.fleet.account_pacing import AccountPacer, Pace, paced_as
from shared.fleet.recovery import Recovery
from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.settings import Settings
from shared.storage import redis_client, redis_keys
from worker.account_gate import AccountGate
from worker.arena import catalog_publisher
from worker.arena.account_view import read_credits, read_egress
from worker.arena.chat_sweeper import ChatSweeper
from worker.arena.completion import Completion
from worker.arena.cookie_import import CookieInbox
from worker.arena.learned import Learned
from worker.arena.security_check import wait_out_flag
from worker.arena.session import CHALLENGED, SIGNED_OUT, ArenaSession, CatalogRead, Unusable
from worker.browser.display import Display, missing_tools, wanted
from worker.browser.proxy import forwarding, shown
from worker.heartbeat import Heartbeat, alive_file
from worker.queue_worker import QueueWorker, SlotGroup
from worker.state import StateMachine, flag_pauses, retry_pause

logger = logging.getLogger(__name__)

#: Longest wait for the first reCAPTCHA tokens before serving without them.
TOKEN_WARM_UP_S = 5.0
#: arq's own job timeout is a backstop behind the worker's, which reports the timeout to the client.
JOB_TIMEOUT_GRACE_S = 10.0
#: How often a worker waiting for a person looks again (they expect it to notice within seconds).
ATTEND_EVERY_S = 1.0

S = WorkerState


def new_worker_id() -> str:
    return f"w-{secrets.token_hex(3)}"


async def run(settings: Settings) -> None:
    """Serve jobs until SIGINT/SIGTERM or cancellation; then close the browser and say stopped."""
    if not redis_client.configured(settings):
        raise ValueError("a worker needs a Redis (settings.redis_url or redis_sentinels)")
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
        self.machine = StateMachine(
            worker_id,
            settings.worker_capacity,
            flag_pauses=flag_pauses(settings.account_flag_pause_seconds),
        )
        self.session: ArenaSession | None = None
        self.display: Display | None = None
        self.account: str | None = None
        #: The mode new chats go out in and the token actions the site takes, found by trying.
        self.learned = Learned()
        self._catalog: catalog_publisher.Published | None = None
        #: Browsers in a row that died or hung before they served: the next one waits longer.
        self._unserved_lives = 0
        #: The arena refused a guest (LOGIN_GATE): serve again only once signed in.
        self._sign_in_needed = False
        #: Waits for a person to clear a check or sign in, then serves again.
        self._attending: asyncio.Task[None] | None = None
        #: While the account is flagged: its page watched for a person's pass, calls alone.
        self._flag_watch: asyncio.Task[None] | None = None
        self._completion: Completion | None = None
        #: `host:port` of the forwarder to the account's own proxy (None: no proxy).
        self._proxy: str | None = None
        #: The address the arena sees the account come from, and its credits, as last read.
        self._egress: str | None = None
        self._credits: float | None = None
        self._heartbeat: Heartbeat | None = None
        self._redis: ArqRedis | None = None

    def status(self) -> WorkerStatus:
        machine, display = self.machine, self.display
        return WorkerStatus(
            id=self.id,
            state=machine.state,
            queue=redis_keys.worker_queue(self.id),
            account=self.account,
            capacity=machine.capacity,
            busy=machine.busy,
            models=self._catalog.models if self._catalog else [],
            catalog=self._catalog.digest if self._catalog else None,
            novnc_url=display.novnc_url if display else None,
            vnc_salt=display.salt if display else None,
            last_error=machine.last_error,
            reason=machine.reason,
            check=machine.check,
            until=machine.until,
            next_try=machine.next_try,
            catalog_source=self._catalog.source if self._catalog else None,
            chat_mode=self.learned.chat_mode.worked,
            calls=self._completion.calls if self._completion else 0,
            egress=self._egress,
            proxy=shown(self.settings.proxy.get_secret_value()) if self.settings.proxy else None,
            credits=self._credits,
            updated_at=time.time(),
        )

    async def serve(self, stopping: asyncio.Event) -> None:
        # The account's own proxy, if it has one, for every browser this worker runs.
        async with forwarding(self.settings.proxy) as proxy:
            self._proxy = proxy
            await self._serve(stopping)

    async def _serve(self, stopping: asyncio.Event) -> None:
        settings = self.settings
        self._redis = redis = await redis_client.arq_pool(settings)
        self._heartbeat = heartbeat = Heartbeat(
            redis,
            self.status,
            period=settings.heartbeat_seconds,
            alive=alive_file(settings.state_dir, self.id),
        )
        self.machine.on_change(heartbeat.changed)
        pace = Pace.of(settings)
        gate = AccountGate(
            AccountPacer(redis, pace) if pace.bounded else None,
            lambda: paced_as(self.account, self.id),
            serving=lambda: self.machine.serving,
        )
        group = SlotGroup(
            self.id,
            settings.worker_capacity,
            gate=gate,
            catalog=lambda: redis_keys.catalog_ids(self._catalog.digest) if self._catalog else "",
        )
        self.machine.on_change(group.wake)
        self.machine.on_change(self._watch_flag)
        chats = (
            ChatSweeper(
                redis,
                self.id,
                ttl_s=settings.conversation_ttl_seconds,
                page=lambda: self._session().page,
                serving=lambda: self.machine.serving,
            )
            if settings.delete_chats
            else None
        )
        self._completion = completion = Completion(
            worker_id=self.id,
            settings=settings,
            redis=redis,
            page=lambda: self._session().page,
            tokens=lambda: self._session().tokens,
            machine=self.machine,
            on_blocked=self._on_blocked,
            learned=self.learned,
            chats=chats,
            gate=gate,
        )
        workers = [
            QueueWorker(
                group,
                completion.run,
                queue_name=name,
                redis_pool=await redis_client.arq_pool(settings, default_queue_name=name),
                job_timeout_s=settings.job_timeout_seconds + JOB_TIMEOUT_GRACE_S,
            )
            for name in (redis_keys.SHARED_QUEUE, redis_keys.worker_queue(self.id))
        ]
        # Cookies imported for the account (`lmarena-bridge accounts import`) come sealed with
        # the admin key: without one, none can be opened.
        inbox = (
            CookieInbox(
                redis,
                self.id,
                settings.admin_key.get_secret_value(),
                self.machine,
                lambda: self.session,
                self._signed_in_anew,
            )
            if settings.admin_key
            else None
        )
        recovery = Recovery.of(redis, settings)
        # What a previous life of this worker (same id) left running is saved before serving.
        await recovery.save(self.id, waiting=False)
        background: list[asyncio.Task[Any]] = [
            asyncio.create_task(heartbeat.run(), name="heartbeat"),
            asyncio.create_task(recovery.run(), name="recovery"),
        ]
        try:
            if wanted(settings.display, settings.headless, missing_tools()):
                self.display = await Display.start(settings, self.id)
                watching = self.display.watch(settings, self.id, changed=heartbeat.changed)
                background.append(asyncio.create_task(watching, name="display"))
                heartbeat.changed()
            background += [
                asyncio.create_task(group.listen(redis), name="wake-listener"),
                asyncio.create_task(self._refresh_catalog(), name="catalog"),
                *([asyncio.create_task(chats.run(), name="chat-sweeper")] if chats else []),
                *([asyncio.create_task(inbox.run(), name="cookie-inbox")] if inbox else []),
                *(
                    asyncio.create_task(worker.async_run(), name=worker.queue_name)
                    for worker in workers
                ),
            ]
            await self._until_stopped(stopping, background)
        finally:
            await self._shut_down(workers, group, recovery, background, redis, heartbeat)

    def _session(self) -> ArenaSession:
        if self.session is None:
            raise ConnectionError("the browser is restarting")
        return self.session

    async def _until_stopped(self, stopping: asyncio.Event, background: list[asyncio.Task]) -> None:
        """Run a browser after another, each until it dies or hangs, until asked to stop."""
        stop = asyncio.create_task(stopping.wait())
        try:
            while True:
                if self.machine.next_try is not None and self.machine.state is S.RESTARTING:
                    # Browsers keep failing before they serve: wait, unless asked to stop.
                    pause = max(0.0, self.machine.next_try - time.time())
                    done, _ = await asyncio.wait({stop, *background}, timeout=pause)
                    if stop in done:
                        return
                    self.machine.to(S.STARTING, reason="starting a new browser")
                self.session = await ArenaSession.start(
                    self.settings, self.id, self.display, self._proxy
                )
                life = asyncio.create_task(self._live(self.session), name="browser")
                try:
                    done, _ = await asyncio.wait(
                        {stop, life, *background}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    life.cancel()
                    await asyncio.wait({life})
                if stop in done:
                    return
                for task in done & set(background):
                    # A loop that should run forever ended (or the display died): let it out.
                    raise RuntimeError(f"{task.get_name()} ended: {task.result()}")
                await self._restart(life.result())
        finally:
            stop.cancel()

    async def _live(self, session: ArenaSession) -> str:
        """Serve with this browser; return why it must be replaced (it died or hangs)."""
        opening = asyncio.create_task(self._open(session), name="open")
        health = asyncio.create_task(self._health(session), name="health")
        try:
            await asyncio.wait({opening, health}, return_when=asyncio.FIRST_COMPLETED)
            if (
                opening.done()
                and not opening.cancelled()
                and (failed := opening.exception()) is not None
            ):
                if health.done():
                    return health.result()
                logger.error("could not open the arena: %s: %s", type(failed).__name__, failed)
                return f"the arena could not be opened ({type(failed).__name__}: {failed})"
            return await health
        finally:
            for task in (opening, health, self._attending, self._flag_watch):
                if task is not None:
                    task.cancel()

    async def _health(self, session: ArenaSession) -> str:
        """Return once the browser has gone away, or has not answered a probe in time."""
        settings = self.settings
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.browser_probe_seconds):
                    await session.cdp.wait_closed()
                    return "the browser went away"
            if not await session.responsive(settings.browser_probe_timeout_seconds):
                if session.cdp.closed:
                    return "the browser went away"
                return (
                    f"the browser did not answer for {settings.browser_probe_timeout_seconds:g} s"
                )

    async def _open(self, session: ArenaSession) -> None:
        """Open the arena, wait until it is usable (and any person done), then serve."""
        await self._arrive(session, warm_up=True)

    async def _arrive(
        self, session: ArenaSession, *, warm_up: bool = False, reload: bool = True
    ) -> None:
        """Bring the page to where it serves; while the arena cannot be used, say why (the
        doctor's check that fails) and try again after growing pauses, in the same browser."""
        tries = 0
        while True:
            try:
                if reload:
                    await session.open()
                await self._attend(session, warm_up=warm_up)
                return
            except Unusable as exc:
                if exc.state is S.CHALLENGE:  # met while reading the catalog: wait for a person
                    if self.machine.state is not S.CHALLENGE:
                        self.machine.failed(S.CHALLENGE, exc.finding)
                    reload = False
                    continue
                tries += 1
                pause = retry_pause(tries)
                logger.warning("the arena cannot be used (%s); trying again in %.0f s", exc, pause)
                self.machine.failed(exc.state, exc.finding, next_try=time.time() + pause)
                await asyncio.sleep(pause)
                reload = True

    async def _attend(self, session: ArenaSession, *, warm_up: bool = False) -> None:
        """Wait until the page is usable with whatever account it needs, publish, serve."""
        while True:
            html = await session.until_usable(self.machine)  # waits out a Cloudflare check
            signed = await session.sign_in()
            account = signed.account if signed.signed_in else None
            if account != self.account and self.account is not None:
                self.machine.new_account()
            self.account = account
            if signed.signed_in or not self._sign_in_needed:
                break
            if self.machine.state is not S.LOGIN_REQUIRED:
                self.machine.failed(S.LOGIN_REQUIRED, SIGNED_OUT)
            await asyncio.sleep(ATTEND_EVERY_S)
        self._sign_in_needed = False
        if (await session.page.security_check()).shown:
            self.machine.flag("the arena page shows its security check", now=time.time())
        catalog = await session.read_catalog(html)
        await self._publish(catalog)
        if warm_up:
            session.tokens.start()
            # The first requests should find tokens waiting, as later ones do.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TOKEN_WARM_UP_S):
                    await session.tokens.filled()
        who = f"signed in as {self.account}" if self.account else "as a guest"
        session.served = True
        self.machine.resume(f"the arena page is usable ({who}; catalog from the {catalog.source})")
        await self._read_account_view(session)

    async def _read_account_view(self, session: ArenaSession) -> None:
        """What only the page can tell of the account: its egress address and credits."""
        if self.settings.egress_probe_url:
            self._egress = await read_egress(session.page, self.settings.egress_probe_url)
        self._credits = await read_credits(session.page)
        assert self._heartbeat is not None
        self._heartbeat.changed()

    def _on_blocked(self, error: ArenaError) -> None:
        """The arena answered a request with a check or a sign-in gate: stop serving, call a person."""
        if isinstance(error, Challenge):
            state, finding = S.CHALLENGE, CHALLENGED
        elif isinstance(error, AuthRequired) and error.login_gate:
            self._sign_in_needed = True
            state, finding = S.LOGIN_REQUIRED, SIGNED_OUT
        else:
            return
        self.machine.last_error = f"{error.kind}: {error.message}"
        if self._attending is not None and not self._attending.done():
            return  # already waiting for a person
        if not self.machine.can(state) or self.session is None:
            return  # restarting or stopping: the new browser is checked anyway
        logger.warning("worker %s needs a person: %s", self.id, finding.line())
        self.machine.failed(state, finding)
        self._attending = asyncio.create_task(
            self._reattend(self.session, reload=state is S.CHALLENGE)
        )

    async def _reattend(self, session: ArenaSession, *, reload: bool) -> None:
        try:
            # Reloaded, the page shows the check where a person (noVNC) can pass it.
            await self._arrive(session, reload=reload)
        except ConnectionError:
            pass  # the browser died: it is being replaced, and the new one is checked the same way
        except Exception:
            logger.exception("could not bring the arena page back")

    def _signed_in_anew(self, session: ArenaSession, account: str | None) -> None:
        """Imported cookies signed the browser in: a page that serves (or rests) is opened anew
        as that account. A page a person works in reads the sign-in by itself."""
        if account == self.account or not self.machine.can(S.STARTING):
            return
        if self._attending is not None and not self._attending.done():
            return  # it is being opened anew already, and reads the sign-in then
        self._attending = asyncio.create_task(self._reopen_signed_in(session), name="sign-in")

    async def _reopen_signed_in(self, session: ArenaSession) -> None:
        self.machine.to(
            S.STARTING, reason="signed in with imported cookies: opening the arena anew"
        )
        # The answers under way stream in this page: they finish first (as when stopping).
        deadline = time.monotonic() + self.settings.drain_seconds
        while self.machine.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await self._reattend(session, reload=True)

    def _watch_flag(self) -> None:
        """Flagged, with a page to watch: keep the check in sight for a person, call alone."""
        session, completion = self.session, self._completion
        if self.machine.state is not S.FLAGGED or session is None or completion is None:
            return
        if self._flag_watch is None or self._flag_watch.done():
            self._flag_watch = asyncio.create_task(
                self._wait_out_flag(session, completion), name="flag"
            )

    async def _wait_out_flag(self, session: ArenaSession, completion: Completion) -> None:
        try:
            await wait_out_flag(
                self.machine, lambda: session.page, completion.call_alone, session.open
            )
        except (ConnectionError, Unusable):
            pass  # the browser died or the page will not load: its next life is checked anew
        except Exception:
            logger.exception("could not wait out the flag")

    async def _publish(self, catalog: CatalogRead) -> None:
        assert self._redis is not None and self._heartbeat is not None
        self._catalog = await catalog_publisher.publish(
            self._redis, catalog.models, catalog.source, now=time.time()
        )
        self._heartbeat.changed()

    async def _refresh_catalog(self) -> None:
        """Read the catalog off the arena again every so often; a check met here is met early."""
        while True:
            await asyncio.sleep(self.settings.catalog_refresh_seconds)
            session = self.session
            if session is None or not self.machine.serving:
                continue
            try:
                await self._publish(await session.read_catalog())
                await self._read_account_view(session)
            except Unusable as exc:
                if exc.state is S.CHALLENGE:
                    self._on_blocked(Challenge("Cloudflare check on the arena page"))
                    continue
                # The catalog served so far stays: requests for its models may still work.
                logger.warning("could not refresh the catalog: %s", exc)
                self.machine.last_error = exc.finding.line()
            except Exception as exc:
                logger.warning("could not refresh the catalog: %s", exc)

    async def _restart(self, reason: str) -> None:
        """Close the browser; a new one follows at once, or after a pause while they keep
        failing before they serve."""
        session, self.session = self.session, None
        served = session is not None and session.served
        self._unserved_lives = 0 if served else self._unserved_lives + 1
        if self._unserved_lives:  # `_until_stopped` waits until `next_try` for the next one
            pause = retry_pause(self._unserved_lives)
            reason, next_try = f"{reason}; a new browser in {pause:.0f} s", time.time() + pause
        else:
            next_try = None
        self.machine.to(S.RESTARTING, reason=reason, next_try=next_try)
        if session is not None:
            try:
                await session.close()
            except Exception as exc:
                logger.warning("closing the old browser: %s: %s", type(exc).__name__, exc)
        if next_try is None:
            self.machine.to(S.STARTING, reason="starting a new browser")

    async def _shut_down(
        self,
        workers: list[QueueWorker],
        group: SlotGroup,
        recovery: Recovery,
        background: list[asyncio.Task],
        redis: ArqRedis,
        heartbeat: Heartbeat,
    ) -> None:
        if self.machine.state is not S.STOPPED:
            self.machine.to(S.STOPPED, reason="shutting down: finishing the answers under way")
        with contextlib.suppress(Exception):
            await heartbeat.beat()
        # Nothing more is claimed (a stopped worker has no free slot); the answers under way
        # finish, within the drain time, while the browser is still there to stream them.
        deadline = time.monotonic() + self.settings.drain_seconds
        while group.running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        # Those still running end now, while the page can still stop their answers in the
        # arena; each goes back to the shared queue unless the client saw part of it.
        for worker in workers:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await worker.close()
        # Continuations waiting for this worker go to the others, as new sessions.
        with contextlib.suppress(Exception):
            await recovery.save(self.id)
        for task in [*background, *filter(None, [self._attending, self._flag_watch])]:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.close()
        if self.display is not None:
            with contextlib.suppress(Exception):
                await self.display.close()
        with contextlib.suppress(Exception):
            await heartbeat.remove(self.id)
        await redis.aclose()
        logger.info("worker %s stopped", self.id)
