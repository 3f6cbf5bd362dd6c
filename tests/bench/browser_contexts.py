"""Several accounts in one Chromium, as separate browser contexts: what each costs, what holds.

A prototype for serving many accounts from one browser. One Chromium, started the worker's way
(`worker.browser.chromium.Browser`, its switches, headless), gets one browser context per
account (`Target.createBrowserContext`: its own cookies, storage and cache, and its own proxy),
each with the arena open in a tab, driven as the worker drives its page
(`worker.browser.page.ArenaPage`). Against it, as many separate Chromiums, one per account, as
workers run them today. For each: PSS of the whole Chromium tree and idle CPU (CPU seconds per
wall second), one account and then `--accounts`, and what one more account costs.

It also checks what a bridge would have to rely on:
  - every context mints reCAPTCHA tokens and sends a request from its page;
  - contexts do not share cookies: one signs in, the others stay guests (`/api/me`);
  - a context's proxy is its own (`proxyServer`): one behind a proxy that does not answer
    fails to load the arena, the others load it;
  - a context's cookies are not kept in the profile: after a restart the account is gone,
    unless the bridge saved them (`Storage.getCookies`) and gives them back (`Storage.setCookies`).

    python -m tests.bench.browser_contexts [--accounts 3] [--settle 15] [--window 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil

from shared.arena.page import recaptcha_site_key
from shared.settings import Settings
from tests.bench.accounts import cpu_seconds, pss
from tests.support.procs import TEST_CHROMIUM_ARGS, fake_arena, free_port
from worker.browser.cdp import CDPConnection, target_url
from worker.browser.chromium import Browser
from worker.browser.page import ArenaPage

ACTION = "chat_submit"


def chromium_tree(browser: Browser) -> list[psutil.Process]:
    root = psutil.Process(browser.driver.browser_pid)
    return [root, *root.children(recursive=True)]


async def browser_endpoint(browser: Browser) -> CDPConnection:
    """The browser's own DevTools socket (contexts and targets are made there)."""
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        version = (await client.get(f"http://{browser.debugger_address}/json/version")).json()
    return await CDPConnection.connect(version["webSocketDebuggerUrl"])


class Account:
    """One account's tab: in its own browser context, or the browser's default one."""

    def __init__(self, context: str | None, target: str, cdp: CDPConnection, page: ArenaPage):
        self.context = context
        self.target = target
        self.cdp = cdp
        self.page = page

    async def me(self, origin: str) -> int:
        answer = await self.page.evaluate(
            f"fetch({json.dumps(origin + '/api/me')}, {{credentials: 'include'}}).then(r => r.status)",
            await_promise=True,
        )
        return int(answer)

    async def sign_in(self, origin: str, name: str) -> None:
        body = f"username={name}&password=x"
        await self.page.evaluate(
            f"fetch({json.dumps(origin + '/login')}, {{method: 'POST', credentials: 'include', "
            f"headers: {{'content-type': 'application/x-www-form-urlencoded'}}, "
            f"body: {json.dumps(body)}}}).then(r => r.status)",
            await_promise=True,
        )

    async def mint(self) -> str:
        html = await self.page.html()
        site_key = recaptcha_site_key(html)
        assert site_key, "the arena page carries its site key"
        return await self.page.mint_token(site_key, ACTION)


async def open_account(
    browser: Browser, root: CDPConnection, origin: str, *, context: bool, proxy: str | None = None
) -> Account:
    context_id = None
    if context:
        params: dict = {"disposeOnDetach": False}
        if proxy:
            # Chromium never proxies loopback unless told to: the fake arena is on loopback.
            params |= {"proxyServer": proxy, "proxyBypassList": "<-loopback>"}
        context_id = (await root.send("Target.createBrowserContext", params))["browserContextId"]
        target = (
            await root.send(
                "Target.createTarget", {"url": "about:blank", "browserContextId": context_id}
            )
        )["targetId"]
    else:
        target = browser.target_id
    cdp = await CDPConnection.connect(await target_url(browser.debugger_address, target))
    page = await ArenaPage.attach(cdp)
    await cdp.send("Page.navigate", {"url": origin + "/"})
    return Account(context_id, target, cdp, page)


async def until_usable(account: Account, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await account.page.recaptcha_ready():
                return True
        await asyncio.sleep(0.25)
    return False


@contextlib.asynccontextmanager
async def chromium(settings: Settings, name: str) -> AsyncIterator[Browser]:
    browser = await Browser.launch(settings, name)
    try:
        yield browser
    finally:
        await browser.close()


async def idle_cost(
    processes: list[psutil.Process], settle: float, window: float
) -> tuple[float, float]:
    """(PSS MiB, ms of CPU per second) of `processes` left idle."""
    await asyncio.sleep(settle)
    tree = [p for p in processes if p.is_running()]
    before = {p.pid: cpu_seconds(p) for p in tree}
    started = time.monotonic()
    await asyncio.sleep(window)
    used = sum(cpu_seconds(p) - before[p.pid] for p in tree if p.is_running())
    return pss(tree), 1000 * used / (time.monotonic() - started)


async def contexts_cost(
    settings: Settings, origin: str, n: int, settle: float, window: float
) -> list[tuple[float, float]]:
    """One Chromium: the default context's tab, then n − 1 more contexts with a tab each."""
    costs = []
    async with chromium(settings, "contexts") as browser:
        root = await browser_endpoint(browser)
        accounts = [await open_account(browser, root, origin, context=False)]
        assert await until_usable(accounts[0])
        costs.append(await idle_cost(chromium_tree(browser), settle, window))
        for _ in range(n - 1):
            accounts.append(await open_account(browser, root, origin, context=True))
        assert all([await until_usable(a) for a in accounts])
        costs.append(await idle_cost(chromium_tree(browser), settle, window))
        for account in accounts:
            await account.cdp.close()
        await root.close()
    return costs


async def browsers_cost(
    settings: Settings, origin: str, n: int, settle: float, window: float
) -> list[tuple[float, float]]:
    """One Chromium per account, as workers run them."""
    costs = []
    async with contextlib.AsyncExitStack() as stack:
        browsers = []
        for i in range(n):
            browser = await stack.enter_async_context(chromium(settings, f"browser-{i}"))
            root = await browser_endpoint(browser)
            account = await open_account(browser, root, origin, context=False)
            assert await until_usable(account)
            stack.push_async_callback(account.cdp.close)
            stack.push_async_callback(root.close)
            browsers.append(browser)
            if i == 0:
                costs.append(await idle_cost(chromium_tree(browser), settle, window))
        trees = [p for b in browsers for p in chromium_tree(b)]
        costs.append(await idle_cost(trees, settle, window))
    return costs


async def check(settings: Settings, origin: str, workdir: Path) -> list[tuple[str, bool]]:
    """What serving accounts from contexts relies on, each checked for real."""
    results = []
    saved: list[dict] = []
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    async with chromium(settings, "checks") as browser:
        root = await browser_endpoint(browser)
        first = await open_account(browser, root, origin, context=True)
        second = await open_account(browser, root, origin, context=True)
        proxied = await open_account(browser, root, origin, context=True, proxy=dead_proxy)
        usable = [await until_usable(a) for a in (first, second)]
        results.append(("every context's page becomes usable", all(usable)))
        tokens = [await first.mint(), await second.mint()]
        results.append(
            ("every context mints reCAPTCHA tokens", all(t.startswith("03AF") for t in tokens))
        )
        await first.sign_in(origin, "alice")
        results.append(
            (
                "a context's sign-in stays its own",
                await first.me(origin) == 200 and await second.me(origin) == 401,
            )
        )
        results.append(
            (
                "a context behind a dead proxy does not reach the arena",
                not await until_usable(proxied, 5),
            )
        )
        saved = (await root.send("Storage.getCookies", {"browserContextId": first.context}))[
            "cookies"
        ]
        for account in (first, second, proxied):
            await account.cdp.close()
        await root.close()
    async with chromium(settings, "checks") as browser:
        root = await browser_endpoint(browser)
        again = await open_account(browser, root, origin, context=True)
        await until_usable(again)
        lost = await again.me(origin) == 401
        await root.send("Storage.setCookies", {"cookies": saved, "browserContextId": again.context})
        results.append(
            (
                "after a restart a context's cookies are gone, and come back when the bridge restores them",
                lost and await again.me(origin) == 200,
            )
        )
        await again.cdp.close()
        await root.close()
    return results


def line(title: str, costs: list[tuple[float, float]], n: int) -> tuple[float, float]:
    (one_mib, one_cpu), (many_mib, many_cpu) = costs
    added = ((many_mib - one_mib) / (n - 1), (many_cpu - one_cpu) / (n - 1))
    print(
        f"  {title:<26} one {one_mib:6.1f} MiB {one_cpu:5.2f} ms/s   {n}: {many_mib:6.1f} MiB "
        f"{many_cpu:5.2f} ms/s   per added account {added[0]:6.1f} MiB {added[1]:5.2f} ms/s"
    )
    return added


async def run(args: argparse.Namespace, workdir: Path, origin: str) -> None:
    os.environ.update(
        LMB_STATE_DIR=str(workdir / "state"),
        LMB_HEADLESS="true",
        LMB_CHROMIUM_ARGS=json.dumps(TEST_CHROMIUM_ARGS),
    )
    settings = Settings()
    n = args.accounts
    print(f"Chromium trees, headless, the fake arena open in each account's tab; {n} accounts")
    separate = line(
        "a Chromium per account",
        await browsers_cost(settings, origin, n, args.settle, args.window),
        n,
    )
    shared = line(
        "a context per account",
        await contexts_cost(settings, origin, n, args.settle, args.window),
        n,
    )
    print(f"  a context costs {shared[0] / separate[0]:4.2f}× the memory of a browser per account")
    print("What contexts rely on")
    for name, ok in await check(settings, origin, workdir):
        print(f"  {'holds ' if ok else 'FAILS '} {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, fake_arena(Path(tmp)) as origin:
        asyncio.run(run(args, Path(tmp), origin))
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
