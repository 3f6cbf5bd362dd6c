"""A person at the admin page: their own browser (headless Chromium under Selenium), signing
in, opening a worker's screen and clicking on its noVNC canvas.

Those clicks travel as VNC events into the worker's X display, so the worker's browser sees
trusted input, as from a person. Where to click is read off the worker's page through its
DevTools (the test has no eyes); the click itself only ever goes through noVNC.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import websockets.sync.client
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.procs import TEST_CHROMIUM_ARGS
from tests.support.stack import Stack

#: A headed worker on its own display: what `lmarena-bridge up` runs when Xvfb is installed.
DISPLAY_ENV = {"LMB_DISPLAY": "on", "LMB_HEADLESS": "false"}


def persons_browser() -> Iterator[webdriver.Chrome]:
    """The admin's own browser, for a fixture: headless Chromium under Selenium."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--window-size=1600,1100", "--no-sandbox", *TEST_CHROMIUM_ARGS):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def admin_sign_in(person: webdriver.Chrome, stack: Stack, key: str) -> None:
    person.get(f"{stack.base_url}/admin")
    assert "/admin/login" in person.current_url
    person.find_element(By.NAME, "key").send_keys(key)
    person.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(person, 10).until(lambda d: d.current_url.endswith("/admin"))


def open_screen(person: webdriver.Chrome, worker: str, shots: Path) -> WebElement:
    """From the admin page, the worker's screen: follow the link, wait for noVNC to connect."""
    link = WebDriverWait(person, 15).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#attention a[data-screen="{worker}"]')
    )[0]
    person.save_screenshot(str(shots / f"admin-{worker}-waiting.png"))
    link.click()
    WebDriverWait(person, 20).until(
        lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "connected"
    )
    canvas = WebDriverWait(person, 10).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#screen canvas")
    )
    WebDriverWait(person, 10).until(lambda d: canvas.size["width"] >= 1280)
    time.sleep(1.0)  # the first full frame
    return canvas


def worker_browser(stack: Stack, name: str) -> psutil.Process:
    """The worker's Chromium (its main process, started by the worker)."""
    for child in psutil.Process(stack.workers[name].pid).children(recursive=True):
        if any(arg.startswith("--remote-debugging-port=") for arg in child.cmdline()):
            return child
    raise LookupError(f"no Chromium under {name}")


def where_on_screen(stack: Stack, name: str, selector: str) -> tuple[float, float]:
    """The centre of `selector` in the worker's page, in X screen pixels, read through DevTools."""
    [port] = [
        a.split("=", 1)[1]
        for a in worker_browser(stack, name).cmdline()
        if a.startswith("--remote-debugging-port=")
    ]
    targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
    [page] = [t for t in targets if t["type"] == "page"]
    expression = (
        f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
        " return JSON.stringify({x: screenX + (outerWidth - innerWidth) / 2 + r.left + r.width / 2,"
        " y: screenY + outerHeight - innerHeight + r.top + r.height / 2}); })()"
    )
    with websockets.sync.client.connect(
        page["webSocketDebuggerUrl"], max_size=None, proxy=None
    ) as cdp:
        cdp.send(
            json.dumps(
                {
                    "id": 1,
                    "method": "Runtime.evaluate",
                    "params": {"expression": expression, "returnByValue": True},
                }
            )
        )
        while (reply := json.loads(cdp.recv()))["id"] != 1:
            pass
    point = json.loads(reply["result"]["result"]["value"])
    return point["x"], point["y"]


def wait_for_selector(
    stack: Stack, name: str, selector: str, timeout: float = 20
) -> tuple[float, float]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return where_on_screen(stack, name, selector)
        except (KeyError, TypeError, ValueError, LookupError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def click_on_screen(
    person: webdriver.Chrome, canvas: WebElement, point: tuple[float, float]
) -> None:
    """A real click on the noVNC canvas at a point of the worker's screen (one pixel per pixel)."""
    width, height = canvas.size["width"], canvas.size["height"]
    x, y = point
    ActionChains(person).move_to_element_with_offset(
        canvas, int(x - width / 2), int(y - height / 2)
    ).click().perform()
