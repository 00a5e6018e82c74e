"""The fills blotter (/executions/) through Django's test client: every execution of
the trader's accounts newest first, its filters (symbol, order, account, date) with
bad values answered beside the field, entitlements, busts and corrections shown as
such, block orders named by their funds, and its live part."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from orders.models import Execution, Order
from tests.compliance.conftest import ack, fill, rule_set
from tests.conftest import apply
from tests.factories import AccountFactory

from .conftest import field_errors, signed_in, text_of, ticket

pytestmark = pytest.mark.django_db


def rows(response) -> list[int]:
    return [int(i) for i in re.findall(r'data-execution-id="(\d+)"', text_of(response))]


def row_html(response, execution: Execution) -> str:
    match = re.search(rf'<tr data-execution-id="{execution.pk}".*?</tr>', text_of(response), re.S)
    assert match, f"execution {execution.pk} not shown"
    return match.group(0)


def cell(row: str, field: str) -> str:
    match = re.search(rf'data-field="{field}">(.*?)</td>', row, re.S)
    assert match, f"no {field} cell"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def shown(web, **params) -> list[int]:
    """The rows of the page and of its live part, which must agree."""
    page = web.get("/executions/", params)
    assert page.status_code == 200
    live = web.get("/executions/live/", params)
    assert live.status_code == 200
    assert rows(page) == rows(live)
    return rows(page)


def executions_of(order: Order) -> list[Execution]:
    return list(Execution.objects.filter(order=order, exec_type="F").order_by("id"))


@pytest.fixture
def acc2(trader):
    account = AccountFactory(code="ACC-2", name="US Growth Fund")
    account.traders.add(trader)
    return account


@pytest.fixture
def book(place, acc2, msft):
    """AAPL on ACC-1 (two fills), MSFT on ACC-1 (one fill), AAPL on ACC-2 (one fill)."""
    rule_set("wash_trade", enabled=False)
    aapl_order = ack(place(quantity=300))
    fill(aapl_order, 100, "175.40")
    fill(aapl_order, 200, "175.45")
    msft_order = ack(place(symbol="MSFT", limit_price=Decimal("415.20"), quantity=50))
    fill(msft_order, 50, "415.10")
    acc2_order = ack(place(account="ACC-2", quantity=120))
    fill(acc2_order, 120, "175.30")
    return {"aapl": aapl_order, "msft": msft_order, "acc2": acc2_order}


def test_fills_are_listed_newest_first_with_their_terms(web, book):
    response = web.get("/executions/")
    assert response.status_code == 200
    everything = list(Execution.objects.filter(exec_type="F").order_by("-id").values_list("id", flat=True))
    assert rows(response) == everything and len(everything) == 4

    first, second = executions_of(book["aapl"])
    row = row_html(response, first)
    assert cell(row, "order") == f"#{book['aapl'].pk}"
    assert f'href="/orders/{book["aapl"].pk}/"' in row
    assert cell(row, "account") == "ACC-1"
    assert cell(row, "symbol") == "AAPL"
    assert cell(row, "kind") == "Partial fill"
    assert cell(row, "quantity") == "100"
    assert cell(row, "price") == "175.40"
    assert cell(row, "notional") == "17,540.00"
    assert cell(row, "exec_id") == first.exec_id
    received = first.received_at.astimezone(dt.UTC)
    assert cell(row, "received") == f"{received:%Y-%m-%d %H:%M:%S}.{received.microsecond // 1000:03d}"
    assert "<td>SIM</td>" in row and '<td class="side">Buy</td>' in row
    assert cell(row_html(response, second), "kind") == "Fill"
    assert cell(row_html(response, second), "notional") == "35,090.00"
    # The nav links to it.
    assert 'href="/executions/"' in text_of(web.get("/orders/"))


def test_filters_by_symbol_order_account_and_date(web, book):
    aapl_ids = [e.pk for e in reversed(executions_of(book["aapl"]))]
    acc2_ids = [e.pk for e in executions_of(book["acc2"])]
    msft_ids = [e.pk for e in executions_of(book["msft"])]

    assert shown(web, symbol="msft") == msft_ids
    assert shown(web, symbol="AAPL") == acc2_ids + aapl_ids
    assert shown(web, order=str(book["aapl"].pk)) == aapl_ids
    assert shown(web, account="ACC-2") == acc2_ids
    assert shown(web, account="ACC-1", symbol="AAPL") == aapl_ids
    today = dt.datetime.now(dt.UTC).date()
    assert len(shown(web, created_on=today.isoformat())) == 4
    assert shown(web, created_on=(today - dt.timedelta(days=1)).isoformat()) == []
    # An execution received yesterday shows on yesterday's date only.
    Execution.objects.filter(pk=msft_ids[0]).update(received_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    assert shown(web, created_on=(today - dt.timedelta(days=1)).isoformat()) == msft_ids
    assert msft_ids[0] not in shown(web, created_on=today.isoformat())
    assert "No executions match these filters." in text_of(web.get("/executions/", {"symbol": "ZZZ"}))


@pytest.mark.parametrize(
    "params, field, message",
    [
        ({"order": "abc"}, "order", "Enter an order number, such as 42."),
        ({"order": "-4"}, "order", "Ensure this value is greater than or equal to 1."),
        ({"order": "9" * 30}, "order", "Ensure this value is less than or equal to"),
        ({"created_on": "31/31/2026"}, "created_on", "Enter a valid date."),
        ({"symbol": "<script>"}, "symbol", "Enter a symbol such as AAPL."),
        ({"account": "ACC-3"}, "account", "Select a valid choice."),
    ],
)
def test_a_bad_filter_is_answered_beside_its_field_and_not_applied(web, book, other_account, params, field, message):
    response = web.get("/executions/", params)
    assert response.status_code == 200
    assert any(message in error for error in field_errors(response, field)), field_errors(response, field)
    assert len(rows(response)) == 4  # the bad filter is not applied
    live = web.get("/executions/live/", params)
    assert live.status_code == 200 and len(rows(live)) == 4


def test_another_traders_executions_are_not_shown(web, place, book, other_trader, other_account):
    theirs = ack(place(user=other_trader, account="ACC-3", quantity=70))
    fill(theirs, 70, "175.20")
    their_exec = executions_of(theirs)[0]
    mine = shown(web)
    assert their_exec.pk not in mine and len(mine) == 4
    assert shown(web, order=str(theirs.pk)) == []
    assert "ACC-3" not in text_of(web.get("/executions/"))
    # Their own page shows it, and none of ours.
    assert rows(signed_in(other_trader).get("/executions/")) == [their_exec.pk]


def test_a_bust_and_a_correction_are_shown_as_such(web, place):
    order = ack(place(quantity=300))
    fill(order, 100, "175.40")
    fill(order, 100, "175.45")
    busted, corrected = executions_of(order)
    apply(order, ExecType="H", OrdStatus="1", ExecRefID=busted.exec_id, LastQty=0, CumQty=100, LeavesQty=200)
    apply(order, ExecType="G", OrdStatus="1", ExecRefID=corrected.exec_id, LastQty=100, LastPx="175.35",
          CumQty=100, LeavesQty=200)  # fmt: skip
    bust = Execution.objects.get(order=order, exec_type="H")
    correction = Execution.objects.get(order=order, exec_type="G")

    response = web.get("/executions/")
    assert rows(response) == [correction.pk, bust.pk, corrected.pk, busted.pk]
    bust_row = row_html(response, bust)
    assert cell(bust_row, "kind") == "Bust"
    assert cell(bust_row, "refers_to") == f"{busted.exec_id} (100 @ 175.40)"
    correction_row = row_html(response, correction)
    assert cell(correction_row, "kind") == "Correction"
    assert cell(correction_row, "refers_to") == f"{corrected.exec_id} (100 @ 175.45)"
    assert cell(correction_row, "price") == "175.35"
    # The fills they took out of effect are struck through and say why.
    busted_row = row_html(response, busted)
    assert 'data-in-effect="false"' in busted_row and "muted busted" in busted_row
    assert '<span class="flag" data-field="reversed">busted</span>' in busted_row
    corrected_row = row_html(response, corrected)
    assert "muted corrected" in corrected_row
    assert '<span class="flag" data-field="reversed">corrected</span>' in corrected_row
    assert "muted" not in correction_row.split(">")[0]


def test_a_block_orders_fills_name_its_funds(web, acc2):
    response = web.post(
        "/orders/new/",
        {
            **ticket(account="", quantity="500"),
            "alloc_mode": "percent",
            "alloc_account_0": "ACC-1",
            "alloc_value_0": "60",
            "alloc_account_1": "ACC-2",
            "alloc_value_1": "40",
        },
    )
    assert response.status_code == 302, text_of(response)
    block = Order.objects.get(block_order=True)
    ack(block)
    fill(block, 200, "175.40")
    page = web.get("/executions/")
    assert cell(row_html(page, executions_of(block)[0]), "account") == "Block (ACC-1, ACC-2)"


def test_the_live_part_answers_304_until_an_execution_arrives(web, place):
    order = ack(place(quantity=300))
    fill(order, 100, "175.40")
    first = web.get("/executions/live/")
    etag = first["ETag"]
    assert first.status_code == 200
    assert web.get("/executions/live/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    fill(order, 50, "175.55")
    changed = web.get("/executions/live/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and "175.55" in text_of(changed)


def test_the_fills_page_needs_a_sign_in(client):
    for path in ("/executions/", "/executions/live/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")
