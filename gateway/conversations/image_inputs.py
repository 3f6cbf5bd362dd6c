"""Images clients send: where they come from, their bytes, and their wait in Redis for a worker.

An image arrives as a URL: a `data:` URL (OpenAI's base64 form; Anthropic's base64 blocks are
turned into one) or an http(s) URL, which the gateway fetches itself — never the browser,
which holds the arena account's cookies. A fetch is capped in size and time and, unless
`allow_private_image_urls` is set, refused for any name that resolves to a private, loopback,
link-local or otherwise non-public address. The address checked is the one connected to, so a
name cannot resolve one way for the check and another for the request.

Bytes wait in Redis under the digest of their source (`shared.storage.redis_keys.image`) for the worker that
uploads them to the arena, and stay while the conversation may need them again. What one client
key keeps there is capped (`LMB_IMAGE_BYTES_PER_KEY`): each key's images are counted with the
time they are held until, and a request that would hold more is a 429 until some expire.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import math
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Self
from urllib.parse import unquote_to_bytes

import httpx
from redis.asyncio import Redis

from gateway.access.key_limits import WINDOW_LUA
from gateway.http import errors
from shared.jobs import ImageRef
from shared.settings import Settings
from shared.storage import redis_keys

#: The largest image the arena takes; a larger one is a 413.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
#: Images one request may carry, over its whole history.
MAX_IMAGES = 10
_MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SHOWN_URL_CHARS = 100
# Magic numbers, for servers that send images as application/octet-stream.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)

Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class ImageSource:
    """An image as the client gave it: a `data:` or http(s) URL, not yet read."""

    url: str

    @classmethod
    def from_base64(cls, media_type: str, data: str) -> ImageSource:
        return cls(f"data:{media_type};base64,{data}")

    @property
    def digest(self) -> str:
        """Names the image in fingerprints and in Redis, without reading it."""
        return hashlib.sha256(self.url.encode()).hexdigest()

    @property
    def shown(self) -> str:
        """The URL as error messages quote it (data URLs are long and say nothing)."""
        if self.url.startswith("data:"):
            return "a data: URL"
        url = self.url
        return url if len(url) <= _SHOWN_URL_CHARS else url[:_SHOWN_URL_CHARS] + "…"


@dataclass(frozen=True, slots=True)
class Image:
    media_type: str
    data: bytes


def decode_data_url(url: str) -> Image:
    """The image in a `data:<media type>[;base64],<data>` URL; 400 or 413 when it is not one."""
    header, comma, payload = url.partition(",")
    if not header.startswith("data:") or not comma:
        raise errors.invalid("An image data URL must look like data:image/png;base64,<data>.")
    params = header[len("data:") :].split(";")
    media_type = params[0].strip().lower()
    if "base64" in (p.strip().lower() for p in params[1:]):
        # Base64 is 4 characters for 3 bytes: refuse the oversized before decoding them.
        if len(payload) // 4 * 3 > MAX_IMAGE_BYTES + 3:
            raise _too_large()
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise errors.invalid("An image data URL holds invalid base64.") from None
    else:
        data = unquote_to_bytes(payload)
    return _checked(media_type, data, "a data: URL")


#: IPv6 ranges never public whatever Python's registry says: IPv4-compatible (deprecated),
#: IPv4-translated (SIIT) and local-use NAT64 (RFC 8215) addresses lead into private networks.
_NEVER_PUBLIC = tuple(
    ipaddress.IPv6Network(net) for net in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48")
)
#: Well-known NAT64 (RFC 6052): the last 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: mapped, 6to4, Teredo (server and client),
    NAT64."""
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in found if v4 is not None]


def is_public(address: str) -> bool:
    """Whether an IP address is on the public internet (not private, loopback, link-local, …),
    and so is every IPv4 address it embeds (an IPv6 address may carry a private one)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(str(ip.ipv4_mapped))
        if any(ip in net for net in _NEVER_PUBLIC):
            return False
        if not all(is_public(str(v4)) for v4 in embedded_ipv4(ip)):
            return False
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, as the system resolver says."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class ImageFetcher:
    """Fetches http(s) images within the limits above (an async context: it holds a pool)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout_s: float,
        max_bytes: int = MAX_IMAGE_BYTES,
        resolver: Resolver = resolve,
    ) -> None:
        self._allow_private = allow_private
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._resolve = resolver
        # No environment proxies: the address checked must be the address connected to.
        self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.aclose()

    async def fetch(self, source: ImageSource) -> Image:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._fetch(source)
        except TimeoutError:
            raise _unreadable(source, f"no answer within {self._timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise _unreadable(source, str(exc) or type(exc).__name__) from None

    async def _fetch(self, source: ImageSource) -> Image:
        url = httpx.URL(source.url)
        for _ in range(_MAX_REDIRECTS + 1):
            if url.scheme not in ("http", "https") or not url.host:
                raise errors.invalid(
                    f"Image URLs must be http(s) or data: URLs, not {source.shown}."
                )
            address = await self._address(source, url)
            # Connect to the checked address; Host and TLS name stay the URL's own.
            request = self._client.build_request(
                "GET",
                url.copy_with(host=address),
                headers={"Host": url.netloc.decode("ascii"), "Accept": "image/*"},
                extensions={"sni_hostname": url.host} if url.scheme == "https" else {},
            )
            response = await self._client.send(request, stream=True)
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    url = url.join(response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise _unreadable(source, f"HTTP {response.status_code}")
                return await self._read(source, response)
            finally:
                await response.aclose()
        raise _unreadable(source, f"more than {_MAX_REDIRECTS} redirects")

    async def _address(self, source: ImageSource, url: httpx.URL) -> str:
        try:
            addresses = await self._resolve(
                url.host, url.port or (443 if url.scheme == "https" else 80)
            )
        except OSError as exc:
            raise _unreadable(source, f"cannot resolve {url.host}: {exc}") from None
        if not addresses:
            raise _unreadable(source, f"{url.host} has no address")
        if not self._allow_private and not all(map(is_public, addresses)):
            raise errors.invalid(
                f"The image URL {source.shown} points to a private or local address; "
                "the gateway only fetches images from public addresses.",
                code="image_url_not_allowed",
            )
        return addresses[0]

    async def _read(self, source: ImageSource, response: httpx.Response) -> Image:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._max_bytes:
            raise _too_large()
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > self._max_bytes:
                raise _too_large()
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return _checked(media_type, bytes(data), source.shown)


# KEYS: the owner's images (digest → held until, ms), their sizes (digest → bytes; field "" is
# the total). ARGV: hold ms, cap bytes, then digest and size of each image of the request.
# Returns {bytes held, ms until the oldest is let go if over the cap, else 0}.
_HOLD = (
    WINDOW_LUA
    + """
local now = clock()
local hold, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local total = tonumber(redis.call('HGET', KEYS[2], '')) or 0
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  total = total - (tonumber(redis.call('HGET', KEYS[2], gone)) or 0)
  redis.call('HDEL', KEYS[2], gone)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local adding = 0
for i = 3, #ARGV, 2 do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then adding = adding + tonumber(ARGV[i + 1]) end
end
if adding > 0 and total + adding > cap then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {total, oldest[2] and math.max(1, tonumber(oldest[2]) - now) or hold}
end
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[1], now + hold, ARGV[i])
end
redis.call('HSET', KEYS[2], '', total + adding)
redis.call('PEXPIRE', KEYS[1], hold)
redis.call('PEXPIRE', KEYS[2], hold)
return {total + adding, 0}
"""
)


class ImageStore:
    """Puts a request's images in Redis for the worker, reading only those not already there."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._ttl_s = settings.conversation_ttl_seconds
        self._hold = redis.register_script(_HOLD)

    async def put(
        self, sources: Sequence[tuple[ImageSource, bool]], *, owner: str
    ) -> list[ImageRef]:
        """References to `(source, new)` images, each stored (or kept) for `ttl_s` and counted
        against what `owner` (a key id) may hold; a 429 when that would be too much."""
        if len(sources) > MAX_IMAGES:
            raise errors.invalid(
                f"The request holds {len(sources)} images; the bridge takes at most {MAX_IMAGES}."
            )
        if not sources:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for source, _ in sources:
                pipe.hget(redis_keys.image(source.digest), "m")
                pipe.hstrlen(redis_keys.image(source.digest), "d")
                pipe.expire(redis_keys.image(source.digest), self._ttl_s)
            replies = await pipe.execute()
        known = [media.decode() if media else None for media in replies[::3]]
        sizes = dict(zip((s.digest for s, _ in sources), replies[1::3], strict=True))
        missing = {
            source.digest: source
            for (source, _), media in zip(sources, known, strict=True)
            if media is None
        }
        loaded = dict(zip(missing, await self._load(list(missing.values())), strict=True))
        sizes.update({digest: len(image.data) for digest, image in loaded.items()})
        await self._held_by(owner, sizes)
        if loaded:
            async with self._redis.pipeline(transaction=False) as pipe:
                for digest, image in loaded.items():
                    pipe.hset(
                        redis_keys.image(digest), mapping={"m": image.media_type, "d": image.data}
                    )
                    pipe.expire(redis_keys.image(digest), self._ttl_s)
                await pipe.execute()
        return [
            ImageRef(
                digest=source.digest,
                media_type=media or loaded[source.digest].media_type,
                new=new,
            )
            for (source, new), media in zip(sources, known, strict=True)
        ]

    async def _held_by(self, owner: str, sizes: dict[str, int]) -> None:
        """Count `sizes` (digest → bytes) as held by `owner` for the next `ttl_s`, or a 429."""
        cap = self._settings.image_bytes_per_key
        held, wait_ms = await self._hold(
            keys=[redis_keys.images_held(owner), redis_keys.images_held(owner, sizes=True)],
            args=[self._ttl_s * 1000, cap, *(x for pair in sizes.items() for x in pair)],
        )
        if wait_ms:
            wait_s = math.ceil(int(wait_ms) / 1000)
            raise errors.ApiError(
                429,
                f"This API key already keeps {int(held) // 2**20} MB of images for its"
                f" conversations, and may keep {cap // 2**20} MB: older ones are let go after"
                f" {self._ttl_s} s unused. Try again in {wait_s} s.",
                code="image_quota_exceeded",
                headers={"Retry-After": str(wait_s)},
            )

    async def _load(self, sources: list[ImageSource]) -> list[Image]:
        """The images of `sources`: data URLs decoded here, the others fetched together."""
        remote = [s for s in sources if not s.url.startswith("data:")]
        fetched: dict[str, Image] = {}
        if remote:
            settings = self._settings
            async with ImageFetcher(
                allow_private=settings.allow_private_image_urls,
                timeout_s=settings.image_fetch_timeout_seconds,
            ) as fetcher:
                images = await asyncio.gather(*(fetcher.fetch(s) for s in remote))
            fetched = {s.url: image for s, image in zip(remote, images, strict=True)}
        return [fetched.get(s.url) or decode_data_url(s.url) for s in sources]


def _checked(media_type: str, data: bytes, shown: str) -> Image:
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large()
    if not media_type.startswith("image/"):
        media_type = next((m for magic, m in _SIGNATURES if data.startswith(magic)), "")
        if not media_type and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            media_type = "image/webp"
    if not media_type:
        raise errors.invalid(f"The image at {shown} is not an image the bridge recognises.")
    if not data:
        raise errors.invalid(f"The image at {shown} is empty.")
    return Image(media_type, data)


def _too_large() -> errors.ApiError:
    return errors.ApiError(
        413,
        f"An image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB, the most the arena takes.",
        code="image_too_large",
    )


def _unreadable(source: ImageSource, reason: str) -> errors.ApiError:
    return errors.invalid(
        f"Could not fetch the image at {source.shown}: {reason}.", code="image_fetch_failed"
    )
