"""OpenAI's Responses API: `POST /responses` (stateless: nothing is stored)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway.access.client_auth import require_key
from gateway.answers import battle, completions
from gateway.answers.completions import CompletionRequest
from gateway.apis.responses.render import ResponseStream, response
from gateway.apis.responses.schemas import ResponsesRequest, parse_responses_request
from gateway.http import errors
from gateway.http.services import Services, services

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
    handle = await completions.submit(
        request,
        svc,
        CompletionRequest(model=body.model, turns=body.turns(), stream=body.stream, param="input"),
    )
    job = handle.job
    head = (f"resp_{job.id}", job.model, int(job.created_at), body.instructions)
    if body.stream:
        return await completions.stream(request, svc, handle, ResponseStream(*head, job.prompt))
    events = await completions.complete(request, svc, handle)
    return Response(
        orjson.dumps(response(*head, job.prompt, events)), media_type="application/json"
    )
