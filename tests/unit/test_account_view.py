"""What the admin page shows of an account that only its page can tell, parsed."""

from __future__ import annotations

import pytest

from worker.arena.account_view import address_in, credits_in


@pytest.mark.parametrize(
    ("answer", "address"),
    [
        ("203.0.113.7\n", "203.0.113.7"),  # ipify's text
        ('{"ip":"203.0.113.7"}', "203.0.113.7"),  # ipify's JSON
        ('{"origin": "203.0.113.7, 10.0.0.1"}', "203.0.113.7"),  # httpbin behind a proxy
        ('{"host":"127.0.0.2","port":51234}', "127.0.0.2"),  # the fake arena's peer
        ('{"ip":"2001:0db8:0000::1"}', "2001:db8::1"),
        ("<html>Not Found</html>", None),
        ('{"ip": 7}', None),
        ('{"host":"example.com"}', None),
        ("", None),
    ],
)
def test_the_callers_address_is_read_from_an_address_services_answer(
    answer: str, address: str | None
) -> None:
    assert address_in(answer) == address


@pytest.mark.parametrize(
    ("answer", "credits"),
    [
        ("42", 42.0),
        ('{"balance": 12.5}', 12.5),
        ('{"data": {"credits": 3}}', 3.0),
        ('{"data": 8}', 8.0),
        ('{"remaining": 0}', 0.0),
        ('{"balance": true}', None),
        ('{"balance": "12"}', None),
        ('{"error": "Unauthorized"}', None),
        ("<!DOCTYPE html><title>Page not found · LMArena</title>", None),
        ("NaN", None),
    ],
)
def test_credits_are_read_only_from_a_balance_the_site_answers(
    answer: str, credits: float | None
) -> None:
    assert credits_in(answer) == credits
