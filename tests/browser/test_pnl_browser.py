"""Fills and P&L as a trader sees them in headless Chromium against the running OMS
(bin/run with the venue simulator): buy, sell part, and read realized and unrealized
P&L on the positions page (row and account total), computed here from the fill prices
the simulator reported; open the fills blotter filtered by symbol; and watch an order's
heading follow a confirmed amendment, and a refused one say why once."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from .conftest import RESTING_SYMBOL, login, snap
from .test_trader_pages import enter_order, newest_row, open_resting_order

pytestmark = pytest.mark.browser

ORDER_STATUS = "SELECT status FROM orders_order WHERE id = %s"
FILLS = "SELECT last_qty, last_px, exec_id FROM orders_execution WHERE order_id = %s AND in_effect ORDER BY id"
MARKER = "window.__sameDocument"
CENT = Decimal("0.01")


def money(amount: Decimal) -> str:
    """As the pages show an amount: to the cent, thousands separated."""
    return f"{amount.quantize(CENT):,f}"


def filled_order(oms, page, **terms) -> int:
    enter_order(page, **terms)
    expect(page).to_have_url(re.compile(r"/orders/$"))
    order_id = int(newest_row(page).get_attribute("data-order-id"))
    oms.wait_for(ORDER_STATUS, (order_id,), lambda rows: rows[0][0] == "filled", timeout=30, what="the fills")
    return order_id


@pytest.fixture(scope="module", autouse=True)
def no_wash_trade_warning(oms):
    # Buying then selling one name within minutes is what the wash-trade rule warns
    # about (the sell would be held): here it is the point, so the rule is off.
    oms.query("UPDATE compliance_rulesetting SET enabled = false WHERE rule = 'wash_trade' RETURNING id")


def test_positions_show_realized_and_unrealized_pnl_after_a_buy_and_a_sell(oms, new_page):
    page = new_page()
    login(page, "trader1")
    # A buy limit under the market fills at its limit; a sell limit over it, at its limit.
    buy = filled_order(oms, page, account="ACC-2", symbol="JNJ", side="Buy", quantity=400, limit_price="151.00")
    sell = filled_order(oms, page, account="ACC-2", symbol="JNJ", side="Sell", quantity=150, limit_price="154.00")

    bought = [(quantity, price) for quantity, price, _ in oms.query(FILLS, (buy,))]
    sold = [(quantity, price) for quantity, price, _ in oms.query(FILLS, (sell,))]
    assert sum(q for q, _ in bought) == 400 and sum(q for q, _ in sold) == 150
    average_cost = sum(q * p for q, p in bought) / 400
    realized = sum(q * (p - average_cost) for q, p in sold)
    (reference,) = oms.query("SELECT reference_price FROM orders_security WHERE symbol = 'JNJ'")[0]
    unrealized = (reference - average_cost) * 250
    assert realized != 0 and unrealized != 0  # the test shows numbers, not zeros

    page.get_by_role("link", name="Positions").click()
    row = page.locator('tr[data-position="ACC-2/JNJ"]')
    expect(row.locator('[data-field="quantity"]')).to_have_text("250")
    expect(row.locator('[data-field="realized_pnl"]')).to_have_text(money(realized))
    expect(row.locator('[data-field="unrealized_pnl"]')).to_have_text(money(unrealized))
    total = page.locator('tr.total[data-total="ACC-2"]')
    expect(total.locator('[data-field="realized_pnl"]')).to_have_text(money(realized))
    expect(total.locator('[data-field="unrealized_pnl"]')).to_have_text(money(unrealized))
    snap(page, "positions-pnl")


def test_the_fills_blotter_filtered_by_symbol_shows_only_that_symbols_fills(oms, new_page):
    page = new_page()
    login(page, "trader1")
    ko = filled_order(oms, page, symbol="KO", quantity=200, limit_price="63.00")
    pfe = filled_order(oms, page, symbol="PFE", quantity=300, limit_price="28.40")
    ko_fills = [exec_id for _, _, exec_id in oms.query(FILLS, (ko,))]
    pfe_fills = [exec_id for _, _, exec_id in oms.query(FILLS, (pfe,))]

    page.get_by_role("link", name="Fills").click()
    expect(page).to_have_url(re.compile(r"/executions/$"))
    exec_ids = page.locator("#execution-rows [data-field='exec_id']")
    expect(exec_ids.filter(has_text=re.compile(f"^{re.escape(pfe_fills[0])}$"))).to_have_count(1)

    page.get_by_label("Symbol").fill("ko")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/executions/\?.*symbol=ko"))
    rows = page.locator("#execution-rows tr[data-execution-id]")
    expect(rows).to_have_count(len(ko_fills))
    expect(rows.locator("[data-field='symbol']")).to_have_text(["KO"] * len(ko_fills))
    # Newest first, each the simulator's ExecID.
    expect(exec_ids).to_have_text(list(reversed(ko_fills)))
    expect(rows.first.locator("[data-field='order']")).to_have_text(f"#{ko}")
    snap(page, "fills-by-symbol")


def test_the_heading_follows_an_amendment_and_a_refused_one_says_why_once(oms, new_page):
    page = new_page()
    login(page, "trader1")
    order_id = open_resting_order(page)
    expect(page.locator("#order-heading")).to_have_text(f"Buy 300 {RESTING_SYMBOL} @ 183.50")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_label("New limit price").fill("250.00")
    page.get_by_role("button", name="Amend order").click()
    expect(page).to_have_url(re.compile(rf"/orders/{order_id}/$"))
    refusal = page.locator(".messages .message.error")
    expect(refusal).to_have_count(1)
    expect(refusal).to_contain_text("Amendment refused by compliance")
    expect(page.locator("#action-error")).to_have_count(0)

    page.get_by_label("New quantity").fill("500")
    page.get_by_label("New limit price").fill("183.60")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Amend order").click()
    expect(page.get_by_role("status")).to_contain_text("Amendment requested")
    page.evaluate(f"{MARKER} = true")
    # The venue confirms; the heading changes on the same document.
    expect(page.locator("#order-heading")).to_have_text(f"Buy 500 {RESTING_SYMBOL} @ 183.60", timeout=10_000)
    assert page.evaluate(MARKER) is True, "the page was reloaded"
    snap(page, "order-heading-amended")
