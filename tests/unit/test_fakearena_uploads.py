"""Uploads through server actions, the presigned object store, and generated images."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from tests.fakearena import png
from tests.fakearena.catalog import captured_models
from tests.fakearena.client import ArenaClient, lines_of
from tests.support.procs import fake_arena

MODELS = {entry["publicName"]: entry["id"] for entry in captured_models()}
IMAGE = MODELS["gemini-3-pro-image-preview (nano-banana-pro)"]
VISION = MODELS["gemini-3-pro"]
REFERENCE = re.compile(r'createServerReference\)\("([0-9a-f]{42})",[^"]*"(\w+)"\)')


def test_the_page_chunks_name_the_server_actions(client: ArenaClient) -> None:
    page = client.visit().text
    sources = re.findall(r'<script src="(/_next/static/chunks/[^"]+)"', page)
    found = {}
    for source in sources:
        response = client.http.get(source)
        assert response.headers["content-type"].startswith("application/javascript")
        found.update({name: action_id for action_id, name in REFERENCE.findall(response.text)})
    assert found == client.info()["actions"]
    assert set(found) == {"updateTouConsent", "generateUploadUrl", "getSignedUrl", "getHistory"}


def test_action_ids_change_when_the_fake_restarts(tmp_path: Path, client: ArenaClient) -> None:
    with fake_arena(tmp_path) as other_origin, ArenaClient(other_origin) as other:
        assert set(other.info()["actions"].values()).isdisjoint(client.info()["actions"].values())


def test_action_ids_survive_a_reset(client: ArenaClient) -> None:
    before = client.info()["actions"]
    client.reset()
    assert client.info()["actions"] == before


def test_upload_round_trip(client: ArenaClient) -> None:
    data = bytes(range(256)) * 40
    target = client.action_result("generateUploadUrl", ["photo one.jpg", "image/jpeg"])["data"]
    assert re.fullmatch(r"[0-9a-f-]{36}/\d{13}-photo one\.jpg", target["key"])
    assert urlsplit(target["uploadUrl"]).netloc == urlsplit(client.origin).netloc
    assert "x-id=PutObject" in target["uploadUrl"]
    assert (
        client.http.put(
            target["uploadUrl"], content=data, headers={"content-type": "image/jpeg"}
        ).status_code
        == 200
    )
    url = client.action_result("getSignedUrl", [target["key"]])["data"]["url"]
    fetched = client.http.get(url)
    assert (fetched.status_code, fetched.content, fetched.headers["content-type"]) == (
        200,
        data,
        "image/jpeg",
    )
    puts = [r for r in client.log()["requests"] if r["method"] == "PUT"]
    assert puts[-1]["body_bytes"] == len(data) and puts[-1]["body"] is None


def test_the_upload_url_is_only_for_put_and_the_signed_url_only_for_get(
    client: ArenaClient,
) -> None:
    target = client.action_result("generateUploadUrl", ["a.png", "image/png"])["data"]
    assert client.http.get(target["uploadUrl"]).status_code == 403
    client.http.put(target["uploadUrl"], content=b"x")
    url = client.action_result("getSignedUrl", [target["key"]])["data"]["url"]
    assert client.http.put(url, content=b"overwrite").status_code == 403
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    response = client.http.get(tampered)
    assert response.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in response.text


def test_signed_urls_expire(client: ArenaClient) -> None:
    client.scenario(signed_url_seconds=1)
    attachment = client.upload("a.png", b"x", "image/png")
    time.sleep(2.1)
    response = client.http.get(attachment["url"])
    assert response.status_code == 403 and "<Code>AccessDenied</Code>" in response.text
    _, streamed = client.create(VISION, "too late", attachments=[attachment])
    assert streamed.status_code == 400


def test_missing_object(client: ArenaClient) -> None:
    url = client.action_result("getSignedUrl", ["nobody/uploaded.png"])["data"]["url"]
    response = client.http.get(url)
    assert response.status_code == 404 and "<Code>NoSuchKey</Code>" in response.text


def test_actions_answer_rsc_and_refuse_bad_calls(client: ArenaClient) -> None:
    actions = client.info()["actions"]
    response = client.action(actions["updateTouConsent"], [])
    assert response.text.startswith('0:{"a":"$@1","f":"","b":"')
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+00",
        orjson.loads(response.text.split("\n")[1][2:])["data"]["touConsentTimestamp"],
    )
    bad = client.action(actions["generateUploadUrl"], ["only-a-name"])
    assert bad.text.split("\n")[1] == '1:{"success":false,"error":"Invalid arguments"}'
    unknown = client.action("40" + "0" * 40, [])
    assert (unknown.status_code, unknown.text) == (404, "Server action not found.")
    logged = client.log()["requests"][-1]
    assert logged["next_action"] == "40" + "0" * 40 and logged["body"] == []


def test_image_models_answer_with_a_png_on_the_fake(client: ArenaClient) -> None:
    body, response = client.create(IMAGE, "a cat", modality="image")
    served = lines_of(response)
    assert served[-1] == 'ad:{"finishReason":"stop"}'
    (image,) = orjson.loads(served[0].removeprefix("a2:"))
    assert image["type"] == "image" and image["mimeType"] == "image/png"
    url = urlsplit(image["image"])
    assert url.netloc == urlsplit(client.origin).netloc
    assert (
        url.path.endswith(f"-{body['modelAMessageId']}.png") and "X-Amz-Expires=3600" in url.query
    )
    fetched = client.http.get(image["image"])
    assert fetched.headers["content-type"] == "image/png"
    assert fetched.content == png.image_for("a cat")


def test_vision_input_is_acknowledged_in_the_answer(client: ArenaClient) -> None:
    attachment = client.upload("scan.jpeg", b"\xff\xd8\xff" * 10, "image/jpeg")
    _, response = client.create(VISION, "what does this say", attachments=[attachment])
    assert response.status_code == 200
    text = client.log()["streams"][-1]["text"]["a"]
    assert (
        text
        == "Turn 1 of «what does this say» (gemini-3-pro) [image/jpeg, 30 bytes]: what does this say"
    )
    turn = client.log()["sessions"][-1]["turns"][0]
    assert turn["attachments"] == [attachment]
