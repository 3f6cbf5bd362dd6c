"""OpenAI's Responses API: `POST /responses` (stateless: nothing is stored)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway import battle, completions, errors
from gateway.auth import require_key
from gateway.completions import CompletionRequest
from gateway.responses_format import ResponseStream, response
from gateway.responses_schemas import ResponsesRequest, parse_responses_request
from gateway.services import Services, services

router = APIRouter(dependencies=[Depends(require_key)])

_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ResponsesRequest.model_json_schema()}},
    }
}


@router.post("/responses", openapi_extra=_REQUEST_BODY)
async def create_response(request: Request, svc: Services = Depends(services)) -> Response:
    # Read and validated by hand, so that every failure gets OpenAI's body and a precise param.
    body = parse_responses_request(await request.body())
    if battle.is_pair(body.model):
        raise errors.invalid(
            "A response holds one answer: ask /v1/chat/completions for two models at once.",
            param="model",
        )
    relay = await completions.submit(
        request,
        svc,
        CompletionRequest(model=body.model, turns=body.turns(), stream=body.stream, param="input"),
    )
    job = relay.job
    head = (f"resp_{job.id}", job.model, int(job.created_at), body.instructions)
    if body.stream:
        return await completions.stream(request, svc, relay, ResponseStream(*head, job.prompt))
    events = await completions.complete(request, svc, relay)
    return Response(
        orjson.dumps(response(*head, job.prompt, events)), media_type="application/json"
    )
