"""What running a request through the arena page costs over a plain HTTP client.

The worker sends each arena request from the page (`worker.browser.page.ArenaPage.fetch`: a CDP
`Runtime.evaluate` starts the page's own fetch(), every chunk comes back through a CDP binding).
This measures that path alone, against the fake arena over HTTPS and HTTP/2, interleaved with a
plain HTTP client (httpx) sending the same request, so that machine noise hits both alike:
  request leg:  the client sends (for the page: the CDP command leaves Python) → the arena has it;
  response leg: the arena hands the first text line to its connection → the client holds it
                (for the page: the binding's message has reached Python);
and, for the page, the same with a reCAPTCHA token being minted in the page meanwhile, as the
worker's token pool does right after a request takes a token.

    python -m tests.bench.page_fetch [--requests 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from shared.arena import payloads
from shared.arena.ids import uuid7
from shared.arena.page import recaptcha_site_key
from shared.arena.stream import LineParser
from shared.settings import Settings
from tests.fakearena.scenario import CAPTURED_SITE
from tests.support.procs import TEST_CHROMIUM_ARGS, TLS_CHROMIUM_ARGS, arena_tls, fake_arena
from worker.browser.cdp import CDPConnection, target_url
from worker.browser.chromium import Browser
from worker.browser.page import ArenaPage

MODEL_ID = "0199f060-b306-7e1f-aeae-0ebb4e3f1122"

#: (sent, first text line in the client's hands), Unix time; and the request's body id.
Timing = tuple[float, float, str]


def create_request(token: str) -> payloads.ArenaRequest:
    return payloads.create_evaluation(
        payloads.UserTurn(
            session_id=uuid7(),
            model_a_id=MODEL_ID,
            user_message_id=uuid7(),
            model_a_message_id=uuid7(),
            content=f"{' '.join(['word'] * 40)} {uuid7()}",
            modality="chat",
            token=token,
        ),
        mode="direct",
    )


async def by_httpx(arena: httpx.AsyncClient, token: str) -> Timing:
    request = create_request(token)
    parser = LineParser()
    sent = time.time()
    async with arena.stream(
        request.method,
        request.path,
        json=request.body,
        headers={"content-type": "text/plain;charset=UTF-8"},
    ) as response:
        async for chunk in response.aiter_raw():
            if any(part.code == "0" for part in parser.feed(chunk)):
                return sent, time.time(), request.body["id"]
    raise AssertionError("no text came")


async def by_page(
    page: ArenaPage, token: str, meanwhile: Callable[[], Awaitable[object]] | None
) -> Timing:
    request = create_request(token)
    parser = LineParser()
    # Scheduled now, it runs once the fetch's command has left: the order of the worker's pool.
    minting = asyncio.ensure_future(meanwhile()) if meanwhile is not None else None
    sent = time.time()
    async with page.fetch(request) as fetch:
        assert (await fetch.head()).status == 200
        async for text in fetch.chunks():
            if any(part.code == "0" for part in parser.feed(text)):
                got = time.time()
                break
        else:
            raise AssertionError("no text came")
    if minting is not None:
        await minting
    return sent, got, request.body["id"]


def legs(timings: list[Timing], log: dict) -> tuple[list[float], list[float]]:
    received = {
        r["body"]["id"]: r["received_at"]
        for r in log["requests"]
        if r["path"].endswith("/create-evaluation")
    }
    first_line = {
        s["session_id"]: next(
            t for line, t in zip(s["lines"], s["sent_at"], strict=True) if line.startswith("a0:")
        )
        for s in log["streams"]
    }
    request = [(received[i] - sent) * 1000 for sent, _, i in timings]
    response = [(got - first_line[i]) * 1000 for _, got, i in timings]
    return request, response


def row(name: str, values: list[float]) -> str:
    return f"  {name:<30} p50 {statistics.median(values):6.2f} ms   min {min(values):6.2f} ms"


async def measure(workdir: Path, arena_url: str, requests: int) -> None:
    settings = Settings(
        state_dir=workdir / "state",
        headless=True,
        chromium_args=TEST_CHROMIUM_ARGS + TLS_CHROMIUM_ARGS,
    )
    browser = await Browser.launch(settings, "bench-page")
    arena = httpx.AsyncClient(base_url=arena_url, http2=True, verify=arena_tls(workdir), timeout=30)
    cdp = await CDPConnection.connect(await target_url(browser.debugger_address, browser.target_id))
    try:
        page = await ArenaPage.attach(cdp)
        await browser.open(arena_url + "/")
        await arena.get("/")  # a guest identity, as the browser has
        site_key = recaptcha_site_key(await page.html())
        assert site_key is not None

        async def mint() -> str:
            return await page.mint_token(site_key, "chat_submit")

        async def token() -> str:
            return (
                await arena.post("/__fake/recaptcha-token", json={"action": "chat_submit"})
            ).json()["token"]

        runs: dict[str, list[Timing]] = {"httpx": [], "page": [], "page, minting meanwhile": []}
        for n in range(requests + 3):
            for name in runs:
                await asyncio.sleep(0.1)  # idle between requests, as between real ones
                if name == "httpx":
                    timing = await by_httpx(arena, await token())
                else:
                    timing = await by_page(page, await token(), mint if "minting" in name else None)
                if n >= 3:  # the first few warm connections and caches
                    runs[name].append(timing)
        log = (await arena.get("/__fake/log")).json()
    finally:
        await cdp.close()
        await arena.aclose()
        await browser.close()

    print(f"\n{requests} requests each, interleaved\n")
    baseline = None
    for name, timings in runs.items():
        request, response = legs(timings, log)
        total = [r + s for r, s in zip(request, response, strict=True)]
        print(name)
        print(row("request leg (send → arena)", request))
        print(row("response leg (line → client)", response))
        print(row("both legs", total))
        if baseline is None:
            baseline = statistics.median(total)
        else:
            print(
                f"  {'over httpx, both legs':<30} p50 {statistics.median(total) - baseline:+6.2f} ms"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        arena_url = stack.enter_context(fake_arena(workdir, "--site", CAPTURED_SITE, tls=True))
        asyncio.run(measure(workdir, arena_url, args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
