"""Anthropic's Messages API: `POST /messages`, `POST /messages/count_tokens`.

Errors on these routes come out in Anthropic's shape (`gateway.http.errors.shape_for`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway.access.client_auth import require_key
from gateway.answers import battle, completions
from gateway.answers.completions import CompletionRequest
from gateway.answers.tokens import estimate_tokens
from gateway.answers.tools import contract
from gateway.apis.anthropic.render import MessageStream, message
from gateway.apis.anthropic.schemas import (
    MessagesRequest,
    parse_count_tokens_request,
    parse_messages_request,
)
from gateway.apis.requests import openapi_body
from gateway.conversations.transcript import MAX_PROMPT_CHARS, render
from gateway.fleet import aliases
from gateway.fleet.catalog_view import find_model
from gateway.http.services import Services, services
from shared.jobs import CompletionJob

router = APIRouter(dependencies=[Depends(require_key)])


@router.post("/messages", openapi_extra=openapi_body(MessagesRequest))
async def create_message(request: Request, svc: Services = Depends(services)) -> Response:
    # Read and validated by hand, so that every failure gets Anthropic's body.
    body = parse_messages_request(await request.body())
    battle.require_one(body.model, holder="A message")
    thinking = body.show_thinking
    return await completions.answer(
        request,
        svc,
        CompletionRequest(
            model=body.model,
            turns=body.turns(),
            stream=body.stream,
            tools=body.tool_use(),
            stop=body.stop_sequences or (),
            max_tokens=body.max_tokens,
            json=body.json_format,
        ),
        frames=lambda job: MessageStream(
            _message_id(job), job.model, job.prompt, show_thinking=thinking
        ),
        whole=lambda job, events: message(
            _message_id(job), job.model, job.prompt, events, show_thinking=thinking
        ),
    )


def _message_id(job: CompletionJob) -> str:
    return f"msg_{job.id}"


@router.post("/messages/count_tokens")
async def count_tokens(request: Request, svc: Services = Depends(services)) -> dict[str, int]:
    """The estimate a completion's usage gives for the same conversation as a new prompt."""
    body = parse_count_tokens_request(await request.body())
    served = await completions.catalog(svc, body.model)
    find_model(served, aliases.resolve(body.model, served, svc.settings.model_aliases))
    prompt = render(body.turns(), merge_system=svc.settings.merge_system_messages)
    tools = body.tool_use()
    rules = contract.fitted(tools.tools, MAX_PROMPT_CHARS - len(prompt)) if tools else ""
    return {"input_tokens": estimate_tokens(len(prompt) + len(rules))}
