"""The job a gateway hands to a worker: one answer from the arena."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Modality = Literal["chat", "search", "image"]
Mode = Literal["direct", "battle", "side-by-side"]


class ImageInput(BaseModel):
    """An image the user sent; the worker uploads it to the arena before the request."""

    media_type: str
    data_b64: str


class CompletionJob(BaseModel):
    id: str = Field(description="Request id; also names the job's event stream.")
    attempt: int = Field(default=0, description="Bumped each time the job moves to another worker.")
    model: str = Field(description="The model's public name, as the client asked for it.")
    model_id: str = Field(description="The arena catalog id of model A.")
    model_b_id: str | None = Field(default=None, description="Model B in battle modes.")
    modality: Modality = "chat"
    mode: Mode = "direct"
    prompt: str
    images: list[ImageInput] = Field(default_factory=list)
    created_at: float = Field(description="Unix time the gateway accepted the request.")
    excluded_workers: list[str] = Field(
        default_factory=list, description="Workers that could not serve this job (rate limited)."
    )
