from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from shared.arena.payloads import (
    ArenaRequest,
    UserTurn,
    create_evaluation,
    post_to_evaluation,
    probe,
    retry_message,
    stop,
)
from shared.arena.site import STREAM_PREFIX
from tests.unit.test_arena_captures import REDACTED_TOKEN, capture


def _arguments(body: dict[str, Any]) -> dict[str, Any]:
    """Builder keywords for a captured body; the token is the redaction marker itself."""
    arguments: dict[str, Any] = {
        "session_id": body["id"],
        "model_a_id": body["modelAId"],
        "user_message_id": body["userMessageId"],
        "model_a_message_id": body["modelAMessageId"],
        "content": body["userMessage"]["content"],
        "attachments": body["userMessage"]["experimental_attachments"],
        "modality": body["modality"],
        "token": REDACTED_TOKEN,
    }
    if "featureFlags" in body:
        arguments["feature_flags"] = body["featureFlags"]
    return arguments


def _assert_same_request(built: ArenaRequest, recorded: dict[str, Any]) -> None:
    assert built.method == recorded["method"]
    assert built.path == recorded["path"]
    assert built.body == recorded["body"]
    # The page sends JSON.stringify(body): key order is part of what goes on the wire.
    assert orjson.dumps(built.body) == orjson.dumps(recorded["body"])


@pytest.mark.parametrize(
    "name", ["new", "thinking", "search", "image", "upload", "rate-limited-429"]
)
def test_create_evaluation_reproduces_the_captured_request(name: str) -> None:
    recorded = capture(name)["request"]
    body = recorded["body"]
    built = create_evaluation(UserTurn(**_arguments(body)), mode=body["mode"])
    _assert_same_request(built, recorded)


def test_post_to_evaluation_reproduces_the_captured_followup() -> None:
    recorded = capture("followup")["request"]
    built = post_to_evaluation(UserTurn(**_arguments(recorded["body"])))
    _assert_same_request(built, recorded)
    assert "mode" not in built.body


def test_retry_reproduces_the_captured_request() -> None:
    recorded = capture("retry")["request"]
    session_id, message_id = recorded["path"].split("/")[-3::2]
    built = retry_message(session_id=session_id, model_message_id=message_id, token=REDACTED_TOKEN)
    _assert_same_request(built, recorded)


def test_stop_posts_an_empty_body_to_the_message() -> None:
    built = stop(
        session_id="019ad878-7215-77e7-b82e-dff14a3bf524",
        model_message_id="019ad878-8523-762a-80ed-90c88ead90fa",
    )
    assert built == ArenaRequest(
        "POST",
        "/nextjs-api/stream/stop/019ad878-7215-77e7-b82e-dff14a3bf524"
        "/messages/019ad878-8523-762a-80ed-90c88ead90fa",
        {},
    )


def test_every_path_is_under_the_stream_prefix() -> None:
    body = capture("new")["request"]["body"]
    requests = [
        create_evaluation(UserTurn(**_arguments(body)), mode="direct-battle"),
        post_to_evaluation(UserTurn(**_arguments(body))),
        retry_message(session_id="s", model_message_id="m", token="t"),
        stop(session_id="s", model_message_id="m"),
    ]
    assert all(request.path.startswith(STREAM_PREFIX) for request in requests)


def test_battle_adds_model_b_in_the_sites_key_order() -> None:
    built = create_evaluation(
        UserTurn(
            session_id="s",
            model_a_id="ma",
            model_b_id="mb",
            user_message_id="u",
            model_a_message_id="am",
            model_b_message_id="bm",
            content="hi",
            modality="chat",
            token="t",
        ),
        mode="battle",
    )
    assert list(built.body) == [
        "id",
        "mode",
        "modelAId",
        "modelBId",
        "userMessageId",
        "modelAMessageId",
        "modelBMessageId",
        "userMessage",
        "modality",
        "recaptchaV3Token",
    ]
    assert (built.body["modelBId"], built.body["modelBMessageId"]) == ("mb", "bm")


@pytest.mark.parametrize(
    "model_b", [{"model_b_id": "mb"}, {"model_b_message_id": "bm"}], ids=["no message", "no model"]
)
def test_half_a_model_b_is_refused(model_b: dict[str, str]) -> None:
    body = capture("new")["request"]["body"]
    with pytest.raises(ValueError):
        UserTurn(**_arguments(body), **model_b)


def test_no_feature_flags_key_unless_given() -> None:
    body = capture("new")["request"]["body"]
    assert "featureFlags" not in create_evaluation(UserTurn(**_arguments(body)), mode="direct").body
    turn = UserTurn(**_arguments(body), feature_flags={})
    assert "featureFlags" not in create_evaluation(turn, mode="direct").body


def test_body_does_not_share_the_callers_attachments() -> None:
    body = capture("upload")["request"]["body"]
    arguments = _arguments(body)
    built = create_evaluation(UserTurn(**arguments), mode="direct")
    arguments["attachments"][0]["url"] = "changed"
    assert (
        built.body["userMessage"]["experimental_attachments"]
        == (capture("upload")["request"]["body"]["userMessage"]["experimental_attachments"])
    )


def test_ids_cannot_escape_their_path_segment() -> None:
    built = retry_message(session_id="../sign-up?x=1", model_message_id="a/b", token="t")
    assert built.path == (
        "/nextjs-api/stream/retry-evaluation-session-message/..%2Fsign-up%3Fx%3D1/messages/a%2Fb"
    )


def test_a_persons_pass_of_the_security_check_rides_after_the_v3_token() -> None:
    turn = UserTurn(
        session_id="s",
        model_a_id="m",
        user_message_id="u",
        model_a_message_id="a",
        content="hi",
        modality="chat",
        token="v3",
        v2_token="v2",
    )
    body = post_to_evaluation(turn).body
    assert list(body)[-2:] == ["recaptchaV3Token", "recaptchaV2Token"]
    assert (body["recaptchaV3Token"], body["recaptchaV2Token"]) == ("v3", "v2")
    without = dataclasses.replace(turn, v2_token=None)
    assert "recaptchaV2Token" not in create_evaluation(without, mode="direct-battle").body


def test_a_probe_names_no_model_there_is_and_fresh_ids_each_time() -> None:
    first, second = (
        probe(mode="direct-battle", token="t"),
        probe(mode="direct", token="t", v2_token="p"),
    )
    assert first.path == second.path and first.path.endswith("/create-evaluation")
    assert first.body["mode"] == "direct-battle" and second.body["recaptchaV2Token"] == "p"
    assert "recaptchaV2Token" not in first.body
    for field in ("id", "modelAId", "userMessageId", "modelAMessageId"):
        assert first.body[field] != second.body[field]
    assert first.body["userMessageId"] < first.body["modelAMessageId"]  # the site's own order
