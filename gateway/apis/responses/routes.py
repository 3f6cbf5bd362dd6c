"""OpenAI's Responses API: `POST /responses` (stateless: nothing is stored)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway.access.client_auth import require_key
from gateway.answers import battle, completions
from gateway.answers.completions import CompletionRequest
from gateway.apis.requests import openapi_body
from gateway.apis.responses.render import ResponseStream, response
from gateway.apis.responses.schemas import ResponsesRequest, parse_responses_request
from gateway.http.services import Services, services
from shared.jobs import CompletionJob

router = APIRouter(dependencies=[Depends(require_key)])


@router.post("/responses", openapi_extra=openapi_body(ResponsesRequest))
async def create_response(request: Request, svc: Services = Depends(services)) -> Response:
    # Read and validated by hand, so that every failure gets OpenAI's body and a precise param.
    body = parse_responses_request(await request.body())
    battle.require_one(body.model, holder="A response")
    instructions = body.instructions
    return await completions.answer(
        request,
        svc,
        CompletionRequest(
            model=body.model,
            turns=body.turns(),
            stream=body.stream,
            param="input",
            tools=body.tool_use(),
            max_tokens=body.max_output_tokens,
        ),
        frames=lambda job: ResponseStream(*_head(job, instructions), job.prompt),
        whole=lambda job, events: response(*_head(job, instructions), job.prompt, events),
    )


def _head(job: CompletionJob, instructions: str | None) -> tuple[str, str, int, str | None]:
    """What a response says of its request: id, model, creation time, instructions."""
    return f"resp_{job.id}", job.model, int(job.created_at), instructions
