"""Drive the fake over real HTTP the way the arena page does, for tests without a browser."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from shared.arena.ids import uuid7

STREAM = "/nextjs-api/stream"
PAGE_HEADERS = {"content-type": "text/plain;charset=UTF-8"}


def evaluation_body(
    *,
    model_id: str | None,
    content: str,
    token: str,
    session_id: str | None = None,
    mode: str | None = "direct",
    modality: str = "chat",
    model_b_id: str | None = None,
    blind: bool = False,
    attachments: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """A create (with `mode`) or post (`mode=None`) body in the captured key order, fresh ids.

    `blind`: a battle whose models the site draws (2026-10): no model ids, both message ids.
    """
    body: dict[str, Any] = {"id": session_id or uuid7()}
    if mode is not None:
        body["mode"] = mode
    if model_id is not None:
        body["modelAId"] = model_id
    if model_b_id is not None:
        body["modelBId"] = model_b_id
    body["userMessageId"] = uuid7()
    body["modelAMessageId"] = uuid7()
    if model_b_id is not None or blind:
        body["modelBMessageId"] = uuid7()
    body["userMessage"] = {"content": content, "experimental_attachments": list(attachments)}
    body["modality"] = modality
    body["recaptchaV3Token"] = token
    return body


def lines_of(response: httpx.Response) -> list[str]:
    """A stream answer's lines, without their newlines."""
    return response.text.splitlines()


class ArenaClient:
    """One browser-like identity (its own cookie jar) talking to the fake."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.http = httpx.Client(base_url=origin, timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ArenaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def visit(self, path: str = "/") -> httpx.Response:
        """Load a page (a first visit makes this client a guest)."""
        return self.http.get(path)

    def sign_in(self, username: str, password: str = "secret") -> httpx.Response:
        return self.http.post("/login", data={"username": username, "password": password})

    def token(self, action: str = "chat_submit") -> str:
        return self.http.post("/__fake/recaptcha-token", json={"action": action}).json()["token"]

    def send(self, method: str, path: str, body: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return self.http.request(method, path, content=content, headers=PAGE_HEADERS)

    def create(
        self, model_id: str | None, content: str, **fields: Any
    ) -> tuple[dict[str, Any], httpx.Response]:
        fields.setdefault("token", self.token())
        body = evaluation_body(model_id=model_id, content=content, **fields)
        return body, self.send("POST", f"{STREAM}/create-evaluation", body)

    def post(
        self, session_id: str, model_id: str | None, content: str, **fields: Any
    ) -> tuple[dict[str, Any], httpx.Response]:
        fields.setdefault("token", self.token())
        body = evaluation_body(
            model_id=model_id, content=content, session_id=session_id, mode=None, **fields
        )
        return body, self.send("POST", f"{STREAM}/post-to-evaluation/{session_id}", body)

    def retry(
        self,
        session_id: str,
        message_id: str,
        token: str | None = None,
        action: str = "chat_submit",
    ) -> httpx.Response:
        """Regenerate a model message (`action`: the token's; 2026-10 wants `chat_retry`)."""
        path = f"{STREAM}/retry-evaluation-session-message/{session_id}/messages/{message_id}"
        return self.send("PUT", path, {"recaptchaV3Token": token or self.token(action)})

    def stop(self, session_id: str, message_id: str) -> httpx.Response:
        return self.send("POST", f"{STREAM}/stop/{session_id}/messages/{message_id}", {})

    def action(self, action_id: str, args: list[Any], page: str = "/") -> httpx.Response:
        headers = {**PAGE_HEADERS, "accept": "text/x-component", "next-action": action_id}
        return self.http.post(page, content=orjson.dumps(args), headers=headers)

    def action_result(self, name: str, args: list[Any], page: str = "/") -> Any:
        """Call a server action by name; its result is the JSON on line `1:` of the answer."""
        response = self.action(self.info()["actions"][name], args, page)
        response.raise_for_status()
        return orjson.loads(response.text.split("\n")[1].removeprefix("1:"))

    def upload(self, name: str, data: bytes, mime: str) -> dict[str, str]:
        """The site's three-step upload; returns the attachment for `experimental_attachments`."""
        target = self.action_result("generateUploadUrl", [name, mime])["data"]
        put = self.http.put(target["uploadUrl"], content=data, headers={"content-type": mime})
        put.raise_for_status()
        signed = self.action_result("getSignedUrl", [target["key"]])["data"]
        return {"name": target["key"], "contentType": mime, "url": signed["url"]}

    def scenario(self, **knobs: Any) -> dict[str, Any]:
        response = self.http.post("/__fake/scenario", json=knobs)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.http.post("/__fake/reset").raise_for_status()

    def log(self) -> dict[str, Any]:
        return self.http.get("/__fake/log").json()

    def info(self) -> dict[str, Any]:
        return self.http.get("/__fake/info").json()
