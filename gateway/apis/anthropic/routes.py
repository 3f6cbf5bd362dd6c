"""Anthropic's Messages API: `POST /messages`, `POST /messages/count_tokens`.

Errors on these routes come out in Anthropic's shape (`gateway.http.errors.shape_for`).
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway.access.client_auth import require_key
from gateway.access.usage import estimate_tokens
from gateway.answers import battle, completions
from gateway.answers.catalog_view import find_model
from gateway.answers.completions import CompletionRequest
from gateway.answers.transcript import render
from gateway.apis.anthropic.render import MessageStream, message
from gateway.apis.anthropic.schemas import (
    MessagesRequest,
    parse_count_tokens_request,
    parse_messages_request,
)
from gateway.http import errors
from gateway.http.services import Services, services

router = APIRouter(dependencies=[Depends(require_key)])

_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": MessagesRequest.model_json_schema()}},
    }
}


@router.post("/messages", openapi_extra=_REQUEST_BODY)
async def create_message(request: Request, svc: Services = Depends(services)) -> Response:
    # Read and validated by hand, so that every failure gets Anthropic's body.
    body = parse_messages_request(await request.body())
    if battle.is_pair(body.model):
        raise errors.invalid(
            "A message holds one answer: ask /v1/chat/completions for two models at once.",
            param="model",
        )
    handle = await completions.submit(
        request, svc, CompletionRequest(model=body.model, turns=body.turns(), stream=body.stream)
    )
    job = handle.job
    message_id = f"msg_{job.id}"
    if body.stream:
        frames = MessageStream(message_id, job.model, job.prompt, show_thinking=body.show_thinking)
        return await completions.stream(request, svc, handle, frames)
    events = await completions.complete(request, svc, handle)
    answer = message(message_id, job.model, job.prompt, events, show_thinking=body.show_thinking)
    return Response(orjson.dumps(answer), media_type="application/json")


@router.post("/messages/count_tokens")
async def count_tokens(request: Request, svc: Services = Depends(services)) -> dict[str, int]:
    """The estimate a completion's usage gives for the same conversation as a new prompt."""
    body = parse_count_tokens_request(await request.body())
    find_model(await completions.catalog(svc, body.model), body.model)
    prompt = render(body.turns(), merge_system=svc.settings.merge_system_messages)
    return {"input_tokens": estimate_tokens(len(prompt))}
