"""A block order in headless Chromium against the running OMS (bin/run): a portfolio
manager fills in the ticket's "Allocate to funds" grid (rows added by the page's
script, a running total), submits a block for two funds and lands on its page; a
trader then finds it on the Incoming tab and accepts it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import login, snap
from .test_trader_pages import order_id_from_url

pytestmark = pytest.mark.browser

BLOCK = "SELECT block_order, desk_order, allocation_targets, quantity, status FROM orders_order WHERE id = %s"
OWNER = "SELECT u.username FROM orders_order o JOIN auth_user u ON u.id = o.owner_id WHERE o.id = %s"


def test_a_portfolio_manager_enters_a_block_for_two_funds_and_a_trader_accepts_it(oms, new_page):
    pm = new_page()
    login(pm, "pm1")
    pm.get_by_role("link", name="New order").first.click()
    expect(pm).to_have_url(re.compile(r"/orders/new/$"))
    account = pm.locator("#id_account")
    expect(account).to_be_enabled()
    pm.get_by_label("Symbol").fill("AAPL")
    pm.get_by_label("Side").select_option(label="Buy")
    pm.get_by_label("Quantity").fill("1,000")
    pm.get_by_label("Order type").select_option(label="Limit")
    pm.get_by_label("Limit price").fill("175.50")

    # Two rows of the grid, added by the page's script; the order becomes a block.
    add = pm.get_by_role("button", name="Add fund")
    add.click()
    add.click()
    expect(pm.locator("#alloc-rows tr.alloc-row")).to_have_count(2)
    expect(account).to_be_disabled()
    pm.get_by_label("Fund 1", exact=True).select_option("ACC-1")
    pm.get_by_label("Allocation 1", exact=True).fill("60")
    pm.get_by_label("Fund 2", exact=True).select_option("ACC-2")
    pm.get_by_label("Allocation 2", exact=True).fill("30")
    total = pm.locator("#alloc-total")
    expect(total).to_have_text("90% of 100%")
    expect(total).to_have_attribute("data-state", "off")
    pm.get_by_label("Allocation 2", exact=True).fill("40")
    expect(total).to_have_text("100% of 100%")
    expect(total).to_have_attribute("data-state", "ok")
    # By shares, the same rows total against the order quantity.
    pm.get_by_label("By shares").check()
    expect(pm.locator("#alloc-value-head")).to_have_text("Shares")
    expect(total).to_have_text("100 of 1,000")
    pm.get_by_label("By percent").check()
    expect(total).to_have_text("100% of 100%")
    snap(pm, "block-ticket")
    pm.get_by_role("button", name="Submit order").click()

    expect(pm).to_have_url(re.compile(r"/orders/\d+/$"))
    order_id = order_id_from_url(pm)
    expect(pm.get_by_role("status")).to_contain_text(
        f"Block order #{order_id} submitted for 2 funds: BUY 1,000 AAPL (waiting for a trader)."
    )
    block = pm.locator("#block")
    expect(block.get_by_role("heading", name="Block for 2 funds")).to_be_visible()
    expect(block.locator('#block-targets li[data-account="ACC-1"]')).to_have_text("ACC-1 60%")
    expect(block.locator('#block-targets li[data-account="ACC-2"]')).to_have_text("ACC-2 40%")
    expect(pm.locator("#order-account")).to_have_text("Block (ACC-1, ACC-2)")
    expect(pm.locator("#order-status")).to_have_attribute("data-status", "new")
    expect(pm.locator("#order-owner")).to_have_text("waiting for a trader")
    snap(pm, "block-order-new")
    block_order, desk_order, targets, quantity, status = oms.query(BLOCK, (order_id,))[0]
    assert (block_order, desk_order, quantity, status) == (True, True, 1000, "new")
    assert targets == [{"account": "ACC-1", "percent": "60"}, {"account": "ACC-2", "percent": "40"}]

    trader = new_page()
    login(trader, "trader1")
    trader.get_by_role("link", name="Incoming").click()
    row = trader.locator(f'#incoming tr[data-order-id="{order_id}"]')
    expect(row).to_contain_text("pm1")
    expect(row).to_contain_text("Block (ACC-1, ACC-2)")
    snap(trader, "block-incoming")
    row.get_by_role("button", name="Accept").click()
    expect(trader).to_have_url(re.compile(rf"/orders/{order_id}/$"))
    expect(trader.locator("#order-owner")).to_have_text("trader1")
    expect(trader.locator("#child-form")).to_be_visible()
    assert oms.query(OWNER, (order_id,)) == [("trader1",)]
    # The PM's page follows the acceptance without a reload (the live part).
    expect(pm.locator("#order-owner")).to_have_text("trader1")
    expect(pm.locator("#block")).to_contain_text("Block for 2 funds")
