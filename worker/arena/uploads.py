"""Images uploaded to the arena the way its page does, from inside the page (its cookies).

Three steps (captures/upload-actions.json): the server action `generateUploadUrl` gives a
presigned URL and a key, the bytes are PUT there, and `getSignedUrl` gives the URL the message
attaches. Server action ids change with every deploy of the site: they are read off the
page's own scripts (`shared.arena.page.server_action_ids`) the first time they are needed, and
again when the site no longer knows them.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, cast

from redis.asyncio import Redis

from shared import redis_keys
from shared.arena.page import action_result, server_action_ids
from shared.jobs import ImageRef
from worker.browser.page import ArenaPage, PageError

GENERATE_UPLOAD_URL = "generateUploadUrl"
GET_SIGNED_URL = "getSignedUrl"
_MARKER = "createServerReference"
#: What Next.js answers for an action id the deployed site does not have.
_UNKNOWN_ACTION = 404


class UploadFailed(Exception):
    """An image could not be uploaded to the arena."""


def file_name(image: ImageRef) -> str:
    """A plain file name for the upload: the arena keeps it in the object's key."""
    extension = mimetypes.guess_extension(image.media_type) or ".bin"
    return f"image-{image.digest[:16]}{extension}"


def attachment(key: str, media_type: str, url: str) -> dict[str, str]:
    """An `experimental_attachments` entry, as the page writes it."""
    return {"name": key, "contentType": media_type, "url": url}


def action_data(result: Any, action: str) -> Mapping[str, Any]:
    """The `data` of a server action's `{"success": true, "data": …}` result."""
    if not isinstance(result, dict) or result.get("success") is not True:
        error = result.get("error") if isinstance(result, dict) else None
        raise UploadFailed(f"{action} failed: {error or result!r:.200}")
    data = result.get("data")
    if not isinstance(data, dict):
        raise UploadFailed(f"{action} answered without data")
    return data


class Uploads:
    """Uploads a job's images through the page; remembers the action ids of each page."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._page: ArenaPage | None = None
        self._ids: dict[str, str] = {}

    async def attachments(
        self, page: ArenaPage, images: Sequence[ImageRef]
    ) -> list[dict[str, str]]:
        try:
            return [await self._upload(page, image) for image in images]
        except PageError as exc:  # a request the page could not make (network, CORS)
            raise UploadFailed(str(exc)) from None

    async def _upload(self, page: ArenaPage, image: ImageRef) -> dict[str, str]:
        data = await cast(
            Awaitable[bytes | None], self._redis.hget(redis_keys.image(image.digest), "d")
        )
        if data is None:
            raise UploadFailed("the image is no longer stored; send the request again")
        created = await self._action(
            page, GENERATE_UPLOAD_URL, [file_name(image), image.media_type]
        )
        upload_url, key = created.get("uploadUrl"), created.get("key")
        if not isinstance(upload_url, str) or not isinstance(key, str):
            raise UploadFailed(f"{GENERATE_UPLOAD_URL} gave no upload URL and key")
        status, answer = await page.put(upload_url, data, image.media_type)
        if status // 100 != 2:
            raise UploadFailed(f"the storage refused the upload: HTTP {status} {answer[:200]}")
        signed = await self._action(page, GET_SIGNED_URL, [key])
        if not isinstance(url := signed.get("url"), str):
            raise UploadFailed(f"{GET_SIGNED_URL} gave no URL")
        return attachment(key, image.media_type, url)

    async def _action(self, page: ArenaPage, name: str, args: list[Any]) -> Mapping[str, Any]:
        for fresh in (False, True):
            action_id = (await self._action_ids(page, fresh=fresh)).get(name)
            if action_id is None:
                continue
            status, body = await page.action(action_id, args)
            if status == _UNKNOWN_ACTION:
                continue  # the site was deployed again since the ids were read
            if status != 200:
                raise UploadFailed(f"{name} answered HTTP {status}")
            try:
                return action_data(action_result(body), name)
            except ValueError as exc:
                raise UploadFailed(f"{name}: {exc}") from None
        raise UploadFailed(f"the arena page has no {name} action")

    async def _action_ids(self, page: ArenaPage, *, fresh: bool) -> dict[str, str]:
        if fresh or page is not self._page:
            self._ids = server_action_ids("\n".join(await page.scripts(_MARKER)))
            self._page = page
        return self._ids
