"""OpenAI's API: `GET /models`, `GET /models/{model}`, `POST /chat/completions`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway.access.client_auth import require_key
from gateway.answers import battle, completions
from gateway.answers.completions import CompletionRequest
from gateway.apis.openai import images
from gateway.apis.openai.render import ChunkStream, completion
from gateway.apis.openai.schemas import (
    ChatCompletionRequest,
    parse_chat_request,
    turns_from_messages,
)
from gateway.apis.requests import openapi_body
from gateway.fleet import aliases
from gateway.fleet.catalog_view import Catalog, find_model
from gateway.http import errors
from gateway.http.services import Services, services
from shared.arena.catalog import Model
from shared.jobs import CompletionJob

router = APIRouter(dependencies=[Depends(require_key)])
router.include_router(images.router)


@router.get("/models")
async def list_models(svc: Services = Depends(services)) -> dict[str, Any]:
    catalog = await svc.catalog.get()
    if catalog is None:
        return {"object": "list", "data": []}
    models = [_model_object(m, catalog) for m in catalog.listed()]
    for alias, model in aliases.listed(catalog, svc.settings.model_aliases):
        models.append(_model_object(model, catalog, alias))
    return {"object": "list", "data": models}


@router.get("/models/{name:path}")
async def retrieve_model(name: str, svc: Services = Depends(services)) -> dict[str, Any]:
    catalog = await completions.catalog(svc, name)
    model = find_model(catalog, aliases.resolve(name, catalog, svc.settings.model_aliases))
    return _model_object(model, catalog, name)


@router.post("/chat/completions", openapi_extra=openapi_body(ChatCompletionRequest))
async def chat_completions(request: Request, svc: Services = Depends(services)) -> Response:
    # Read and validated by hand, so that every failure gets OpenAI's body and a precise param.
    body = parse_chat_request(await request.body())
    if body.n is not None and body.n > 1:
        raise errors.unprocessable(
            "Only n=1 is supported: the arena gives one answer per request "
            "(model `battle` or `side-by-side:<a>,<b>` gives two).",
            param="n",
        )
    # A battle answers as two choices, each with its model's name where the arena shows it.
    names = battle.shown_names(body.model) if battle.is_pair(body.model) else None
    tools = body.tool_use()
    if names is not None and tools is not None:
        raise errors.invalid("Tools are for one model: a battle cannot call them.", param="tools")
    include_usage = body.include_usage
    return await completions.answer(
        request,
        svc,
        CompletionRequest(
            model=body.model,
            turns=turns_from_messages(body.messages),
            stream=body.stream,
            tools=tools,
            # A battle's two answers come as the arena gives them.
            stop=body.stops if names is None else (),
            max_tokens=(body.max_completion_tokens or body.max_tokens) if names is None else None,
            json=body.json_format if names is None else None,
        ),
        frames=lambda job: ChunkStream(
            *_head(job), job.prompt, include_usage=include_usage, names=names
        ),
        whole=lambda job, events: completion(*_head(job), job.prompt, events, names=names),
    )


def _head(job: CompletionJob) -> tuple[str, str, int]:
    """What a completion says of its request: id, model, creation time."""
    return f"chatcmpl-{job.id}", job.model, int(job.created_at)


def _model_object(model: Model, catalog: Catalog, name: str | None = None) -> dict[str, Any]:
    """`model` as OpenAI's model object, under `name` when asked by another (an alias)."""
    return {
        "id": name or model.public_name,
        "object": "model",
        "created": int(catalog.updated_at),
        "owned_by": model.organization or "anonymous",
    }
