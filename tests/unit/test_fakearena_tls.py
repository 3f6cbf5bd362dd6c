"""The fake over HTTPS with HTTP/2, as the real site serves: one connection, many streams."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator

import httpx
import pytest

from tests.fakearena.client import evaluation_body
from tests.fakearena.replies import text_of
from tests.fakearena.scenario import CAPTURED_SITE
from tests.support.procs import arena_tls, fake_arena

CHAT = "0199f060-b306-7e1f-aeae-0ebb4e3f1122"


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ssl.SSLContext]]:
    workdir = tmp_path_factory.mktemp("tls")
    with fake_arena(workdir, "--site", CAPTURED_SITE, tls=True) as url:
        yield url, arena_tls(workdir)


async def test_http2_streams_share_one_connection(origin: tuple[str, ssl.SSLContext]) -> None:
    url, ca = origin
    async with httpx.AsyncClient(base_url=url, http2=True, verify=ca) as client:
        page = await client.get("/")
        assert page.http_version == "HTTP/2" and "initialModels" in page.text
        assert (await client.get("/__fake/peer")).json()["host"] == "127.0.0.1"
        await client.post("/__fake/scenario", json={"line_delay_seconds": 0.02})

        async def ask(n: int) -> str:
            token = (await client.post("/__fake/recaptcha-token", json={})).json()["token"]
            body = evaluation_body(model_id=CHAT, content=f"question {n}", token=token)
            response = await client.post(
                "/nextjs-api/stream/create-evaluation",
                json=body,
                headers={"content-type": "text/plain;charset=UTF-8"},
            )
            assert response.status_code == 200
            return text_of(response.text.splitlines(), "a")

        # More than a browser's six HTTP/1.1 connections, all at once on one HTTP/2 connection.
        texts = await asyncio.gather(*(ask(n) for n in range(12)))
        assert [t.endswith(f"question {n}") for n, t in enumerate(texts)] == [True] * 12
        await client.post("/__fake/reset")


async def test_requests_whose_answer_ignores_the_body_keep_the_connection(
    origin: tuple[str, ssl.SSLContext],
) -> None:
    url, ca = origin
    async with httpx.AsyncClient(base_url=url, http2=True, verify=ca) as client:
        # /__fake/reset never reads its body: on bare hypercorn this dropped the connection.
        for _ in range(3):
            assert (await client.post("/__fake/reset", content=b"{}")).status_code == 200
            assert (await client.get("/__fake/scenario")).status_code == 200
