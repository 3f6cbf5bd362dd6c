"""The site as reported in 2026 (`site: "2026-10"`): catalog endpoint, moved pages, not-found
pages, chat deletion; and the broken builds a doctor must notice."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from shared.arena.ids import uuid7
from tests.fakearena.catalog import captured_models, reported_groups
from tests.fakearena.client import ArenaClient
from tests.fakearena.scenario import DEFAULT_SITE, Scenario
from tests.fakearena.state import SITE_KEY
from tests.support.procs import fake_arena

PUSH = re.compile(r'self\.__next_f\.push\(\[1,("(?:[^"\\]|\\.)*")\]\)')
OPTION = re.compile(r'<option value="([^"]+)" data-modality="(\w+)"( selected)?>([^<]*)</option>')
GROUPS = {group["arena"]: group["models"] for group in reported_groups()}
NAMES = {"text", "search", "text-to-image", "text-to-video", "code", "document"}
REFERENCE = re.compile(r'createServerReference\)\("([0-9a-f]{42})",[^"]*"(\w+)"\)')
TEXT = next(e["id"] for e in GROUPS["text"] if e["publicName"] == "gemini-3.1-pro-preview")
CHAT = next(e["id"] for e in captured_models() if e["publicName"] == "gemini-2.5-pro")
ENTRY_KEYS = {"id", "publicName", "name", "displayName", "organization", "provider"}


@pytest.fixture
def new_site(client: ArenaClient) -> ArenaClient:
    client.scenario(site="2026-10")
    return client


def rsc_of(html: str) -> str:
    return "".join(orjson.loads(literal) for literal in PUSH.findall(html))


def options(html: str) -> list[tuple[str, str, bool, str]]:
    """(id, modality, selected, public name) of each model in the page's picker."""
    return [(i, m, bool(s), name) for i, m, s, name in OPTION.findall(html)]


def test_the_default_site_is_one_constant(tmp_path: Path) -> None:
    with fake_arena(tmp_path) as origin, ArenaClient(origin) as fresh:
        assert fresh.http.get("/__fake/scenario").json()["site"] == DEFAULT_SITE
        assert fresh.info()["site"] == DEFAULT_SITE
    assert Scenario().site == DEFAULT_SITE


def test_a_fake_can_start_on_either_site(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_bytes(orjson.dumps({"site": "2025-12", "login_gate": True}))
    extra = ("--scenario", str(scenario), "--site", "2026-10")
    with fake_arena(tmp_path, *extra) as origin, ArenaClient(origin) as fresh:
        fresh.scenario(site="2025-12")
        fresh.reset()
        assert fresh.http.get("/__fake/scenario").json()["site"] == "2026-10"
        assert fresh.http.get("/__fake/scenario").json()["login_gate"] is True


def test_the_catalog_endpoint_serves_the_reported_groups(new_site: ArenaClient) -> None:
    response = new_site.http.get("/nextjs-api/model-catalog")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    assert served == [dict(group) for group in reported_groups()]
    assert {group["arena"] for group in served} == NAMES
    for group in served:
        for entry in group["models"]:
            assert set(entry) >= ENTRY_KEYS and entry["userSelectable"] is True
            assert {"inputCapabilities", "outputCapabilities"} <= set(entry["capabilities"])


def test_unselectable_names_are_marked_in_every_group(new_site: ArenaClient) -> None:
    new_site.scenario(unselectable=["qwen3.7-plus"])
    served = new_site.http.get("/nextjs-api/model-catalog").json()
    marked = {
        (group["arena"], entry["publicName"], entry["userSelectable"])
        for group in served
        for entry in group["models"]
        if entry["publicName"] == "qwen3.7-plus" or not entry["userSelectable"]
    }
    assert marked == {(arena, "qwen3.7-plus", False) for arena in ("text", "code", "document")}
    names = [name for *_, name in options(new_site.visit("/text/direct").text)]
    assert "qwen3.7-plus" not in names and "gemini-3.1-pro-preview" in names


def test_the_captured_site_has_no_catalog_endpoint(client: ArenaClient) -> None:
    response = client.http.get("/nextjs-api/model-catalog")
    assert (response.status_code, response.text) == (404, "Not Found")
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("path", ["/no/such/page", "/text/direct", "/webdev/direct"])
def test_unknown_paths_are_a_plain_404_on_the_captured_site(client: ArenaClient, path: str) -> None:
    response = client.visit(path)
    assert (response.status_code, response.text) == (404, "Not Found")


@pytest.mark.parametrize("path", ["/no/such/page", "/webdev/direct", "/nextjs-api/nothing"])
def test_unknown_paths_answer_200_with_a_not_found_page(new_site: ArenaClient, path: str) -> None:
    response = new_site.visit(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "This page could not be found." in response.text
    assert "<textarea" not in response.text


@pytest.mark.parametrize(
    ("query", "moved"),
    [
        ("mode=direct", "/text/direct"),
        ("mode=direct&chat-modality=image", "/image/direct"),
        ("mode=direct&chat-modality=search", "/search/direct"),
    ],
)
def test_the_old_direct_link_moved(new_site: ArenaClient, query: str, moved: str) -> None:
    response = new_site.visit(f"/?{query}")
    assert (response.status_code, response.headers["location"]) == (301, moved)


@pytest.mark.parametrize(
    ("page", "group", "modality"),
    [
        ("text", "text", "chat"),
        ("search", "search", "search"),
        ("image", "text-to-image", "image"),
        ("code", "code", "chat"),
    ],
)
def test_direct_pages_offer_their_arena_and_carry_no_catalog(
    new_site: ArenaClient, page: str, group: str, modality: str
) -> None:
    html = new_site.visit(f"/{page}/direct").text
    assert '<textarea name="message"' in html and 'data-mode="direct-battle"' in html
    picker = options(html)
    assert [(i, name) for i, _, _, name in picker] == [
        (entry["id"], entry["publicName"]) for entry in GROUPS[group]
    ]
    assert {served for _, served, _, _ in picker} == {modality}
    rsc = rsc_of(html)
    assert '"initialModels":"$undefined"' in rsc and '"initialModels":[' not in rsc


def test_a_direct_page_preselects_model_a(new_site: ArenaClient) -> None:
    picker = options(new_site.visit("/code/direct?model_a=qwen3.7-plus").text)
    selected = [(i, name) for i, _, chosen, name in picker if chosen]
    code_id = next(e["id"] for e in GROUPS["code"] if e["publicName"] == "qwen3.7-plus")
    assert selected == [(code_id, "qwen3.7-plus")]


def test_the_catalog_endpoint_can_be_absent_or_broken(new_site: ArenaClient) -> None:
    new_site.scenario(catalog_endpoint="absent")
    absent = new_site.http.get("/nextjs-api/model-catalog")
    assert absent.status_code == 200 and "This page could not be found." in absent.text
    new_site.scenario(catalog_endpoint="broken")
    broken = new_site.http.get("/nextjs-api/model-catalog")
    assert broken.status_code == 200 and broken.headers["content-type"] == "application/json"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(broken.content)


def test_the_captured_page_can_lose_its_rsc_catalog(client: ArenaClient) -> None:
    assert '"initialModels":[' in rsc_of(client.visit("/?mode=direct").text)
    client.scenario(rsc_catalog=False)
    html = client.visit("/?mode=direct").text
    assert '"initialModels":"$undefined","initialModelAId":"$undefined"' in rsc_of(html)
    assert '<textarea name="message"' in html


def test_a_catalog_override_is_arena_groups_on_the_new_site(new_site: ArenaClient) -> None:
    entry = {"id": "m1", "publicName": "tiny", "capabilities": {"outputCapabilities": {}}}
    bad = new_site.http.post("/__fake/scenario", json={"catalog": [entry]})
    assert bad.status_code == 400 and "arena" in bad.text
    groups = [{"arena": "text", "models": [entry]}]
    new_site.scenario(catalog=groups)
    assert new_site.http.get("/nextjs-api/model-catalog").json() == groups
    assert new_site.http.post("/__fake/scenario", json={"site": "2027-01"}).status_code == 400


def chunk_actions(client: ArenaClient, page: str = "/") -> dict[str, str]:
    """name -> id of every server reference in the page's JS chunks."""
    found: dict[str, str] = {}
    for source in re.findall(
        r'<script src="(/_next/static/chunks/[^"]+)"', client.visit(page).text
    ):
        found.update({name: i for i, name in REFERENCE.findall(client.http.get(source).text)})
    return found


def test_the_new_build_can_delete_and_archive_chats(new_site: ArenaClient) -> None:
    found = chunk_actions(new_site, "/text/direct")
    assert found == new_site.info()["actions"]
    assert {"deleteEvaluationSession", "archiveEvaluationSession"} <= set(found)
    assert found["deleteEvaluationSession"].startswith("60")


def test_the_captured_build_has_no_delete_action(client: ArenaClient) -> None:
    client.scenario(site="2026-10")
    delete = client.info()["actions"]["deleteEvaluationSession"]
    client.scenario(site="2025-12")
    assert "deleteEvaluationSession" not in chunk_actions(client)
    response = client.action(delete, [uuid7()])
    assert (response.status_code, response.text) == (404, "Server action not found.")


def test_deleting_a_chat_forgets_it(new_site: ArenaClient, origin: str) -> None:
    body, _ = new_site.create(TEXT, "forget me", mode="direct-battle")
    with ArenaClient(origin) as stranger:
        stranger.visit()
        refused = stranger.action_result("deleteEvaluationSession", [body["id"]], "/text/direct")
        assert refused == {"success": False, "error": "Evaluation session not found"}
    result = new_site.action_result("deleteEvaluationSession", [body["id"]], "/text/direct")
    assert result == {"success": True}
    log = new_site.log()
    assert log["sessions"][-1]["state"] == "deleted"
    assert (
        log["requests"][-1]["next_action"] == new_site.info()["actions"]["deleteEvaluationSession"]
    )
    assert log["requests"][-1]["body"] == [body["id"]]
    _, post = new_site.post(body["id"], TEXT, "still there?")
    assert (post.status_code, post.json()) == (404, {"error": "Evaluation session not found"})
    retry = new_site.retry(body["id"], body["modelAMessageId"], action="chat_retry")
    assert retry.status_code == 404
    assert "forget me" not in new_site.visit(f"/c/{body['id']}").text
    again = new_site.action_result("deleteEvaluationSession", [body["id"]])
    assert again["success"] is False


def test_archiving_a_chat_keeps_it(new_site: ArenaClient) -> None:
    body, _ = new_site.create(TEXT, "keep me", mode="direct-battle")
    assert new_site.action_result("archiveEvaluationSession", [body["id"]]) == {"success": True}
    assert new_site.log()["sessions"][-1]["state"] == "archived"
    assert new_site.post(body["id"], TEXT, "still here")[1].status_code == 200
    bad = new_site.action_result("archiveEvaluationSession", [1, 2])
    assert bad == {"success": False, "error": "Invalid arguments"}


@pytest.mark.parametrize("site", ["2025-12", "2026-10"])
def test_a_build_can_lack_the_upload_actions(client: ArenaClient, site: str) -> None:
    client.scenario(site=site)
    upload = client.info()["actions"]["generateUploadUrl"]
    client.scenario(missing_actions=["generateUploadUrl", "getSignedUrl"])
    found = chunk_actions(client)
    assert found == client.info()["actions"]
    assert not {"generateUploadUrl", "getSignedUrl"} & set(found) and "getHistory" in found
    assert client.action(upload, ["a.png", "image/png"]).status_code == 404
    bad = client.http.post("/__fake/scenario", json={"missing_actions": ["noSuchAction"]})
    assert bad.status_code == 400


def test_the_page_can_render_another_site_key(client: ArenaClient) -> None:
    key = "6LeNEWKEYAAAAAchangedAfterADeployXXXXXXXXXX"
    client.scenario(recaptcha_site_key=key)
    html = client.visit("/").text
    assert f"enterprise.js?render={key}" in html and f'data-sitekey="{key}"' in html
    assert SITE_KEY not in html and client.info()["site_key"] == key
    old = client.http.post(f"/recaptcha/enterprise/reload?k={SITE_KEY}", json={"action": "x"})
    assert old.status_code == 400
    token = client.http.post(
        f"/recaptcha/enterprise/reload?k={key}", json={"action": "chat_submit"}
    ).json()["token"]
    assert client.create(CHAT, "hi", token=token)[1].status_code == 200
