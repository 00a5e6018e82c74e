"""Fixtures for the trader pages: Django's test client signed in as each persona,
with the firm's compliance defaults in force (the pages must show what they decide)."""

from __future__ import annotations

import itertools
import re

import pytest
from django.test import Client

from tests.compliance.conftest import distinct_quantity, firm_defaults, place  # noqa: F401 (fixtures)
from tests.helpers import portfolio_manager

_ticket_ids = itertools.count(1)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def web(trader, account, aapl, venue) -> Client:
    """trader1, who trades ACC-1, signed in; AAPL and venue SIM exist."""
    return signed_in(trader)


def ticket(**overrides) -> dict[str, str]:
    """The order ticket as the browser posts it: BUY AAPL LIMIT 175.50 on ACC-1 at SIM,
    a distinct quantity (out of the duplicate rule's way) and a fresh ticket id."""
    data = {
        "client_order_id": f"WEB-TEST{next(_ticket_ids)}",
        "account": "ACC-1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": str(distinct_quantity()),
        "order_type": "LIMIT",
        "limit_price": "175.50",
        "stop_price": "",
        "time_in_force": "DAY",
        "expire_at": "",
        "venue": "SIM",
        "short_exempt_reason": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def text_of(response) -> str:
    return response.content.decode()


def field_errors(response, field: str) -> list[str]:
    """The error messages shown beside one field of a rendered form."""
    html = text_of(response)
    block = re.search(rf'data-field="{field}".*?</div>', html, re.S)
    assert block, f"no field {field} on the page"
    return re.findall(r'<span class="error" role="alert">([^<]+)</span>', block.group(0))


@pytest.fixture
def pm(account, acc2, other_account, aapl, venue):
    """pm1, a portfolio manager who enters orders for ACC-1..3."""
    return portfolio_manager("pm1", account, acc2, other_account)
