"""The job a gateway hands to a worker: one answer from the arena."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.arena.catalog import Modality
from shared.threads import Remember, Thread

Mode = Literal["direct", "battle", "side-by-side"]
#: A job moves to another worker (a new attempt) at most this often: checks, sign-in gates, lost
#: browsers and workers, rate limits.
MAX_ATTEMPTS = 5

#: create-evaluation (a new arena session), post-to-evaluation (a new message in a session the
#: worker holds) or retry-evaluation-session-message (regenerate a session's last answer).
Action = Literal["create", "post", "retry"]


class ImageRef(BaseModel):
    """An image the user sent, by digest: its bytes wait in Redis (`shared.storage.redis_keys.image`).

    Images travel beside the job, not in it, so that a conversation's images are stored once
    however many turns (and hand-offs) refer to them.
    """

    digest: str
    media_type: str
    #: Sent with this turn's message; the others belong to earlier turns of the conversation
    #: and are only uploaded when the conversation has to start a new arena session.
    new: bool = True


class CompletionJob(BaseModel):
    id: str = Field(description="Request id; also names the job's event stream.")
    attempt: int = Field(default=0, description="Bumped each time the job moves to another worker.")
    model: str = Field(description="The model's public name, as the client asked for it.")
    model_id: str = Field(description="The arena catalog id of model A.")
    model_b_id: str | None = Field(default=None, description="Model B in battle modes.")
    modality: Modality = "chat"
    mode: Mode = "direct"
    action: Action = "create"
    thread: Thread | None = Field(default=None, description="post and retry: the session.")
    prompt: str = Field(description="The whole conversation as one message, for a new session.")
    message: str | None = Field(
        default=None, description="post: only the new message (the arena keeps the thread)."
    )
    images: list[ImageRef] = Field(default_factory=list)
    remember: Remember | None = Field(
        default=None, description="Record the answer's thread, for the conversation's next turn."
    )
    fetch_images: bool = Field(
        default=False, description="Fetch generated images' bytes while their URLs are valid."
    )
    created_at: float = Field(description="Unix time the gateway accepted the request.")
    excluded_workers: list[str] = Field(
        default_factory=list, description="Workers that could not serve this job (rate limited)."
    )
    refused_by: list[str] = Field(
        default_factory=list,
        description="Workers whose account refused this prompt (`429 prompt failed`): it moves"
        " to one other account, never back to them.",
    )

    @property
    def arena_models(self) -> list[str]:
        """The arena ids of the models it asks: an account takes it only if it has them all."""
        return [self.model_id, *([self.model_b_id] if self.model_b_id is not None else [])]

    def as_new_session(self) -> CompletionJob:
        """The same answer asked of a new session carrying the whole conversation.

        For a post or retry the arena refused (the session is gone or not this account's).
        """
        return self.model_copy(
            update={
                "action": "create",
                "thread": None,
                "message": None,
                "images": [image.model_copy(update={"new": True}) for image in self.images],
            }
        )

    def sent_images(self) -> list[ImageRef]:
        """The images the arena request attaches (a retry sends no message, so none)."""
        if self.action == "retry":
            return []
        return self.images if self.action == "create" else [i for i in self.images if i.new]
