"""Block orders on the trader pages (issue 14): the ticket's "Allocate to funds" grid
(a portfolio manager's block for several funds, its errors beside the grid and its
rows, in one round with the other fields), the block on its order page (its funds,
what is unallocated, each allocation with its lines, statuses and FIX messages, in the
live part) and on the blotter."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_event_record
from orders.models import Allocation, AllocationLine, Order
from orders.services import order_submit
from routing.models import OutboundMessage

from .conftest import signed_in, text_of, ticket

pytestmark = pytest.mark.django_db


def grid(*rows, mode: str = "percent", indexes=None) -> dict[str, str]:
    """The grid's rows as the page posts them (``indexes``: the row numbers the page
    gave them, which need not be consecutive once rows were removed)."""
    data = {"alloc_mode": mode}
    for index, (account, value) in zip(indexes or range(len(rows)), rows, strict=True):
        data[f"alloc_account_{index}"] = account
        data[f"alloc_value_{index}"] = value
    return data


def block_ticket(*rows, mode: str = "percent", indexes=None, **overrides) -> dict[str, str]:
    """A BUY AAPL LIMIT ticket with no account and the grid filled in."""
    return {**ticket(account="", **overrides), **grid(*rows, mode=mode, indexes=indexes)}


def grid_errors(response) -> list[str]:
    """The errors shown for the grid as a whole (not a row's)."""
    html = text_of(response)
    block = re.search(r'<fieldset[^>]*id="alloc-grid".*?</fieldset>', html, re.S)
    assert block, "no allocation grid on the page"
    after_rows = block.group(0).split('<div class="alloc-actions">')[1]
    return re.findall(r'<span class="error" role="alert">([^<]+)</span>', after_rows)


def row_errors(response, index: int) -> list[str]:
    html = text_of(response)
    row = re.search(rf'<tr class="alloc-row[^"]*" data-alloc-row="{index}">.*?</tr>', html, re.S)
    assert row, f"no row {index} in the grid"
    return re.findall(r'<span class="error" role="alert">([^<]+)</span>', row.group(0))


def test_the_ticket_offers_the_grid_to_traders_and_portfolio_managers(trader, pm, account):
    for user in (trader, pm):
        html = text_of(signed_in(user).get("/orders/new/"))
        assert 'id="alloc-grid"' in html and 'id="alloc-row-template"' in html
        assert 'name="alloc_mode" value="percent" checked' in html
        # The new row's fund box offers the user's tradable accounts.
        template = re.search(r'<template id="alloc-row-template">.*?</template>', html, re.S).group(0)
        assert '<option value="ACC-1">' in template
        assert ('<option value="ACC-3">' in template) is (user == pm)
    # The grid's script is the site's static file (no inline script: the CSP).
    assert "<script>" not in html and "/static/orders/oms.js" in html


def test_a_portfolio_manager_submits_a_sixty_forty_block_and_lands_on_it(pm):
    web = signed_in(pm)
    # Rows 0 and 3 (rows 1 and 2 were removed), and an untouched blank row 4.
    data = block_ticket(("ACC-1", "60"), ("ACC-2", "40 %"), ("", ""), indexes=(0, 3, 4), quantity="1,000")
    response = web.post("/orders/new/", data)
    order = Order.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/orders/{order.pk}/"
    assert order.block_order and order.desk_order
    assert order.allocation_targets == [{"account": "ACC-1", "percent": "60"}, {"account": "ACC-2", "percent": "40"}]
    assert (order.account.code, order.quantity, order.status, order.owner_id) == ("ACC-1", 1000, "new", None)

    page = text_of(web.get(response["Location"]))
    assert f"Block order #{order.pk} submitted for 2 funds: BUY 1,000 AAPL (waiting for a trader)." in page
    assert "Block for 2 funds" in page and 'id="order-account">Block (ACC-1, ACC-2)<' in page
    assert '<li data-account="ACC-1"><strong>ACC-1</strong> 60%</li>' in page
    assert '<li data-account="ACC-2"><strong>ACC-2</strong> 40%</li>' in page
    assert 'id="block-unallocated">0<' in page and 'id="no-allocations"' in page
    assert 'id="order-owner">waiting for a trader<' in page
    # The blotter names the block's funds, not its first fund only.
    blotter = text_of(web.get("/orders/"))
    assert '<td data-field="account">Block (ACC-1, ACC-2)</td>' in blotter


def test_a_block_by_shares_posts_the_quantities_as_whole_numbers(pm):
    response = signed_in(pm).post(
        "/orders/new/", block_ticket(("ACC-2", "1,200"), ("ACC-3", "800"), mode="quantity", quantity="2000")
    )
    order = Order.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/orders/{order.pk}/"
    assert order.allocation_targets == [{"account": "ACC-2", "quantity": 1200}, {"account": "ACC-3", "quantity": 800}]
    assert order.account.code == "ACC-2"


def test_a_grid_summing_to_ninety_percent_is_shown_with_its_error_and_creates_nothing(pm):
    web = signed_in(pm)
    events = AuditEvent.objects.count()
    response = web.post("/orders/new/", block_ticket(("ACC-1", "60"), ("ACC-2", "30")))
    assert response.status_code == 400
    assert grid_errors(response) == ["The percents must sum to exactly 100, not 90."]
    html = text_of(response)
    # The rows come back as typed, for the PM to correct.
    assert 'name="alloc_value_0" id="alloc_value_0" value="60"' in html
    assert 'name="alloc_value_1" id="alloc_value_1" value="30"' in html
    assert '<option value="ACC-2" selected>' in html
    assert 'class="alloc-grid has-error"' in html
    assert not Order.objects.exists() and not OutboundMessage.objects.exists()
    assert AuditEvent.objects.count() == events


def test_an_account_and_a_grid_together_are_refused(pm):
    data = {**ticket(account="ACC-1"), **grid(("ACC-1", "60"), ("ACC-2", "40"))}
    response = signed_in(pm).post("/orders/new/", data)
    assert response.status_code == 400
    assert grid_errors(response) == ["Give an account, or allocations for a block order, not both."]
    assert not Order.objects.exists()


def test_line_errors_show_beside_their_rows_with_the_other_field_errors_in_one_round(pm):
    web = signed_in(pm)
    # The service's errors: a fund the PM may not trade (row 1) and a bad limit price.
    response = web.post(
        "/orders/new/", block_ticket(("ACC-1", "50"), ("ACC-9", "50"), indexes=(2, 7), limit_price="-1")
    )
    assert response.status_code == 400
    assert row_errors(response, 0) == []
    assert row_errors(response, 1) == ["Unknown account, or you are not entitled to trade it."]
    assert 'data-field="limit_price"' in text_of(response) and "has-error" in text_of(response)
    # The form's own errors (a quantity that is not a number) and the grid's together.
    response = web.post("/orders/new/", block_ticket(("ACC-1", "abc"), ("ACC-1", "40"), quantity="many", symbol="AAPL"))
    assert response.status_code == 400
    html = text_of(response)
    assert "Enter a whole number of shares." in html
    assert row_errors(response, 0) == ["Enter a valid decimal number."]
    assert row_errors(response, 1) == ["Account ACC-1 appears twice."]
    assert not Order.objects.exists()


def test_one_fund_in_the_grid_is_not_a_block(pm):
    response = signed_in(pm).post("/orders/new/", block_ticket(("ACC-1", "100")))
    assert response.status_code == 400
    assert grid_errors(response) == ["At least 2 funds are needed; for one, give the account instead."]
    assert not Order.objects.exists()


def test_the_plain_ticket_still_needs_an_account(web):
    response = web.post("/orders/new/", ticket(account=""))
    assert response.status_code == 400
    assert re.search(r'data-field="account".*?This field is required\.', text_of(response), re.S)
    assert not Order.objects.exists()


# ------------------------------------------------------------------- the order page
@pytest.fixture
def block_with_allocation(trader, account, acc2, aapl, venue):
    """trader1's 60/40 block of 1,000 AAPL, filled at 175.50, with an allocation
    confirmed by middle office, its instruction sent and the broker's ack received."""
    order, _ = order_submit(
        user=trader,
        client_order_id="BLK-PAGE-1",
        account="",
        symbol="AAPL",
        side="BUY",
        quantity=1000,
        order_type="LIMIT",
        limit_price=Decimal("175.50"),
        allocations=[{"account": "ACC-1", "percent": "60"}, {"account": "ACC-2", "percent": "40"}],
    )
    assert order.block_order
    Order.objects.filter(pk=order.pk).update(filled_quantity=1000)  # its fills, as far as the page reads them
    order.refresh_from_db()
    now = timezone.now()
    allocation = Allocation.objects.create(
        order=order,
        venue=venue,
        alloc_id="AL-PAGE-1",
        status=Allocation.Status.RECEIVED,
        quantity=1000,
        avg_price=Decimal("175.50"),
        trade_date=dt.date(2026, 3, 2),
        confirmed_by=trader,
        confirmed_at=now,
        ack_status="3",
        ack_text="received, checking",
        acked_at=now,
    )
    for line, (account, quantity, proposed) in enumerate(((order.account, 550, 600), (acc2, 450, 400)), start=1):
        AllocationLine.objects.create(
            allocation=allocation, line=line, account=account, quantity=quantity, proposed_quantity=proposed
        )
    OutboundMessage.objects.create(
        venue=venue,
        order_id=order.pk,
        cl_ord_id="AL-PAGE-1",
        msg_type="J",
        fields=[[70, "AL-PAGE-1"], [71, "0"], [79, "ACC-1"], [80, "550"]],
        state=OutboundMessage.State.SENT,
        sent_at=now,
        msg_seq_num=42,
    )
    audit_event_record(
        actor="venue:SIM",
        action="fix.received",
        object_type="order",
        object_id=order.pk,
        details={"msg_type": "P", "seq": 43, "message": "8=FIX.4.4|35=P|70=AL-PAGE-1|87=3|58=received, checking|"},
    )
    return order, allocation


def test_the_block_page_shows_its_allocation_lines_statuses_and_messages(trader, block_with_allocation):
    order, _ = block_with_allocation
    html = text_of(signed_in(trader).get(f"/orders/{order.pk}/"))
    section = re.search(
        r'<section class="card block-order" data-live-part="block" id="block">.*?</section>', html, re.S
    )
    assert section, "no block section"
    block = section.group(0)
    assert "Block for 2 funds" in block and 'id="block-unallocated">0<' in block  # received: booked
    allocation = re.search(
        r'<div class="allocation" data-alloc-id="AL-PAGE-1">.*?</table>\s*<table.*?</table>', block, re.S
    )
    assert allocation, "no allocation AL-PAGE-1"
    shown = allocation.group(0)
    assert "at SIM" in shown and 'data-status="received"' in shown and "Received by the broker" in shown
    assert "1,000 @ 175.50" in shown and "by trader1 at" in shown
    assert "3 (received): received, checking" in shown
    lines = re.findall(
        r'<tr data-account="([^"]+)"><td>[^<]+</td><td class="num">([^<]+)</td><td class="num">([^<]+)</td>', shown
    )
    assert lines == [("ACC-1", "600", "550"), ("ACC-2", "400", "450")]
    out = re.search(r'<tr class="fix-out" data-msg-type="J">(.*?)</tr>', shown, re.S).group(1)
    assert "<td>Sent</td>" in out and '<td class="num">42</td>' in out
    assert "70=AL-PAGE-1|71=0|79=ACC-1|80=550" in out
    ack = re.search(r'<tr class="fix-in" data-msg-type="P">(.*?)</tr>', shown, re.S).group(1)
    assert "8=FIX.4.4|35=P|70=AL-PAGE-1|87=3|58=received, checking|" in ack


def test_an_allocation_status_change_reaches_the_live_part_of_the_page(trader, block_with_allocation):
    order, allocation = block_with_allocation
    web = signed_in(trader)
    live = web.get(f"/orders/{order.pk}/live/")
    assert live.status_code == 200 and 'data-live-part="block"' in text_of(live)
    assert web.get(f"/orders/{order.pk}/live/", HTTP_IF_NONE_MATCH=live["ETag"]).status_code == 304
    allocation.status, allocation.ack_status, allocation.ack_text = Allocation.Status.ACCEPTED, "0", ""
    allocation.save()
    again = web.get(f"/orders/{order.pk}/live/", HTTP_IF_NONE_MATCH=live["ETag"])
    assert again.status_code == 200 and again["ETag"] != live["ETag"]
    assert 'data-status="accepted"' in text_of(again) and "Accepted by the broker" in text_of(again)
    assert "0 (accepted)" in text_of(again)


def test_a_plain_order_page_has_no_block_section(web, place):
    order = place()
    html = text_of(web.get(f"/orders/{order.pk}/"))
    assert 'id="block"' not in html and f'id="order-account">ACC-1 — {order.account.name}<' in html
