"""Images clients send: data URLs, fetched URLs within their limits, and their wait in Redis."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from redis.asyncio import Redis

from gateway.conversations.image_inputs import (
    MAX_IMAGE_BYTES,
    MAX_IMAGES,
    ImageFetcher,
    ImageSource,
    ImageStore,
    decode_data_url,
    is_public,
)
from gateway.http.errors import ApiError
from shared.settings import Settings
from shared.storage import redis_keys
from tests.fakearena.png import image_for

PNG = image_for("a cat")


class _Handler(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path == "/cat.png":
            self._send(200, PNG, "image/png")
        elif self.path == "/octet":
            self._send(200, PNG, "application/octet-stream")
        elif self.path == "/page.html":
            self._send(200, b"<html></html>", "text/html")
        elif self.path == "/huge":
            self._send(200, b"\0" * (MAX_IMAGE_BYTES + 1), "image/png")
        elif self.path == "/huge-chunked":
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.end_headers()  # no length: read until the cap
            self.wfile.write(b"\0" * (MAX_IMAGE_BYTES + 1))
            self.close_connection = True
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("location", "/cat.png")
            self.send_header("content-length", "0")
            self.end_headers()
        elif self.path == "/slow":
            threading.Event().wait(2)
            self._send(200, PNG, "image/png")
        else:
            self._send(404, b"", "text/plain")

    def _send(self, status: int, body: bytes, media_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", media_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that stops reading at the size cap breaks the pipe: expected


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def fetch(url: str, *, allow_private: bool = True, timeout_s: float = 5.0, resolver=None):
    kwargs = {"resolver": resolver} if resolver else {}
    async with ImageFetcher(allow_private=allow_private, timeout_s=timeout_s, **kwargs) as fetcher:
        return await fetcher.fetch(ImageSource(url))


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def test_a_data_url_is_decoded_with_its_media_type() -> None:
    image = decode_data_url(data_url(PNG))
    assert (image.media_type, image.data) == ("image/png", PNG)
    # A generic or missing media type is read off the bytes.
    assert decode_data_url(data_url(PNG, "application/octet-stream")).media_type == "image/png"


@pytest.mark.parametrize(
    "url",
    ["data:image/png;base64,@@@", "data:image/png;base64", "data:text/plain,hello", "nodata"],
)
def test_a_bad_data_url_is_a_400(url: str) -> None:
    with pytest.raises(ApiError) as caught:
        decode_data_url(url)
    assert caught.value.status == 400


def test_an_image_over_10_mb_is_a_413() -> None:
    with pytest.raises(ApiError) as caught:
        decode_data_url(data_url(b"\0" * (MAX_IMAGE_BYTES + 1)))
    assert caught.value.status == 413 and "10 MB" in caught.value.message


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("224.0.0.1", False),
        # NAT64 (RFC 6052): the IPv4 address in the last 32 bits is the one reached
        ("64:ff9b::808:808", True),
        ("64:ff9b::a00:1", False),  # 10.0.0.1
        ("64:ff9b::7f00:1", False),  # 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # 169.254.169.254
        ("64:ff9b:1::808:808", False),  # local-use NAT64: a private network's own
        # 6to4 (2002::/16): the IPv4 address in bits 16-48
        ("2002:808:808::1", True),
        ("2002:a00:1::1", False),  # 10.0.0.1
        ("2002:c0a8:101::1", False),  # 192.168.1.1
        ("2002:a9fe:a9fe::1", False),
        # Teredo, IPv4-compatible and IPv4-translated forms
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),
        ("::a00:1", False),
        ("::808:808", False),
        ("::ffff:0:a00:1", False),
    ],
)
def test_only_public_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_a_url_is_fetched_when_private_addresses_are_allowed(server: str) -> None:
    image = await fetch(f"{server}/cat.png")
    assert (image.media_type, image.data) == ("image/png", PNG)
    assert (await fetch(f"{server}/octet")).media_type == "image/png"
    assert (await fetch(f"{server}/moved")).data == PNG


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_is_refused_by_default_whatever_the_name(server: str, host: str) -> None:
    port = server.rsplit(":", 1)[1]
    _Handler.hits.clear()
    with pytest.raises(ApiError) as caught:
        await fetch(f"http://{host}:{port}/cat.png", allow_private=False)
    assert caught.value.status == 400 and caught.value.code == "image_url_not_allowed"
    assert _Handler.hits == []  # refused before any request


async def test_the_resolved_address_is_checked_and_is_the_one_connected_to(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])

    async def resolver(host: str, _port: int) -> list[str]:
        return ["127.0.0.1"] if host == "images.invalid" else []

    with pytest.raises(ApiError) as caught:
        await fetch(f"http://images.invalid:{port}/cat.png", allow_private=False, resolver=resolver)
    assert caught.value.code == "image_url_not_allowed"
    # `.invalid` never resolves for real: the fetch works only through the checked address.
    assert (await fetch(f"http://images.invalid:{port}/cat.png", resolver=resolver)).data == PNG


@pytest.mark.parametrize(
    "address", ["64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::ffff:0:a9fe:a9fe", "::a9fe:a9fe"]
)
async def test_a_name_resolving_to_an_address_that_embeds_a_private_one_is_refused(
    address: str,
) -> None:
    """169.254.169.254 (cloud metadata) by way of NAT64, 6to4 and the IPv4-in-IPv6 forms."""

    async def resolver(host: str, _port: int) -> list[str]:
        return [address]

    with pytest.raises(ApiError) as caught:
        await fetch("http://images.invalid/cat.png", allow_private=False, resolver=resolver)
    assert caught.value.status == 400 and caught.value.code == "image_url_not_allowed"


@pytest.mark.parametrize("path", ["/huge", "/huge-chunked"])
async def test_a_url_over_10_mb_is_a_413(server: str, path: str) -> None:
    with pytest.raises(ApiError) as caught:
        await fetch(server + path)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("path", "said"),
    [("/missing", "HTTP 404"), ("/page.html", "not an image"), ("/slow", "no answer within")],
)
async def test_a_url_that_gives_no_image_in_time_is_a_400_saying_why(
    server: str, path: str, said: str
) -> None:
    with pytest.raises(ApiError) as caught:
        await fetch(server + path, timeout_s=0.5)
    assert caught.value.status == 400 and said in caught.value.message


async def test_only_http_urls_are_fetched() -> None:
    with pytest.raises(ApiError) as caught:
        await fetch("file:///etc/passwd")
    assert caught.value.status == 400


async def test_the_store_keeps_each_image_once_and_fetches_only_what_it_lacks(
    redis: Redis, server: str
) -> None:
    store = ImageStore(redis, Settings(allow_private_image_urls=True, conversation_ttl_seconds=60))
    remote, inline = (
        ImageSource(f"{server}/cat.png"),
        ImageSource(data_url(b"GIF89a-tiny", "image/gif")),
    )
    _Handler.hits.clear()
    refs = await store.put([(remote, False), (inline, True)], owner="k1")
    assert [(r.digest, r.media_type, r.new) for r in refs] == [
        (remote.digest, "image/png", False),
        (inline.digest, "image/gif", True),
    ]
    assert await redis.hgetall(redis_keys.image(remote.digest)) == {b"m": b"image/png", b"d": PNG}
    assert 0 < await redis.ttl(redis_keys.image(remote.digest)) <= 60
    await store.put([(remote, True)], owner="k1")
    assert _Handler.hits == ["/cat.png"]  # the second turn found it in Redis


async def test_the_store_caps_the_images_of_a_request(redis: Redis) -> None:
    store = ImageStore(redis, Settings())
    sources = [(ImageSource(data_url(PNG + bytes([i]))), True) for i in range(MAX_IMAGES + 1)]
    with pytest.raises(ApiError) as caught:
        await store.put(sources, owner="k1")
    assert caught.value.status == 400 and str(MAX_IMAGES) in caught.value.message


def png_of(size: int, n: int) -> ImageSource:
    return ImageSource(data_url(PNG + bytes([n]) * (size - len(PNG))))


async def test_what_one_key_keeps_is_capped_and_the_others_are_not_held_back(
    redis: Redis,
) -> None:
    store = ImageStore(redis, Settings(image_bytes_per_key=3000, conversation_ttl_seconds=60))
    first = [(png_of(1000, n), True) for n in range(2)]
    await store.put(first, owner="k1")
    # Sent again (a conversation's next turn), the same images are kept longer, not counted twice.
    await store.put(first, owner="k1")
    await store.put([(png_of(1000, 2), True)], owner="k1")
    too_much = [(png_of(1000, 3), True)]
    with pytest.raises(ApiError) as caught:
        await store.put(too_much, owner="k1")
    assert caught.value.status == 429 and caught.value.code == "image_quota_exceeded"
    assert 55 <= int(caught.value.headers["Retry-After"]) <= 60
    assert not await redis.exists(redis_keys.image(too_much[0][0].digest))  # not stored
    # Another key holds its own, even the images the first one holds.
    await store.put([*first, *too_much], owner="k2")


async def test_images_a_key_stopped_using_are_let_go(redis: Redis) -> None:
    store = ImageStore(redis, Settings(image_bytes_per_key=1500, conversation_ttl_seconds=1))
    await store.put([(png_of(1000, 0), True)], owner="k1")
    with pytest.raises(ApiError):
        await store.put([(png_of(1000, 1), True)], owner="k1")
    await asyncio.sleep(1.1)
    await store.put([(png_of(1000, 1), True)], owner="k1")
