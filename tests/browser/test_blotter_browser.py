"""The blotter as a trader uses it in headless Chromium against the running OMS: sort
by notional by clicking the header (the rows reorder, the URL keeps the sort), tick
three working orders, cancel them after the confirmation, and watch them go to
cancelled on the same page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import RESTING_SYMBOL, login, snap
from .test_trader_pages import enter_order, newest_row

pytestmark = pytest.mark.browser

ORDER_STATUS = "SELECT status FROM orders_order WHERE id = %s"


def row_ids(page) -> list[int]:
    return [
        int(i)
        for i in page.locator("#blotter-rows tr[data-order-id]").evaluate_all(
            "rows => rows.map(r => r.getAttribute('data-order-id'))"
        )
    ]


def test_trader_sorts_by_notional_and_cancels_three_selected_orders(oms, new_page):
    page = new_page()
    login(page, "trader1")
    # Three orders that rest at the venue, entered smallest notional last.
    entered = {}
    for quantity, limit in ((500, "183.50"), (300, "183.40"), (100, "183.60")):
        enter_order(page, symbol=RESTING_SYMBOL, quantity=quantity, limit_price=limit)
        expect(page).to_have_url(re.compile(r"/orders/$"))
        entered[quantity] = int(newest_row(page).get_attribute("data-order-id"))
    big, middle, small = entered[500], entered[300], entered[100]
    for order_id in (big, middle, small):
        oms.wait_for(ORDER_STATUS, (order_id,), lambda rows: rows[0][0] == "open", timeout=20, what="the acks")

    page.get_by_role("link", name="Notional").click()
    expect(page).to_have_url(re.compile(r"/orders/\?sort=notional$"))
    ours = [i for i in row_ids(page) if i in (big, middle, small)]
    assert ours == [small, middle, big]
    expect(page.locator('th[data-sort="notional"]')).to_have_attribute("aria-sort", "ascending")
    page.get_by_role("link", name="Notional").click()
    expect(page).to_have_url(re.compile(r"/orders/\?sort=-notional$"))
    expect(page.locator('th[data-sort="notional"]')).to_have_attribute("aria-sort", "descending")
    ours = [i for i in row_ids(page) if i in (big, middle, small)]
    assert ours == [big, middle, small]
    assert page.locator("#blotter").get_attribute("data-live-src").endswith("?sort=-notional")
    row = page.locator(f'#blotter-rows tr[data-order-id="{big}"]')
    expect(row.locator('[data-field="notional"]')).to_have_text("91,750.00")
    expect(row.locator('[data-field="time"]')).to_have_text(re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$"))
    expect(page.locator('[data-total="orders"]')).not_to_be_empty()
    snap(page, "blotter-by-notional")

    expect(page.get_by_role("button", name="Cancel selected")).to_be_disabled()
    for order_id in (big, middle, small):
        page.get_by_label(f"Select order #{order_id}", exact=True).check()
    expect(page.locator("#selected-count")).to_have_text("3 selected")

    # Declining the confirmation sends nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel selected").click()
    page.wait_for_timeout(300)
    assert [oms.query(ORDER_STATUS, (i,))[0][0] for i in (big, middle, small)] == ["open"] * 3

    questions: list[str] = []

    def accept(dialog):
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Cancel selected").click()
    expect(page).to_have_url(re.compile(r"/orders/\?sort=-notional$"))
    assert questions == [f"Cancel 3 orders: #{big}, #{middle}, #{small}?"]
    for order_id in (big, middle, small):
        expect(page.get_by_role("status")).to_contain_text(f"Cancel requested for order #{order_id}")
    # The venue confirms each cancel; the blotter shows it without a reload.
    for order_id in (big, middle, small):
        status = page.locator(f'#blotter-rows tr[data-order-id="{order_id}"] [data-status]')
        expect(status).to_have_attribute("data-status", "cancelled", timeout=10_000)
        expect(page.get_by_label(f"Select order #{order_id}", exact=True)).to_have_count(0)
    assert [oms.query(ORDER_STATUS, (i,))[0][0] for i in (big, middle, small)] == ["cancelled"] * 3
    requests = oms.query(
        "SELECT order_id, kind, state FROM orders_orderrequest WHERE order_id = ANY(%s) AND kind = 'cancel'",
        ([big, middle, small],),
    )
    assert sorted(r[0] for r in requests) == sorted([big, middle, small])  # one cancel each, none declined
    snap(page, "blotter-cancelled-selected")
