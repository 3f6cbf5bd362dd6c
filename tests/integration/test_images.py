"""Images through the whole bridge: sent to vision models, made by image models.

openai SDK → gateway → Redis/arq → browser worker → the fake arena, every process real. An image
sent in is uploaded by the worker through the arena page's server actions, which the fake logs.
Sending and making images is tried on both versions of the arena (`each_site`).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

from shared.arena.site import CATALOG_PATH
from tests.fakearena.png import image_for
from tests.fakearena.scenario import Site
from tests.support.sites import DEFAULT, MODELS, SITES, mode_refusal, on_site
from tests.support.stack import Stack, running, unique

pytestmark = pytest.mark.browser

VISION = DEFAULT.chat
TEXT_ONLY = DEFAULT.text_only
PICTURE = image_for("a picture to look at")


class _Pictures(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.send_header("content-length", str(len(PICTURE)))
        self.end_headers()
        self.wfile.write(PICTURE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pictures() -> Iterator[str]:
    """A local web server with a picture on it (the gateway is told it may fetch from loopback)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Pictures)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/picture.png"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running(
        tmp_path_factory.mktemp("images"),
        "img-1",
        gateway_env={"LMB_ALLOW_PRIVATE_IMAGE_URLS": "true"},
    ) as stack:
        yield stack


@pytest.fixture(params=SITES)
def each_site(request: pytest.FixtureRequest) -> tuple[Stack, Site]:
    return on_site(request)


@pytest.fixture
def since(stack: Stack) -> int:
    return len(stack.arena_log()["requests"])


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def looking_at(prompt: str, url: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


def requests_since(stack: Stack, since: int) -> list[dict]:
    """What the worker asked of the arena since `since`, but minting reCAPTCHA tokens (the pool
    refills in the background), reading the catalog (in the background too), requests refused
    for a token (retried with a new one) and creates refused for their mode (sent again in the
    other one)."""
    return [
        r
        for r in stack.arena_log()["requests"][since:]
        if r["status"] != 403
        and not r["path"].startswith(("/recaptcha/", CATALOG_PATH))
        and not mode_refusal(r)
    ]


@pytest.mark.parametrize("source", ["data", "http"])
@pytest.mark.parametrize("stream", [False, True])
def test_an_image_is_uploaded_through_the_pages_actions_and_attached(
    each_site: tuple[Stack, Site], pictures: str, source: str, stream: bool
) -> None:
    stack, site = each_site
    since = len(stack.arena_log()["requests"])
    vision = MODELS[site].chat
    prompt = unique("what does this show?")
    messages = looking_at(prompt, data_url(PICTURE) if source == "data" else pictures)
    if stream:
        chunks = stack.openai().chat.completions.create(
            model=vision, messages=messages, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        text = (
            stack.openai()
            .chat.completions.create(model=vision, messages=messages)
            .choices[0]
            .message.content
        ) or ""
    # The fake arena's answer names each attachment it received, with its size.
    assert text == f"Turn 1 of «{prompt}» ({vision}) [image/png, {len(PICTURE)} bytes]: {prompt}"

    requests = requests_since(stack, since)
    actions = dict(stack.arena("GET", "info").json()["actions"])
    steps = [
        next(k for k, v in actions.items() if v == r["next_action"])
        if r["next_action"]
        else r["method"]
        for r in requests
        if r["next_action"] or r["path"].startswith("/r2/")
    ]
    assert steps == ["generateUploadUrl", "PUT", "getSignedUrl"]
    (create,) = [r for r in requests if r["path"].endswith("/create-evaluation")]
    (attachment,) = create["body"]["userMessage"]["experimental_attachments"]
    assert attachment["contentType"] == "image/png" and attachment["url"].startswith(
        stack.arena_url
    )
    assert create["body"]["userMessage"]["content"] == prompt


def test_an_image_for_a_model_without_image_input_is_a_400(stack: Stack, since: int) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        stack.openai().chat.completions.create(
            model=TEXT_ONLY, messages=looking_at("hi", data_url(PICTURE))
        )
    assert "does not take image input" in caught.value.body["message"]
    assert requests_since(stack, since) == []


def test_an_image_over_10_mb_is_a_413(stack: Stack, since: int) -> None:
    huge = data_url(b"\x89PNG\r\n\x1a\n" + bytes(10 * 1024 * 1024))
    with pytest.raises(openai.APIStatusError) as caught:
        stack.openai().chat.completions.create(model=VISION, messages=looking_at("hi", huge))
    assert caught.value.status_code == 413 and "10 MB" in caught.value.body["message"]
    assert requests_since(stack, since) == []


def test_an_image_model_answers_in_chat_with_markdown_and_an_images_list(
    each_site: tuple[Stack, Site],
) -> None:
    stack, site = each_site
    image_model = MODELS[site].image
    prompt = unique("a red fox")
    answer = stack.openai().chat.completions.create(
        model=image_model, messages=[{"role": "user", "content": prompt}]
    )
    message = answer.choices[0].message
    (image,) = message.model_extra["images"]
    url = image["image_url"]["url"]
    assert message.content == f"![image]({url})"
    assert httpx.get(url).content == image_for(prompt)  # the arena's signed URL, still valid

    chunks = list(
        stack.openai().chat.completions.create(
            model=image_model, messages=[{"role": "user", "content": prompt}], stream=True
        )
    )
    streamed = [
        i
        for c in chunks
        if c.choices
        for i in (c.choices[0].delta.model_extra or {}).get("images", [])
    ]
    assert [i["index"] for i in streamed] == [0]
    assert httpx.get(streamed[0]["image_url"]["url"]).content == image_for(prompt)


def test_image_generation_gives_urls_or_the_bytes(each_site: tuple[Stack, Site]) -> None:
    stack, site = each_site
    image_model = MODELS[site].image
    prompt = unique("a lighthouse at dusk")
    by_url = stack.openai().images.generate(model=image_model, prompt=prompt, n=2)
    assert len(by_url.data) == 2
    assert all(httpx.get(image.url).content == image_for(prompt) for image in by_url.data)

    as_bytes = stack.openai().images.generate(
        model=image_model, prompt=prompt, response_format="b64_json"
    )
    (image,) = as_bytes.data
    assert base64.b64decode(image.b64_json) == image_for(prompt) and image.url is None


def test_image_generation_refuses_a_model_that_makes_no_images(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        stack.openai().images.generate(model=VISION, prompt="a cat")
    assert caught.value.body["param"] == "model"
