"""Middle office allocates a block order in the admin, in headless Chromium against the
running OMS (bin/run): a trader's block order for two funds is filled by the venue
simulator, the OMS proposes its allocation, and middle office opens the allocation
queue, changes the quantities with a reason and confirms, which books the funds'
positions and sends the broker the AllocationInstruction (35=J)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import login, snap

pytestmark = pytest.mark.browser

ALLOCATION = "SELECT id, alloc_id, status FROM orders_allocation WHERE order_id = %s ORDER BY id"
LINES = (
    "SELECT a.code, l.quantity FROM orders_allocationline l JOIN orders_account a ON a.id = l.account_id "
    "WHERE l.allocation_id = %s ORDER BY l.line"
)
POSITIONS = (
    "SELECT a.code, p.quantity FROM orders_position p JOIN orders_account a ON a.id = p.account_id "
    "JOIN orders_security s ON s.id = p.security_id WHERE s.symbol = %s AND a.code IN ('ACC-1', 'ACC-2') "
    "ORDER BY a.code"
)


def block_order_submit(page, *, symbol: str, quantity: int, limit_price: str) -> int:
    """A block order for ACC-1 (60%) and ACC-2 (40%) through the API, with the
    signed-in trader's session (the ticket page takes one account)."""
    csrf = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    response = page.request.post(
        "/api/v1/orders/",
        data={
            "client_order_id": "BLOCK-BROWSER-1",
            "allocations": [{"account": "ACC-1", "percent": "60"}, {"account": "ACC-2", "percent": "40"}],
            "symbol": symbol,
            "side": "BUY",
            "quantity": quantity,
            "order_type": "LIMIT",
            "limit_price": limit_price,
            "venue": "SIM",
        },
        headers={"X-CSRFToken": csrf, "Referer": page.url},
    )
    assert response.status == 201, response.text()
    body = response.json()
    assert body["allocations"] and body["status"] not in ("rejected", "held"), body
    return body["id"]


def test_middle_office_changes_and_confirms_a_block_allocation_in_the_admin(oms, new_page):
    trader = new_page()
    login(trader, "trader1")
    block_id = block_order_submit(trader, symbol="MSFT", quantity=1000, limit_price="420.00")
    # The simulator fills the block; the OMS then proposes the allocation 600 / 400.
    rows = oms.wait_for(
        ALLOCATION, (block_id,), lambda rows: rows and rows[0][2] == "proposed", timeout=60, what="the proposal"
    )
    allocation_id, alloc_id, _status = rows[0]
    assert oms.query(LINES, (allocation_id,)) == [("ACC-1", 600), ("ACC-2", 400)]

    officer = new_page()
    login(officer, "mo1", path="/admin/login/")
    officer.goto("/admin/")
    officer.get_by_role("link", name="Allocations").first.click()
    expect(officer).to_have_url(re.compile(r"/admin/orders/allocation/$"))
    row = officer.locator("#result_list tbody tr", has_text=alloc_id)
    expect(row).to_contain_text("ACC-1 600 / ACC-2 400")
    expect(row).to_contain_text("Proposed")
    snap(officer, "admin-allocation-queue")

    row.get_by_role("link", name=alloc_id).click()
    expect(officer).to_have_url(re.compile(rf"/admin/orders/allocation/{allocation_id}/change/$"))
    expect(officer.locator("#allocation-lines")).to_contain_text("ACC-2")

    officer.get_by_role("link", name="Change quantities…").click()
    officer.get_by_label("ACC-1").fill("500")
    officer.get_by_label("ACC-2").fill("500")
    officer.get_by_label("Reason").fill("PM moved 100 shares to the growth fund")
    snap(officer, "admin-allocation-change")
    officer.get_by_role("button", name="Change allocation quantities").click()
    expect(officer.locator(".messagelist")).to_contain_text(f"Changed allocation {alloc_id}: ACC-1 500 / ACC-2 500")
    expect(officer.locator("#allocation-lines")).to_contain_text("500")
    assert oms.query(LINES, (allocation_id,)) == [("ACC-1", 500), ("ACC-2", 500)]

    officer.get_by_role("link", name="Confirm and send…").click()
    officer.get_by_role("button", name="Confirm allocation").click()
    expect(officer.locator(".messagelist")).to_contain_text(f"Confirmed allocation {alloc_id}")
    # The broker (the simulator) may already have acknowledged it: received or accepted.
    expect(officer.locator(".field-status")).to_contain_text(
        re.compile("Confirmed \\(instruction sent\\)|Received by the broker|Accepted by the broker")
    )
    expect(officer.locator("#allocation-instructions")).to_contain_text(f"70={alloc_id}|71=0|")
    expect(officer.locator("#allocation-instructions")).to_contain_text("79=ACC-1|80=500|79=ACC-2|80=500")
    expect(officer.get_by_role("link", name="Confirm and send…")).to_have_count(0)
    snap(officer, "admin-allocation-confirmed")
    assert oms.query(ALLOCATION, (block_id,))[0][2] in ("confirmed", "received", "accepted")
    assert oms.query(POSITIONS, ("MSFT",)) == [("ACC-1", 500), ("ACC-2", 500)]

    # The worker sends the instruction and the simulator's acks come back to the page.
    oms.wait_for(ALLOCATION, (block_id,), lambda rows: rows[0][2] == "accepted", timeout=30, what="the broker's ack")
    officer.reload()
    expect(officer.locator(".field-status")).to_contain_text("Accepted by the broker")
    expect(officer.locator("#allocation-instructions")).to_contain_text("Sent")
    expect(officer.locator("#allocation-acks")).to_contain_text(f"70={alloc_id}|")
    expect(officer.get_by_role("link", name="Cancel and propose afresh…")).to_have_count(0)
    snap(officer, "admin-allocation-accepted")
