"""The order ticket in headless Chromium against the running OMS (bin/run), as a trader
works it (issue 15): the notional preview follows what is typed (quantity × limit
price, or × the reference price for a market order), "Check" shows compliance's
verdict without submitting, and "Submit and new" lands on a fresh ticket on the same
account."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from orders.templatetags.oms import price

from .conftest import login, snap

pytestmark = pytest.mark.browser

ORDERS = "SELECT count(*) FROM orders_order"
REFERENCE_PRICE = "SELECT reference_price FROM orders_security WHERE symbol = %s"


def open_ticket(page) -> None:
    page.get_by_role("link", name="New order").first.click()
    expect(page).to_have_url(re.compile(r"/orders/new/"))


def fill_ticket(page, *, account="ACC-1", symbol="AAPL", quantity, limit_price="175.50") -> None:
    page.get_by_label("Account").select_option(account)
    page.get_by_label("Symbol").fill(symbol)
    page.get_by_label("Side").select_option(label="Buy")
    page.get_by_label("Quantity").fill(quantity)
    page.get_by_label("Order type").select_option(label="Limit")
    page.get_by_label("Limit price").fill(limit_price)
    page.get_by_label("Venue").select_option(label="SIM — Venue simulator")


def test_the_notional_preview_follows_quantity_and_price(oms, new_page):
    page = new_page()
    login(page, "trader1")
    open_ticket(page)
    notional = page.locator("#ticket-notional")
    expect(notional).to_be_hidden()

    page.get_by_label("Symbol").fill("AAPL")
    page.get_by_label("Quantity").fill("1,200")
    expect(notional).to_have_text("Notional: enter a limit price.")
    page.get_by_label("Limit price").fill("175.50")
    expect(notional).to_have_text("Notional: 210,600.00 USD (1,200 × 175.50 limit price)")
    page.get_by_label("Quantity").fill("12000")
    page.get_by_label("Limit price").fill("175.555")
    # 2,106,660.00 exactly: decimal arithmetic, not floating point.
    expect(notional).to_have_text("Notional: 2,106,660.00 USD (12,000 × 175.555 limit price)")
    expect(notional).to_have_attribute("data-notional", "2,106,660.00")

    # A market order has no price: the security's reference price stands in, and says so.
    page.get_by_label("Order type").select_option(label="Market")
    page.get_by_label("Symbol").fill("MSFT")
    reference = Decimal(oms.query(REFERENCE_PRICE, ("MSFT",))[0][0])
    expected = f"{(reference * 12000).quantize(Decimal('0.01')):,f}"
    shown = price(reference).replace(",", "")  # as the symbol search gives it
    expect(notional).to_have_text(f"Notional: {expected} USD (12,000 × {shown} reference price, market order)")
    snap(page, "ticket-notional-market")
    page.get_by_label("Quantity").fill("")
    expect(notional).to_be_hidden()


def test_check_shows_the_verdict_and_submits_nothing(oms, new_page):
    page = new_page()
    login(page, "trader1")
    open_ticket(page)
    orders_before = oms.query(ORDERS)[0][0]

    # 100,000 × 175.50 = 17.55 million: over the firm's 10 million per order.
    fill_ticket(page, quantity="100,000")
    expect(page.locator("#ticket-notional")).to_contain_text("17,550,000.00 USD")
    page.get_by_role("button", name="Check", exact=True).click()
    verdict = page.locator("#check-verdict")
    expect(verdict).to_have_attribute("data-outcome", "block")
    expect(verdict).to_contain_text("Compliance would reject this order. Nothing was submitted.")
    expect(verdict.locator('li[data-rule="max_order_notional"]')).to_be_visible()
    snap(page, "ticket-check-block")
    # The ticket is as the trader left it, preview included.
    expect(page.get_by_label("Quantity")).to_have_value("100,000")
    expect(page.get_by_label("Limit price")).to_have_value("175.50")
    expect(page.get_by_label("Account")).to_have_value("ACC-1")
    expect(page.locator("#ticket-notional")).to_contain_text("17,550,000.00 USD")

    page.get_by_label("Quantity").fill("100")
    page.get_by_role("button", name="Check", exact=True).click()
    expect(verdict).to_have_attribute("data-outcome", "pass")
    expect(verdict).to_contain_text("Compliance would let this order through.")
    assert oms.query(ORDERS)[0][0] == orders_before


def test_submit_and_new_lands_on_a_fresh_ticket_with_the_account_kept(oms, new_page):
    page = new_page()
    login(page, "trader1")
    open_ticket(page)
    first_id = page.locator('input[name="client_order_id"]').input_value()

    fill_ticket(page, account="ACC-2", quantity="300")
    page.get_by_role("button", name="Submit and new").click()

    expect(page).to_have_url(re.compile(r"/orders/new/\?account=ACC-2$"))
    expect(page.get_by_role("status")).to_contain_text("submitted: BUY 300 AAPL")
    expect(page.get_by_label("Account")).to_have_value("ACC-2")
    expect(page.get_by_label("Quantity")).to_have_value("")
    expect(page.get_by_label("Symbol")).to_have_value("")
    expect(page.get_by_label("Limit price")).to_have_value("")
    expect(page.locator("#alloc-rows tr.alloc-row")).to_have_count(0)
    assert page.locator('input[name="client_order_id"]').input_value() != first_id
    message = page.get_by_role("status").inner_text()
    order_id = int(re.search(r"Order #(\d+) submitted", message).group(1))
    rows = oms.query(
        "SELECT a.code, o.quantity, o.client_order_id FROM orders_order o "
        "JOIN orders_account a ON a.id = o.account_id WHERE o.id = %s",
        (order_id,),
    )
    assert rows == [("ACC-2", 300, first_id)]
    snap(page, "ticket-submit-and-new")
