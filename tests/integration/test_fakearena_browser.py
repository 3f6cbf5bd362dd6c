"""The fake in a real headless Chromium: the page's grecaptcha mints, the page's fetch() streams."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.fakearena.catalog import captured_models
from tests.fakearena.client import ArenaClient, evaluation_body
from tests.fakearena.replies import Ask, answer_text, lines
from tests.fakearena.scenario import CAPTURED_SITE
from tests.support.procs import TEST_CHROMIUM_ARGS, fake_arena

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    *TEST_CHROMIUM_ARGS,
]
MODELS = {entry["publicName"]: entry["id"] for entry in captured_models()}
CHAT = MODELS["gemini-2.5-pro"]
IMAGE = MODELS["gemini-3-pro-image-preview (nano-banana-pro)"]

# Mint a token with the page's grecaptcha, then stream an answer with the page's fetch().
STREAM_FROM_PAGE = """
const [path, body, done] = arguments;
(async () => {
  while (!window.grecaptcha) await new Promise((resolve) => setTimeout(resolve, 10));
  await new Promise((resolve) => grecaptcha.enterprise.ready(resolve));
  const started = performance.now();
  const siteKey = document.querySelector("#arena").dataset.sitekey;
  body.recaptchaV3Token = await grecaptcha.enterprise.execute(siteKey, {action: "chat_submit"});
  const mintMs = performance.now() - started;
  const response = await fetch(path, {
    method: "POST", body: JSON.stringify(body),
    headers: {"content-type": "text/plain;charset=UTF-8"}, credentials: "include",
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    text += decoder.decode(value, {stream: true});
  }
  return {status: response.status, contentType: response.headers.get("content-type"), text, mintMs};
})().then(done, (error) => done({error: String(error)}));
"""


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fake_arena(tmp_path_factory.mktemp("fakearena"), "--site", CAPTURED_SITE) as origin:
        yield origin


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('profile')}")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def control(origin: str, browser: webdriver.Chrome) -> Iterator[ArenaClient]:
    browser.delete_all_cookies()
    with ArenaClient(origin) as control:
        control.reset()
        yield control


def wait_for(browser: webdriver.Chrome, css: str, timeout: float = 10) -> Any:
    return WebDriverWait(browser, timeout).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def test_page_mints_a_token_and_streams_create_evaluation(
    browser: webdriver.Chrome, control: ArenaClient, origin: str
) -> None:
    browser.get(f"{origin}/?mode=direct")
    wait_for(browser, "textarea[name=message]")
    body = evaluation_body(model_id=CHAT, content="Hello from «Chromium» 👋", token="")
    result = browser.execute_async_script(
        STREAM_FROM_PAGE, "/nextjs-api/stream/create-evaluation", body
    )
    ask = Ask(
        model="gemini-2.5-pro",
        kind="chat",
        turn=1,
        first=body["userMessage"]["content"],
        prompt=body["userMessage"]["content"],
    )
    assert result.get("error") is None
    assert (result["status"], result["contentType"]) == (200, "text/event-stream")
    assert result["text"] == "".join(f"{line}\n" for line in lines("a", ask))
    assert result["mintMs"] >= 150  # the captured 170 ms mint, less timer slack
    request = control.log()["requests"][-1]
    assert request["content_type"] == "text/plain;charset=UTF-8"
    assert request["identity"].startswith("guest:") and request["status"] == 200
    assert control.log()["streams"][-1]["text"]["a"] == answer_text(ask)


def test_page_ui_chats_and_continues(
    browser: webdriver.Chrome, control: ArenaClient, origin: str
) -> None:
    browser.get(origin)
    textarea = wait_for(browser, "textarea[name=message]")
    textarea.send_keys("first question")
    browser.find_element(By.ID, "send").click()
    answer = wait_for(browser, "#answer[data-done=true]")
    assert answer.text.startswith("Turn 1 of «first question» (gemini-3-pro): first question")
    textarea.clear()
    textarea.send_keys("second question")
    browser.find_element(By.ID, "send").click()
    WebDriverWait(browser, 10).until(
        lambda driver: "Turn 2" in driver.find_element(By.ID, "answer").text
    )
    session = control.log()["sessions"][-1]
    assert browser.current_url.endswith(f"/c/{session['id']}")
    assert [turn["text"] for turn in session["turns"]] == ["first question", "second question"]


def test_generated_image_loads_in_the_page(
    browser: webdriver.Chrome, control: ArenaClient, origin: str
) -> None:
    browser.get(origin)
    wait_for(browser, "textarea[name=message]")
    body = evaluation_body(model_id=IMAGE, content="a cat", token="", modality="image")
    result = browser.execute_async_script(
        STREAM_FROM_PAGE, "/nextjs-api/stream/create-evaluation", body
    )
    url = result["text"].split('"image":"')[1].split('"')[0]
    width = browser.execute_async_script(
        "const [url, done] = arguments; const img = new Image();"
        "img.onload = () => done(img.naturalWidth); img.onerror = () => done(-1); img.src = url;",
        url,
    )
    assert width == 64


def test_sign_in_through_the_form(
    browser: webdriver.Chrome, control: ArenaClient, origin: str
) -> None:
    browser.get(f"{origin}/login")
    browser.find_element(By.NAME, "username").send_keys("erin")
    browser.find_element(By.NAME, "password").send_keys("hunter2")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert wait_for(browser, "[data-testid=username]").text == "erin"
    names = {cookie["name"] for cookie in browser.get_cookies()}
    assert {"arena-auth-prod-v1.0", "arena-auth-prod-v1.1", "provisional_user_id"} <= names


def test_cloudflare_passes_only_a_trusted_click(
    browser: webdriver.Chrome, control: ArenaClient, origin: str
) -> None:
    control.scenario(cloudflare=True)
    browser.get(origin)
    assert browser.title == "Just a moment..."
    browser.execute_script(
        "document.getElementById('cf-checkbox').dispatchEvent(new MouseEvent('click'))"
    )
    time.sleep(0.5)  # give an (ignored) untrusted click time to post, were it accepted
    assert "cf_clearance" not in {cookie["name"] for cookie in browser.get_cookies()}
    assert browser.title == "Just a moment..."
    browser.find_element(By.ID, "cf-checkbox").click()
    wait_for(browser, "textarea[name=message]")
    assert "cf_clearance" in {cookie["name"] for cookie in browser.get_cookies()}


def test_the_new_site_ui_chats_in_direct_battle_and_skips_extra_lines(
    browser: webdriver.Chrome, control: ArenaClient, origin: str
) -> None:
    control.scenario(site="2026-10", step_lines=True, heartbeat_lines=2)
    browser.get(f"{origin}/?mode=direct")
    textarea = wait_for(browser, "textarea[name=message]")
    assert browser.current_url == f"{origin}/text/direct"
    textarea.send_keys("hello from 2026")
    browser.find_element(By.ID, "send").click()
    answer = wait_for(browser, "#answer[data-done=true]")
    expected = "Turn 1 of «hello from 2026» (gemini-3.1-pro-preview): hello from 2026"
    assert answer.text == expected
    session = control.log()["sessions"][-1]
    assert session["mode"] == "direct-battle"
    assert control.log()["streams"][-1]["lines"][0].startswith("af:")


def test_the_security_check_passes_only_a_trusted_click(
    browser: webdriver.Chrome, control: ArenaClient, origin: str
) -> None:
    browser.get(origin)
    wait_for(browser, "textarea[name=message]")
    guest = browser.get_cookie("provisional_user_id")["value"]
    control.http.post("/__fake/flags", json={"account": f"guest:{guest}", "flagged": True})
    browser.get(origin)
    modal = wait_for(browser, "#security-verification[data-state=open]")
    assert "Security Verification" in modal.text
    # A script's click runs the handler at once: had it been taken, the state would have moved.
    untrusted = browser.execute_script(
        "const box = document.getElementById('recaptcha-anchor');"
        "box.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}));"
        "return [document.getElementById('security-verification').dataset.state, box.checked,"
        " document.querySelector('[name=g-recaptcha-response]').value];"
    )
    assert untrusted == ["open", False, ""]
    browser.find_element(By.ID, "recaptcha-anchor").click()
    wait_for(browser, "#security-verification[data-state=passed]")
    token = browser.execute_script(
        "return document.querySelector('[name=g-recaptcha-response]').value"
    )
    assert token.startswith("03AF")
    verifications = [
        r for r in control.log()["requests"] if r["path"] == "/recaptcha/api2/userverify"
    ]
    assert len(verifications) == 1  # the trusted click's only
    # The page's own UI carries the v2 token on its next call, which clears the flag.
    browser.find_element(By.NAME, "message").send_keys("verified")
    browser.find_element(By.ID, "send").click()
    answer = wait_for(browser, "#answer[data-done=true]")
    assert answer.text.endswith(": verified")
    create = control.log()["requests"][-1]
    assert create["path"] == "/nextjs-api/stream/create-evaluation" and create["status"] == 200
    assert create["body"]["recaptchaV2Token"] == token
    assert control.http.get("/__fake/flags").json() == {}
