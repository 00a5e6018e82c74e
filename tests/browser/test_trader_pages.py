"""A trader's day in headless Chromium against the running OMS (bin/run: web server,
Celery worker hosting the FIX session, venue simulator): sign in, enter orders on the
ticket by its labels, watch the blotter follow acks and fills without a reload, amend
and cancel, meet a compliance block set by middle office in the admin, and ask for an
override of a held order that middle office then approves."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from .conftest import RESTING_SYMBOL, login, snap

pytestmark = pytest.mark.browser

ORDER_STATUS = "SELECT status, filled_quantity, quantity FROM orders_order WHERE id = %s"
MARKER = "window.__sameDocument"


def enter_order(
    page,
    *,
    account="ACC-1",
    symbol,
    side="Buy",
    quantity,
    order_type="Limit",
    limit_price=None,
    tif="Day",
    venue="SIM — Venue simulator",
    screenshot: str | None = None,
) -> None:
    page.get_by_role("link", name="New order").first.click()
    expect(page).to_have_url(re.compile(r"/orders/new/$"))
    page.get_by_label("Account").select_option(account)
    page.get_by_label("Symbol").fill(symbol)
    page.get_by_label("Side").select_option(label=side)
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_label("Order type").select_option(label=order_type)
    if limit_price is not None:
        page.get_by_label("Limit price").fill(limit_price)
    else:
        expect(page.get_by_label("Limit price")).to_be_hidden()
    expect(page.get_by_label("Stop price")).to_be_hidden()
    page.get_by_label("Time in force").select_option(label=tif)
    page.get_by_label("Venue").select_option(label=venue)
    if screenshot:
        snap(page, screenshot)
    page.get_by_role("button", name="Submit order").click()
    page.wait_for_load_state()


def newest_row(page):
    return page.locator("#blotter-rows tr[data-order-id]").first


def open_resting_order(page, *, quantity: int = 300, limit_price: str = "183.50") -> int:
    """Enter a BUY of the symbol the simulator leaves resting, open its page and wait
    until the venue has acknowledged it (open); its id."""
    enter_order(page, symbol=RESTING_SYMBOL, quantity=quantity, limit_price=limit_price)
    order_id = int(newest_row(page).get_attribute("data-order-id"))
    newest_row(page).get_by_role("link", name=f"#{order_id}").click()
    expect(page.locator("#order-status")).to_have_attribute("data-status", "open", timeout=10_000)
    return order_id


def order_id_from_url(page) -> int:
    match = re.search(r"/orders/(\d+)/", page.url)
    assert match, page.url
    return int(match.group(1))


def test_trader_submits_an_order_and_the_blotter_follows_it_to_filled_without_a_reload(oms, new_page):
    page = new_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    snap(page, "login")
    login(page, "trader1", path=page.url)
    expect(page).to_have_url(re.compile(r"/orders/$"))

    page.get_by_role("link", name="New order").first.click()
    # The symbol search offers the security master as the trader types.
    page.get_by_label("Symbol").fill("AA")
    expect(page.locator("#symbol-options option[value='AAPL']")).to_have_count(1)
    page.get_by_label("Symbol").fill("AAPL")
    expect(page.locator("#symbol-hint")).to_contain_text("Apple Inc.")
    page.go_back()
    enter_order(page, symbol="AAPL", quantity=400, limit_price="175.40", screenshot="order-ticket")

    expect(page).to_have_url(re.compile(r"/orders/$"))
    expect(page.get_by_role("status")).to_contain_text("submitted: BUY 400 AAPL")
    row = newest_row(page)
    expect(row.locator("td.symbol")).to_have_text("AAPL")
    order_id = int(row.get_attribute("data-order-id"))
    page.evaluate(f"{MARKER} = true")

    # The worker applies the simulator's fills (four parts half a second apart); the
    # blotter shows the last within 2 s of its commit, on the same document.
    oms.wait_for(ORDER_STATUS, (order_id,), lambda rows: rows[0][0] == "filled", timeout=30, what="the fills")
    filled_in_db = time.monotonic()
    status = page.locator(f'#blotter-rows tr[data-order-id="{order_id}"] [data-status]')
    expect(status).to_have_attribute("data-status", "filled", timeout=2_000)
    assert time.monotonic() - filled_in_db < 2.0
    assert page.evaluate(MARKER) is True, "the page was reloaded"
    cells = page.locator(f'#blotter-rows tr[data-order-id="{order_id}"]')
    expect(cells.locator('[data-field="filled"]')).to_have_text("400")
    expect(cells.locator('[data-field="leaves"]')).to_have_text("0")
    expect(cells.locator('[data-field="avg"]')).to_have_text("175.40")
    snap(page, "blotter")

    cells.get_by_role("link", name=f"#{order_id}").click()
    expect(page.locator("#order-status")).to_have_attribute("data-status", "filled")
    expect(page.locator("#executions tbody tr")).to_have_count(4)
    expect(page.locator("#fix-messages")).to_contain_text("NewOrderSingle")
    expect(page.locator("#fix-messages")).to_contain_text("ExecutionReport")
    expect(page.locator("#timeline")).to_contain_text("order.fill")
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
    snap(page, "order-detail-filled")

    page.get_by_role("link", name="Positions").click()
    position = page.locator('tr[data-position="ACC-1/AAPL"]')
    expect(position.locator('[data-field="quantity"]')).not_to_have_text("0")
    expect(position.locator('[data-field="average_cost"]')).not_to_be_empty()
    snap(page, "positions")


def test_trader_amends_then_cancels_a_working_order_with_confirmation(oms, new_page):
    page = new_page()
    login(page, "trader1")
    order_id = open_resting_order(page)
    page.evaluate(f"{MARKER} = true")

    # Declining the confirmation sends nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel order").click()
    page.wait_for_timeout(300)
    assert page.evaluate(MARKER) is True
    assert oms.query(ORDER_STATUS, (order_id,))[0][0] == "open"

    page.get_by_label("New quantity").fill("500")
    page.get_by_label("New limit price").fill("183.60")
    messages: list[str] = []

    def accept(dialog):
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Amend order").click()
    expect(page.get_by_role("status")).to_contain_text("Amendment requested")
    assert messages and f"order #{order_id}" in messages[0]
    # The venue confirms the replace; the terms change on the page by themselves.
    expect(page.locator("#order-quantity")).to_have_text("500", timeout=10_000)
    expect(page.locator("#order-limit")).to_have_text("183.60")
    expect(page.locator("#order-status")).to_have_attribute("data-status", "open")
    snap(page, "order-amended")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_role("status")).to_contain_text("Cancel requested")
    expect(page.locator("#order-status")).to_have_attribute("data-status", "cancelled", timeout=10_000)
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
    expect(page.get_by_role("button", name="Amend order")).to_have_count(0)
    expect(page.locator("#timeline")).to_contain_text("order.cancelled")
    expect(page.locator("#fix-messages")).to_contain_text("OrderCancelReplaceRequest")
    expect(page.locator("#fix-messages")).to_contain_text("OrderCancelRequest")
    assert oms.query(ORDER_STATUS, (order_id,))[0][:2] == ("cancelled", 0)
    # The declined confirmation sent nothing: one cancel request, the accepted one.
    requests = oms.query("SELECT kind, state FROM orders_orderrequest WHERE order_id = %s ORDER BY id", (order_id,))
    assert [state for kind, state in requests if kind == "cancel"] == ["accepted"], requests
    assert [state for kind, state in requests if kind == "replace"] == ["accepted"], requests
    snap(page, "order-cancelled")


def test_middle_office_restricts_an_issuer_in_the_admin_and_the_trader_sees_the_block(oms, new_page):
    officer = new_page()
    login(officer, "mo1", path="/admin/login/")
    officer.goto("/admin/compliance/restrictedentry/add/")
    officer.get_by_label("Issuer").fill("Exxon Mobil Corporation")
    officer.get_by_label("Reason").fill("Deal team wall-crossed: Project Delta")
    snap(officer, "admin-restricted-list-add")
    officer.get_by_role("button", name="Save").click()
    expect(officer.locator(".messagelist")).to_contain_text("Exxon Mobil Corporation")

    page = new_page()
    login(page, "trader1")
    enter_order(page, symbol="XOM", side="Buy", quantity=200, limit_price="112.40")
    expect(page).to_have_url(re.compile(r"/orders/\d+/$"))
    expect(page.locator("#order-status")).to_have_attribute("data-status", "rejected")
    expect(page.locator("#rejected")).to_contain_text("Exxon Mobil Corporation is on the restricted list.")
    assert "Project Delta" not in page.content()  # the reason is for compliance only
    assert oms.query(ORDER_STATUS, (order_id_from_url(page),))[0][0] == "rejected"
    snap(page, "order-blocked")


def test_a_held_order_gets_an_override_request_and_middle_office_releases_it(oms, new_page):
    page = new_page()
    login(page, "trader1")
    enter_order(page, symbol=RESTING_SYMBOL, quantity=150, limit_price="184.00", account="ACC-2")
    # The same order again within a minute: the duplicate-order rule warns.
    page.goto("/orders/")
    enter_order(page, symbol=RESTING_SYMBOL, quantity=150, limit_price="184.00", account="ACC-2")
    expect(page).to_have_url(re.compile(r"/orders/\d+/$"))
    held_id = order_id_from_url(page)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "held")
    expect(page.locator("#held")).to_contain_text("Same account, security, side, quantity and price")
    snap(page, "order-held")

    page.get_by_label("Justification").fill("Second clip for the same client, intended")
    page.get_by_role("button", name="Request override").click()
    expect(page.get_by_role("status")).to_contain_text("Override requested")
    expect(page.locator("#held")).to_contain_text("Override pending")
    expect(page.get_by_role("button", name="Request override")).to_have_count(0)
    page.evaluate(f"{MARKER} = true")

    officer = new_page()
    login(officer, "mo1", path="/admin/login/")
    officer.goto("/admin/compliance/overriderequest/?status__exact=pending")
    override_row = officer.locator("#result_list tbody tr", has_text="Second clip for the same client")
    override_row.locator("input[name=_selected_action]").check()
    officer.locator("select[name=action]").select_option("approve")
    officer.get_by_role("button", name="Go").click()
    officer.get_by_role("button", name="Approve override requests").click()
    expect(officer.locator(".messagelist")).to_contain_text("Approved 1 override request")
    snap(officer, "admin-override-approved")

    # The trader's page follows the release: routed, then acknowledged by the venue.
    expect(page.locator("#order-status")).to_have_attribute("data-status", "open", timeout=10_000)
    expect(page.locator("#held")).to_have_count(0)
    assert page.evaluate(MARKER) is True
    assert oms.query(ORDER_STATUS, (held_id,))[0][0] == "open"
    snap(page, "order-released")


def test_a_portfolio_managers_order_is_accepted_from_incoming_and_worked_in_children(oms, new_page):
    pm = new_page()
    login(pm, "pm1")
    enter_order(pm, symbol="MSFT", quantity=1000, limit_price="420.00", screenshot="pm-ticket")
    expect(pm).to_have_url(re.compile(r"/orders/$"))
    parent_id = int(newest_row(pm).get_attribute("data-order-id"))
    expect(newest_row(pm).locator("[data-status]")).to_have_attribute("data-status", "new")
    expect(pm.get_by_role("link", name="Incoming")).to_have_count(0)  # PMs feed the queue

    trader = new_page()
    login(trader, "trader1")
    trader.get_by_role("link", name="Incoming").click()
    row = trader.locator(f'#incoming tr[data-order-id="{parent_id}"]')
    expect(row).to_contain_text("pm1")
    snap(trader, "incoming")
    row.get_by_role("button", name="Accept").click()
    expect(trader).to_have_url(re.compile(rf"/orders/{parent_id}/$"))
    expect(trader.locator("#order-owner")).to_have_text("trader1")

    child_form = trader.locator("#child-form")
    for _ in range(2):
        child_form.get_by_label("Quantity", exact=True).fill("500")
        child_form.get_by_label("Limit price").fill("420.00")
        child_form.get_by_role("button", name="Place child").click()
        expect(trader.get_by_role("status")).to_contain_text("placed")
    expect(trader.locator("#order-placed")).to_have_text("1,000")
    children = trader.locator("#children tbody tr[data-order-id]")
    expect(children).to_have_count(2)
    # The simulator fills both children; the parent's page follows them live.
    child_ids = [int(children.nth(i).get_attribute("data-order-id")) for i in range(2)]
    for child_id in child_ids:
        oms.wait_for(ORDER_STATUS, (child_id,), lambda rows: rows[0][0] == "filled", timeout=30, what="child fills")
        expect(trader.locator(f'#children tr[data-order-id="{child_id}"] [data-status]')).to_have_attribute(
            "data-status", "filled"
        )
    snap(trader, "desk-order-children-filled")
    # The PM follows the progress of their order.
    pm.goto(f"/orders/{parent_id}/")
    expect(pm.locator("#children tbody tr[data-order-id]")).to_have_count(2)
