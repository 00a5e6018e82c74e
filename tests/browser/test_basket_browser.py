"""Issue 15's basket, done when: in headless Chromium against the running OMS (web
server, Celery worker hosting the FIX session, venue simulator), a trader pastes a
50-line CSV with one bad line, checks it, sees the bad line's error beside it and the
verdicts of the others, fixes the line in the text box, checks again, submits, and
watches the basket's page reach 100% filled without a reload."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from .conftest import RESTING_SYMBOL, login, snap
from .test_csp import _watch

pytestmark = pytest.mark.browser

HEADER = "account,symbol,side,quantity,order_type,limit_price,time_in_force"
# Reference prices of seed_demo (IBM rests at the simulator: left out).
SYMBOLS = {
    "AAPL": "175.50",
    "MSFT": "415.20",
    "GOOGL": "168.40",
    "AMZN": "185.10",
    "NVDA": "121.30",
    "JPM": "205.15",
    "KO": "63.10",
    "PEP": "168.95",
    "XOM": "112.40",
    "WMT": "68.30",
}
# A program trade buys and sells the same names in many lines at once, which these
# rules judge as intent (duplicates, wash trades, sells beyond the position, message
# rates): the firm switches them off for it, as the lifecycle suites do.
QUIET_RULES = ("duplicate_order", "wash_trade", "short_sale", "order_rate_trader", "order_rate_account")
BAD_LINE = 20  # the 20th order line: line 21 of the text, under the header
MARKER = "window.__sameDocument"


def basket_lines() -> list[str]:
    """50 marketable orders over two accounts: BUY and SELL, MARKET and LIMIT."""
    lines = []
    symbols = list(SYMBOLS)
    for n in range(1, 51):
        symbol = symbols[n % len(symbols)]
        side = "BUY" if n % 2 else "SELL"
        account = "ACC-1" if n % 3 else "ACC-2"
        quantity = 100 * (1 + n % 5)
        if n % 4 == 0:
            lines.append(f"{account},{symbol},{side},{quantity},MARKET,,DAY")
        else:
            reference = Decimal(SYMBOLS[symbol])
            limit = reference * (Decimal("1.02") if side == "BUY" else Decimal("0.98"))
            lines.append(f"{account},{symbol},{side},{quantity},LIMIT,{limit.quantize(Decimal('0.01'))},DAY")
    return lines


def test_trader_uploads_a_50_line_basket_fixes_a_bad_line_and_watches_it_fill(oms, new_page):
    oms.query(
        "UPDATE compliance_rulesetting SET enabled = false WHERE scope = 'firm' AND rule = ANY(%s) RETURNING id",
        (list(QUIET_RULES),),
    )
    lines = basket_lines()
    good = lines[BAD_LINE - 1]
    bad = re.sub(r"^([^,]*,[^,]*,[^,]*),\d+,", r"\1,abc,", good)
    assert bad != good
    lines[BAD_LINE - 1] = bad
    text = "\n".join([HEADER, *lines])

    page = new_page()
    violations = _watch(page)
    login(page, "trader1")
    page.get_by_role("link", name="Baskets").click()
    expect(page).to_have_url(re.compile(r"/baskets/$"))
    page.get_by_role("link", name="New basket").click()
    expect(page).to_have_url(re.compile(r"/baskets/new/$"))
    page.get_by_label("Name").fill("Browser program trade")
    page.get_by_label("Orders (CSV)").fill(text)
    page.get_by_role("button", name="Check").click()

    bad_row = page.locator(f'#basket-lines tr[data-line="{BAD_LINE + 1}"]')
    expect(bad_row).to_have_attribute("data-verdict", "invalid")
    expect(bad_row.locator('[data-field="check"]')).to_have_text("Quantity: Must be a whole number.")
    expect(page.locator('#basket-lines tr[data-verdict="pass"]')).to_have_count(49)
    expect(page.locator("#check-summary")).to_contain_text("50 lines: 49 pass, 0 warn, 0 block, 1 with errors")
    expect(page.get_by_role("button", name="Submit basket")).to_have_count(0)
    snap(page, "basket-check-bad-line")

    # The text is still in the box: the trader fixes the one line there.
    box = page.get_by_label("Orders (CSV)")
    assert bad in box.input_value()
    box.fill(box.input_value().replace(bad, good))
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#check-summary")).to_contain_text("50 lines: 50 pass, 0 warn, 0 block, 0 with errors")
    expect(page.locator('#basket-lines tr[data-verdict="pass"]')).to_have_count(50)
    snap(page, "basket-check-clean")

    page.get_by_role("button", name="Submit basket").click()
    expect(page).to_have_url(re.compile(r"/baskets/\d+/$"))
    basket_id = int(re.search(r"/baskets/(\d+)/", page.url).group(1))
    expect(page.get_by_role("status")).to_contain_text(f"Basket #{basket_id} submitted: 50 lines, 50 routed")
    expect(page.locator("#basket-order-rows tr[data-order-id]")).to_have_count(50)
    expect(page.locator('[data-field="lines"]')).to_have_text("50")
    page.evaluate(f"{MARKER} = true")

    # The worker sends the orders and applies the simulator's fills; the page follows.
    oms.wait_for(
        "SELECT count(*) FILTER (WHERE status = 'filled'), count(*) FROM orders_order WHERE basket_id = %s",
        (basket_id,),
        lambda rows: rows[0] == (50, 50),
        timeout=120,
        what="every order of the basket to fill",
    )
    expect(page.locator('[data-field="percent_done"]')).to_have_text("100.0%", timeout=5_000)
    expect(page.locator('[data-field="filled_lines"]')).to_have_text("50")
    expect(page.locator('[data-field="working"]')).to_have_text("0")
    expect(page.locator("#basket-order-rows [data-status]:not([data-status='filled'])")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel all working")).to_have_count(0)
    total = sum(int(line.split(",")[3]) for line in basket_lines())
    expect(page.locator('[data-field="filled_quantity"]')).to_have_text(f"{total:,}")
    notional = oms.query(
        "SELECT sum(filled_quantity * avg_fill_price) FROM orders_order WHERE basket_id = %s", (basket_id,)
    )[0][0]
    expect(page.locator('[data-field="filled_notional"]')).to_have_text(f"{notional.quantize(Decimal('0.01')):,f}")
    assert page.evaluate(MARKER) is True, "the page was reloaded"
    assert not violations, violations
    snap(page, "basket-filled")


def test_trader_cancels_all_working_orders_of_a_basket_after_confirming(oms, new_page):
    """Orders in the simulator's resting symbol stay working until cancelled."""
    page = new_page()
    login(page, "trader1")
    page.goto("/baskets/new/")
    page.get_by_label("Orders (CSV)").fill(
        "\n".join([HEADER, *(f"ACC-1,{RESTING_SYMBOL},BUY,{100 * n},LIMIT,183.50,DAY" for n in (1, 2, 3))])
    )
    page.get_by_role("button", name="Check").click()
    page.get_by_role("button", name="Submit basket").click()
    expect(page).to_have_url(re.compile(r"/baskets/\d+/$"))
    basket_id = int(re.search(r"/baskets/(\d+)/", page.url).group(1))
    statuses = "SELECT status FROM orders_order WHERE basket_id = %s ORDER BY id"
    oms.wait_for(statuses, (basket_id,), lambda rows: [r[0] for r in rows] == ["open"] * 3, 30, "the acks")
    expect(page.locator("#basket-order-rows [data-status='open']")).to_have_count(3)

    # Declining the confirmation sends nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel all working").click()
    page.wait_for_timeout(300)
    assert [r[0] for r in oms.query(statuses, (basket_id,))] == ["open"] * 3

    questions: list[str] = []

    def accept(dialog):
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Cancel all working").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Basket #{basket_id}: 3 working orders cancelled or sent a cancel request."
    )
    assert questions == [f"Cancel all 3 working orders of basket #{basket_id}?"]
    oms.wait_for(statuses, (basket_id,), lambda rows: [r[0] for r in rows] == ["cancelled"] * 3, 30, "the cancels")
    expect(page.locator("#basket-order-rows [data-status='cancelled']")).to_have_count(3)
    expect(page.locator('[data-field="cancelled"]')).to_have_text("3")
    expect(page.get_by_role("button", name="Cancel all working")).to_have_count(0)
    snap(page, "basket-cancelled")
