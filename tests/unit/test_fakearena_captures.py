"""Replay every capture against the fake: a request shaped like the captured one gets an answer
in the captured format (status, header names, line codes), and the captured catalog comes back."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import httpx
import orjson
import pytest

from shared.arena.ids import uuid7
from tests.fakearena.catalog import CAPTURES, captured_models
from tests.fakearena.client import ArenaClient, lines_of

PUSH = re.compile(r'self\.__next_f\.push\(\[1,("(?:[^"\\]|\\.)*")\]\)')


def capture(name: str) -> dict[str, Any]:
    return orjson.loads((CAPTURES / name).read_bytes())


def fresh(body: dict[str, Any], token: str, **changes: Any) -> dict[str, Any]:
    """The captured body with new ids and a real token, key order kept."""
    out = dict(body)
    for key in ("id", "userMessageId", "modelAMessageId", "modelBMessageId"):
        if key in out:
            out[key] = uuid7()
    out["recaptchaV3Token"] = token
    out.update(changes)
    return out


def runs(lines: list[str]) -> list[str]:
    """Line codes with repeats collapsed: the shape of an answer."""
    return [code for code, _ in itertools.groupby(line.split(":", 1)[0] for line in lines)]


def header_names(pairs: list[list[str]]) -> list[str]:
    return [name for name, _ in pairs]


def assert_like_capture(response: httpx.Response, captured: dict[str, Any]) -> None:
    expected = captured["response"]
    assert response.status_code == expected["status"]
    served = [
        name for name in response.headers if name not in ("date", "server", "transfer-encoding")
    ]
    names = header_names(expected["headers"])
    # the captured headers, in the captured order (later captures carry the extra ratelimit-*)
    assert [name for name in served if name in names] == names
    for name, value in expected["headers"]:
        if name in (
            "content-type",
            "access-control-allow-origin",
            "cache-control",
            "x-matched-path",
        ):
            assert response.headers[name] == value


def result_of(response: httpx.Response) -> Any:
    """A server action's result: the JSON on line `1:` of its answer."""
    return orjson.loads(response.text.split("\n")[1].removeprefix("1:"))


@pytest.mark.parametrize("name", ["new.json", "thinking.json", "image.json"])
def test_first_turn_captures(client: ArenaClient, name: str) -> None:
    captured = capture(name)
    request = captured["request"]
    body = fresh(request["body"], client.token())
    response = client.send(request["method"], request["path"], body)
    assert_like_capture(response, captured)
    assert runs(lines_of(response)) == runs(captured["response"]["body"].splitlines())


def test_search_capture(client: ArenaClient) -> None:
    captured = capture("search.json")
    body = fresh(captured["request"]["body"], client.token())
    response = client.send("POST", captured["request"]["path"], body)
    assert_like_capture(response, captured)
    served, recorded = lines_of(response), captured["response"]["body"].splitlines()
    assert runs(served)[:4] == runs(recorded)[:4] == ["a0", "ac", "a0", "ac"]
    assert runs(served)[-2:] == runs(recorded)[-2:] == ["ac", "ad"]
    assert served[-1] == recorded[-1]


def test_followup_capture(client: ArenaClient) -> None:
    first = fresh(capture("new.json")["request"]["body"], client.token())
    assert client.send("POST", "/nextjs-api/stream/create-evaluation", first).status_code == 200
    captured = capture("followup.json")
    body = fresh(captured["request"]["body"], client.token(), id=first["id"])
    response = client.send("POST", f"/nextjs-api/stream/post-to-evaluation/{first['id']}", body)
    assert_like_capture(response, captured)
    assert runs(lines_of(response)) == runs(captured["response"]["body"].splitlines())
    assert client.log()["requests"][-1]["path"].endswith(first["id"])


def test_retry_capture(client: ArenaClient) -> None:
    first = fresh(capture("new.json")["request"]["body"], client.token())
    client.send("POST", "/nextjs-api/stream/create-evaluation", first)
    captured = capture("retry.json")
    path = (
        "/nextjs-api/stream/retry-evaluation-session-message/"
        f"{first['id']}/messages/{first['modelAMessageId']}"
    )
    response = client.send("PUT", path, {"recaptchaV3Token": client.token()})
    assert_like_capture(response, captured)
    assert runs(lines_of(response)) == runs(captured["response"]["body"].splitlines())


def test_upload_capture(client: ArenaClient) -> None:
    captured = capture("upload.json")
    attachment = client.upload("Whisk.jpeg", b"\xff\xd8\xff fake jpeg", "image/jpeg")
    message = {"content": "what does this say", "experimental_attachments": [attachment]}
    body = fresh(captured["request"]["body"], client.token(), userMessage=message)
    response = client.send("POST", captured["request"]["path"], body)
    assert_like_capture(response, captured)
    assert runs(lines_of(response)) == runs(captured["response"]["body"].splitlines())


def test_upload_actions_capture(client: ArenaClient) -> None:
    tou, generate, put, sign, history = capture("upload-actions.json")["steps"]
    actions = client.info()["actions"]
    page = "/?mode=direct&chat-modality=image"
    answers = [
        client.action(actions["updateTouConsent"], [], page),
        client.action(actions["generateUploadUrl"], ["Whisk.jpeg", "image/jpeg"], page),
    ]
    uploaded = result_of(answers[1])["data"]
    stored = client.http.put(
        uploaded["uploadUrl"], content=b"jpeg", headers={"content-type": "image/jpeg"}
    )
    assert stored.status_code == put["response"]["status"]
    answers.append(client.action(actions["getSignedUrl"], [uploaded["key"]], page))
    answers.append(client.action(actions["getHistory"], [None], f"/c/{uuid7()}"))
    for step, response in zip((tou, generate, sign, history), answers, strict=True):
        expected = step["response"]
        assert response.status_code == expected["status"]
        for name, value in expected["headers"]:
            assert response.headers[name] == value
        served, recorded = result_of(response), orjson.loads(expected["body_line_1"][2:])
        assert served["success"] is recorded["success"] is True
        assert served["data"].keys() == recorded["data"].keys()
    assert client.http.get(result_of(answers[2])["data"]["url"]).content == b"jpeg"


def test_rate_limited_capture(client: ArenaClient) -> None:
    captured = capture("rate-limited-429.json")
    client.scenario(failures=[{"kind": "rate_limit_429", "endpoint": "create", "retry_after": 0}])
    body = fresh(captured["request"]["body"], client.token())
    response = client.send("POST", captured["request"]["path"], body)
    expected = captured["response"]
    assert response.status_code == 429
    assert response.text == expected["body"]
    names = header_names(expected["headers"])
    assert [name for name in response.headers if name in names] == names
    for name, value in expected["headers"]:
        assert response.headers[name] == value


def test_captured_catalog_is_served_and_parses_back_identical(client: ArenaClient) -> None:
    html = client.visit("/?mode=direct").text
    rsc = "".join(orjson.loads(literal) for literal in PUSH.findall(html))
    row = next(line for line in rsc.split("\n") if '"initialModels":' in line)
    recorded_row = (CAPTURES / "rsc-line-with-initialModels.txt").read_text().split("\n")[0]
    assert row.startswith(recorded_row)
    start = row.index('"initialModels":') + len('"initialModels":')
    models, _ = json.JSONDecoder().raw_decode(row[start:])
    assert models == list(captured_models())
    assert '"initialModelAId":"019a98f7-afcd-779f-8dcb-856cc3b3f078"' in row


def test_catalog_override_is_served(client: ArenaClient) -> None:
    entry = {
        "id": "m1",
        "publicName": "tiny",
        "capabilities": {"outputCapabilities": {"text": True}},
    }
    client.scenario(catalog=[entry])
    rsc = "".join(orjson.loads(s) for s in PUSH.findall(client.visit("/").text))
    assert '"initialModels":[{"id":"m1","publicName":"tiny"' in rsc
