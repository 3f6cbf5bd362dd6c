"""OpenAI's Responses API: `POST /responses`; answers are kept for `previous_response_id`."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.responses import PlainTextResponse, Response

from gateway.access.caller import caller
from gateway.access.client_auth import require_key
from gateway.answers import battle, completions
from gateway.answers.completions import CompletionRequest
from gateway.apis.requests import openapi_body
from gateway.apis.responses.render import ResponseStream, response
from gateway.apis.responses.schemas import ResponsesRequest, parse_responses_request
from gateway.apis.responses.stored import StoredResponses
from gateway.conversations.transcript import Turn
from gateway.http.services import Services, services
from shared.jobs import CompletionJob

router = APIRouter(dependencies=[Depends(require_key)])
#: Answers nothing but the refusal below: no key is needed to be told so.
websockets = APIRouter()


@websockets.websocket("/responses")
async def refuse_websocket(websocket: WebSocket) -> None:
    """Responses over a WebSocket are not served: 426 sends a client (Codex's OpenAI provider
    tries it first) to HTTP at once."""
    refusal = PlainTextResponse("Use POST /v1/responses over HTTP.", status_code=426)
    await websocket.send_denial_response(refusal)


@router.post("/responses", openapi_extra=openapi_body(ResponsesRequest))
async def create_response(request: Request, svc: Services = Depends(services)) -> Response:
    # Read and validated by hand, so that every failure gets OpenAI's body and a precise param.
    body = parse_responses_request(await request.body())
    battle.require_one(body.model, holder="A response")
    instructions = body.instructions
    key = caller(request).key
    stored = StoredResponses(
        svc.redis,
        client=key.id if key is not None else None,
        ttl_s=svc.settings.conversation_ttl_seconds,
    )
    earlier = []
    if body.previous_response_id is not None:
        earlier = await stored.turns(body.previous_response_id)
    turns = body.turns(earlier)

    async def keep(job: CompletionJob, answer: Turn) -> None:
        if body.store:  # the call ids as the client saw them
            calls = tuple(dataclasses.replace(c, id=f"call_{c.id}") for c in answer.calls)
            answered = dataclasses.replace(answer, calls=calls)
            await stored.keep(_head(job, None)[0], [*turns, answered])

    return await completions.answer(
        request,
        svc,
        CompletionRequest(
            model=body.model,
            turns=turns,
            stream=body.stream,
            param="input",
            tools=body.tool_use(),
            max_tokens=body.max_output_tokens,
            json=body.json_format,
        ),
        frames=lambda job: ResponseStream(*_head(job, instructions), job.prompt),
        whole=lambda job, events: response(*_head(job, instructions), job.prompt, events),
        keep=keep,
    )


def _head(job: CompletionJob, instructions: str | None) -> tuple[str, str, int, str | None]:
    """What a response says of its request: id, model, creation time, instructions."""
    return f"resp_{job.id}", job.model, int(job.created_at), instructions
