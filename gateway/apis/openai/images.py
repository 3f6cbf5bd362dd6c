"""OpenAI's `POST /images/generations`, answered by the arena's image models.

Each of the `n` images is one arena request, run side by side. `response_format` `url` gives the
arena's own signed URL (it expires, about an hour on the real site); `b64_json` gives the bytes,
which the worker reads in the page while that URL is still valid.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import Field

from gateway.answers import completions
from gateway.answers.completions import CompletionRequest
from gateway.apis.requests import Lenient, openapi_body
from gateway.conversations.transcript import Turn
from gateway.fleet.catalog_view import Catalog, find_model
from gateway.http import errors
from gateway.http.services import Services, services
from shared.arena.catalog import Model
from shared.events import Event

router = APIRouter()

#: OpenAI's own bound on `n`.
MAX_IMAGES = 10


class ImageGenerationRequest(Lenient):
    """What the arena's image models can use: size, quality, style and user are ignored."""

    prompt: str = Field(min_length=1)
    model: str | None = None
    n: int = Field(default=1, ge=1, le=MAX_IMAGES)
    response_format: Literal["url", "b64_json"] = "url"


@router.post(
    "/images/generations",
    openapi_extra=openapi_body(ImageGenerationRequest),
)
async def generate(request: Request, svc: Services = Depends(services)) -> Response:
    body = errors.parse_body(await request.body(), ImageGenerationRequest)
    model = _image_model(await completions.catalog(svc, body.model), body.model)
    ask = CompletionRequest(
        model=model.public_name,
        turns=[Turn("user", body.prompt)],
        param="prompt",
        image_bytes=body.response_format == "b64_json",
        # n identical prompts are n new images, never a regenerate of one another.
        conversation=False,
    )
    handles = []
    try:
        for _ in range(body.n):
            handles.append(await completions.submit(request, svc, ask))
        # The workers answer side by side; reading one answer after another costs no time.
        answers = [await completions.complete(request, svc, handle) for handle in handles]
    finally:
        for handle in handles:  # the others, once one failed (a finished one is left alone)
            await handle.abandon()
    data = [item for answer in answers for item in _images(answer, body.response_format)]
    body_out = {"created": int(time.time()), "data": data}
    return Response(orjson.dumps(body_out), media_type="application/json")


def _image_model(catalog: Catalog, name: str | None) -> Model:
    """The image model asked for, else the arena's best-ranked one."""
    if name is not None:
        model = find_model(catalog, name)
        if model.modality != "image":
            raise errors.invalid(f"The model `{name}` does not generate images.", param="model")
        return model
    ranked = sorted(
        (m for m in catalog.listed() if m.modality == "image"),
        key=lambda m: m.rank if m.rank is not None else float("inf"),
    )
    if not ranked:
        raise errors.unavailable("No image model is available.", code="no_image_model")
    return ranked[0]


def _images(events: list[Event], response_format: str) -> list[dict[str, Any]]:
    images = [e for e in events if e["t"] == "image"]
    if not images:
        raise errors.ApiError(502, "The arena answered without an image.", code="upstream")
    if response_format == "url":
        return [{"url": e["url"]} for e in images]
    if any("data_b64" not in e for e in images):
        raise errors.ApiError(502, "The generated image could not be read.", code="upstream")
    return [{"b64_json": e["data_b64"]} for e in images]
