"""Helpers shared by the test modules: API clients, order bodies and error-body checks, and a
barrier that releases calls in threads at once for the PostgreSQL race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import Group
from django.db import connection
from rest_framework.test import APIClient

from oms_site.roles import PORTFOLIO_MANAGER_GROUP
from routing.models import InboundMessage

from .factories import UserFactory


def portfolio_manager(username: str, *accounts):
    """A user of the portfolio_manager group entitled to ``accounts``."""
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name=PORTFOLIO_MANAGER_GROUP)[0])
    for account in accounts:
        account.traders.add(user)
    return user


SIXTY_FORTY = [{"account": "ACC-1", "percent": "60"}, {"account": "ACC-2", "percent": "40"}]


def block_body(**overrides) -> dict:
    """A block order request: BUY 1000 AAPL LIMIT 175.50 for ACC-1 60% / ACC-2 40%."""
    body = {
        "client_order_id": "BLK-1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 1000,
        "order_type": "LIMIT",
        "limit_price": "175.50",
        "allocations": SIXTY_FORTY,
    }
    body.update(overrides)
    return body


def order_line(n: int, **overrides) -> dict:
    """Order line ``n``: BUY 100 AAPL LIMIT 175.50 on ACC-1, client order id L-n."""
    body = {
        "client_order_id": f"L-{n}",
        "account": "ACC-1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 100,
        "order_type": "LIMIT",
        "limit_price": "175.50",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def assert_error(response, status: int, code: str) -> dict:
    """The one error body shape (oms_site.errors): message, code, details."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"message", "code", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["details"], dict), body
    return body


def assert_field_errors(response, *fields: str) -> dict:
    """400 with errors for exactly ``fields``, each a non-empty list of messages."""
    body = assert_error(response, 400, "invalid")
    assert set(body["details"]) == set(fields), body
    for field in fields:
        messages = body["details"][field]
        assert isinstance(messages, list) and messages and all(isinstance(m, str) and m for m in messages), body
    return body


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in its own thread and connection, all released at once by a
    barrier; return what each returned or raised, in the order given."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def worker(index: int, call: Callable[[], Any]) -> None:
        try:
            connection.ensure_connection()  # connect before the barrier: race on locks, not on logins
            barrier.wait(timeout=30)
            outcomes[index] = call()
        except BaseException as exc:  # handed back to the test thread
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    for outcome in outcomes:
        if isinstance(outcome, threading.BrokenBarrierError):
            raise outcome
    return outcomes


def inbox_message_store(venue, seq: int, tags: dict[int, str]):
    """An ExecutionReport (or other application message) stored in the venue's inbox
    as the session stores it: MsgType and MsgSeqNum first, then ``tags``."""
    fields = [[35, tags.get(35, "8")], [34, str(seq)], *[[t, v] for t, v in tags.items() if t != 35]]
    return InboundMessage.objects.create(
        venue=venue,
        epoch=1,
        msg_seq_num=seq,
        msg_type=fields[0][1],
        fields=fields,
        raw="".join(f"{t}={v}\x01" for t, v in fields),
    )
