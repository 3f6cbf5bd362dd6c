"""Imported cookies sealed for one worker under the admin key; `up`'s control socket."""

from __future__ import annotations

import secrets
import socket
import threading
from pathlib import Path

import pytest

from cli import up_control
from cli.supervisor import Child, LocalProcesses
from shared.arena.account import is_auth_cookie
from shared.fleet.cookie_handover import SealError, seal, unseal

KEY = secrets.token_hex(32)
COOKIES = [{"name": "arena-auth-prod-v1", "value": "base64-the-session", "domain": "arena.ai"}]


def test_sealed_cookies_open_only_for_their_worker_under_the_same_key() -> None:
    sealed = seal(KEY, "worker-1", COOKIES)
    assert b"the-session" not in sealed
    assert unseal(KEY, "worker-1", sealed) == COOKIES
    assert seal(KEY, "worker-1", COOKIES) != sealed  # a fresh nonce each time
    with pytest.raises(SealError, match="not sealed for worker-2"):
        unseal(KEY, "worker-2", sealed)
    with pytest.raises(SealError):
        unseal(secrets.token_hex(32), "worker-1", sealed)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealError):
        unseal(KEY, "worker-1", tampered)
    with pytest.raises(SealError):
        unseal(KEY, "worker-1", b"")


@pytest.mark.parametrize(
    ("name", "auth"),
    [
        ("arena-auth-prod-v1", True),
        ("arena-auth-prod-v1.0", True),
        ("arena-auth-prod-v1.12", True),
        ("arena-auth-prod-v1.x", False),
        ("arena-auth-prod-v10", False),
        ("cf_clearance", False),
    ],
)
def test_the_auth_cookie_whole_or_in_parts(name: str, auth: bool) -> None:
    assert is_auth_cookie(name) is auth


def test_up_answers_on_its_control_socket_and_nobody_is_not_running(tmp_path: Path) -> None:
    with pytest.raises(up_control.NotRunning, match="no `lmarena-bridge up` runs"):
        up_control.ask(tmp_path, {"add": "worker"})
    with up_control.listening(tmp_path) as server:
        assert (tmp_path / up_control.SOCKET).stat().st_mode & 0o777 == 0o600
        asked: list[dict] = []

        def handle(request: dict) -> dict:
            asked.append(request)
            return {"worker": "worker-2"}

        serving = threading.Thread(target=up_control.serve, args=(server, 10.0, handle))
        serving.start()
        assert up_control.ask(tmp_path, {"add": "worker"}) == {"worker": "worker-2"}
        serving.join(10)
        assert asked == [{"add": "worker"}]
    assert not (tmp_path / up_control.SOCKET).exists()
    # A socket left behind by an `up` that was killed answers nobody.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as left:
        left.bind(str(tmp_path / up_control.SOCKET))
    with pytest.raises(up_control.NotRunning):
        up_control.ask(tmp_path, {"add": "worker"})


def test_workers_added_to_up_are_numbered_on_with_their_own_name_and_log(tmp_path: Path) -> None:
    fleet = LocalProcesses(
        Child("gateway", ["gw"], {}, tmp_path / "gateway.log"),
        worker_args=["cli", "worker"],
        worker_env={"LMB_ADMIN_KEY": KEY},
        logs=tmp_path,
    )
    first, second = fleet.add_worker(), fleet.add_worker()
    assert [first.name, second.name] == ["worker-1", "worker-2"]
    assert second.env == {"LMB_ADMIN_KEY": KEY, "LMB_WORKER_ID": "worker-2"}
    assert second.log == tmp_path / "worker-2.log" and second.proc is None
    assert fleet.children == [fleet.gateway, first, second]
