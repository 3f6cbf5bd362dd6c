"""Every fact about the arena sits in `shared.arena.site`, and the doctor reports on each."""

from __future__ import annotations

import re

import pytest

from shared.arena import site
from shared.arena.errors import BadRequest, RecaptchaRejected, classify, mode_refused
from shared.arena.page import page_kind
from shared.fleet.diagnosis import Check, Finding, problem
from worker.arena.doctor import FACTS, UNCHECKED
from worker.arena.learned import Learned, Preference, token_tries


def facts() -> set[str]:
    return {name for name in vars(site) if name.isupper()}


def test_every_fact_is_behind_a_check_of_the_doctor_or_said_to_be_unchecked() -> None:
    named = [fact for names in FACTS.values() for fact in names] + list(UNCHECKED)
    assert len(named) == len(set(named))  # each under one check
    assert set(named) == facts()
    assert set(FACTS) == set(Check)


def test_the_facts_are_today_first() -> None:
    assert site.CHAT_MODES[0] == "direct-battle"
    assert site.TOKEN_ACTIONS["retry"][0] == "chat_retry"
    assert next(iter(site.CATALOG_GROUPS)) == "text"


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        ('{"error":"\'direct\' mode is not allowed when starting a new conversation"}', True),
        ('{"error":"Invalid mode: direct-battle"}', True),
        ('{"error":"Unknown model: 0199"}', False),
        ('{"error":"Unsupported modality: video"}', False),
        ('{"error":"Model x does not support modality search"}', False),
        ('{"error":"Unexpected field in direct-battle: modelBId"}', False),
    ],
)
def test_a_create_refused_for_its_mode_is_told_from_other_400s(body: str, refused: bool) -> None:
    error = classify(400, {}, body)
    assert isinstance(error, BadRequest) and mode_refused(error) is refused


def test_only_a_400_is_a_mode_refusal() -> None:
    error = classify(403, {}, '{"error":"recaptcha validation failed: mode"}')
    assert isinstance(error, RecaptchaRejected) and not mode_refused(error)


@pytest.mark.parametrize(
    ("html", "kind"),
    [
        ("<title>Just a moment...</title><script>window._cf_chl_opt={}</script>", "challenge"),
        (
            "<title>Page not found · LMArena</title><h2>This page could not be found.</h2>",
            "not_found",
        ),
        ("<script>(self.__next_f=self.__next_f||[]).push([0])</script><main></main>", "arena"),
        ("<html><title>Welcome to nginx!</title></html>", "other"),
    ],
)
def test_a_page_is_judged_by_its_content(html: str, kind: str) -> None:
    assert page_kind(html) == kind


def test_what_worked_is_tried_first_from_then_on() -> None:
    modes = Preference(site.CHAT_MODES)
    assert (modes.order(), modes.worked) == (["direct-battle", "direct"], None)
    modes.confirm("direct")
    assert modes.order() == ["direct", "direct-battle"]
    modes.confirm("direct-battle")
    assert modes.order() == ["direct-battle", "direct"]
    learned = Learned()
    assert learned.token_actions["retry"].order() == ["chat_retry", "chat_submit"]
    assert learned.token_actions["create"].order() == ["chat_submit"]


def test_a_refused_token_is_replaced_by_one_of_each_other_action_then_a_new_one() -> None:
    assert token_tries(["chat_submit"]) == [("chat_submit", False), ("chat_submit", True)]
    assert token_tries(["chat_retry", "chat_submit"]) == [
        ("chat_retry", False),
        ("chat_submit", True),
        ("chat_retry", True),
    ]


def test_a_failed_check_is_one_line_naming_the_check_and_the_doctor() -> None:
    finding = problem(Check.CATALOG, "no model catalog", "update CATALOG_PATH")
    line = finding.line()
    assert "\n" not in line and re.search(r"check `catalog` fails", line)
    assert (
        line.startswith("no model catalog; update CATALOG_PATH")
        and "`lmarena-bridge doctor`" in line
    )
    assert Finding(Check.PAGE, True, "fine", "never shown").detail == "fine"
