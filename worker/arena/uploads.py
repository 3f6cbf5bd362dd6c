"""Images uploaded to the arena the way its page does, from inside the page (its cookies).

Three steps (captures/upload-actions.json): the server action `generateUploadUrl` gives a
presigned URL and a key, the bytes are PUT there, and `getSignedUrl` gives the URL the message
attaches (`worker.arena.actions` finds the actions' ids).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, cast

from redis.asyncio import Redis

from shared.arena.site import GENERATE_UPLOAD_URL, GET_SIGNED_URL
from shared.jobs import ImageRef
from shared.storage import redis_keys
from worker.arena.actions import ActionFailed, ServerActions
from worker.browser.page import ArenaPage, PageError


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
    """Uploads a job's images through the page."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._actions = ServerActions()

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
        try:
            return action_data(await self._actions.run(page, name, args), name)
        except ActionFailed as exc:
            raise UploadFailed(str(exc)) from None
