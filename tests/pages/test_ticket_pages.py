"""The order ticket as a trader works it (issue 15): every field error in one round
(the form's own and the service's together), "Submit and new" (a fresh ticket on the
same account), and "Check" (compliance's what-if on the page, nothing written)."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEvent
from compliance.services import restricted_entry_add, watch_entry_add
from orders.models import Order, OrderStatus
from tests.compliance.conftest import counts

from .conftest import field_errors, signed_in, text_of, ticket
from .test_block_pages import block_ticket, grid_errors, row_errors

pytestmark = pytest.mark.django_db

NOT_A_NUMBER = "Enter a whole number of shares."


def ticket_id(response) -> str:
    return re.search(r'name="client_order_id" value="([^"]+)"', text_of(response)).group(1)


def verdict(response) -> str:
    block = re.search(r'<section class="notice [^"]*" id="check-verdict".*?</section>', text_of(response), re.S)
    assert block, "no verdict on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", block.group(0))).strip()


# ------------------------------------------------------------------ one round
def test_a_bad_quantity_and_a_missing_limit_price_show_together(web):
    before = counts()
    response = web.post("/orders/new/", ticket(quantity="abc", limit_price=""))
    assert response.status_code == 400
    assert field_errors(response, "quantity") == [NOT_A_NUMBER]
    assert field_errors(response, "limit_price") == ["Required for a LIMIT order."]
    assert counts() == before


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"symbol": "NOPE"}, "symbol", "Unknown symbol."),
        ({"order_type": "MARKET"}, "limit_price", "Not allowed on a MARKET order."),
        ({"order_type": "STOP", "limit_price": ""}, "stop_price", "Required for a STOP order."),
        ({"limit_price": "-1"}, "limit_price", "Must be greater than zero."),
        ({"time_in_force": "GTD"}, "expire_at", "Required for a GTD order (ISO 8601 date and time)."),
        ({"time_in_force": "GTD", "expire_at": "2001-01-01T10:00"}, "expire_at", "Must be in the future."),
        ({"expire_at": "2030-01-01T10:00"}, "expire_at", "Only allowed with time in force GTD."),
        ({"venue": ""}, "limit_price", None),
        ({"short_exempt_reason": "market maker"}, "short_exempt_reason", "Only a SELL_SHORT order"),
    ],
)
def test_the_services_checks_show_beside_a_form_error_in_the_same_round(web, overrides, field, message):
    before = counts()
    response = web.post("/orders/new/", ticket(quantity="ten", **overrides))
    assert response.status_code == 400
    assert field_errors(response, "quantity") == [NOT_A_NUMBER]
    shown = field_errors(response, field)
    if message is None:
        assert shown == []  # nothing else is wrong: only the quantity is flagged
    else:
        assert len(shown) == 1 and shown[0].startswith(message), shown
    assert counts() == before


def test_an_account_the_trader_may_not_trade_is_flagged_once_with_the_others(web, other_account):
    response = web.post("/orders/new/", ticket(account="ACC-3", quantity="ten", symbol="NOPE"))
    assert response.status_code == 400
    assert field_errors(response, "account") == ["Select a valid choice. ACC-3 is not one of the available choices."]
    assert field_errors(response, "symbol") == ["Unknown symbol."]
    assert field_errors(response, "quantity") == [NOT_A_NUMBER]
    assert not Order.objects.exists()


def test_a_check_that_reads_a_flagged_field_is_left_out(web):
    # The order type cannot be read: whether a limit price belongs is not known yet.
    response = web.post("/orders/new/", ticket(order_type="BOGUS", quantity="ten"))
    assert response.status_code == 400
    assert field_errors(response, "order_type")[0].startswith("Select a valid choice.")
    assert field_errors(response, "limit_price") == []
    # Likewise the expiry against a time in force that cannot be read.
    response = web.post("/orders/new/", ticket(time_in_force="SOON", expire_at="2030-01-01T10:00"))
    assert field_errors(response, "expire_at") == []
    assert field_errors(response, "time_in_force")[0].startswith("Select a valid choice.")


def test_a_grid_with_a_form_error_shows_each_error_once_and_the_funds_not_entitled(pm):
    web = signed_in(pm)
    # The grid's own error (checked by the form and again by the service) shows once.
    response = web.post("/orders/new/", block_ticket(("ACC-1", "60"), ("ACC-2", "30"), quantity="many", limit_price=""))
    assert response.status_code == 400
    assert field_errors(response, "quantity") == [NOT_A_NUMBER]
    assert field_errors(response, "limit_price") == ["Required for a LIMIT order."]
    assert grid_errors(response) == ["The percents must sum to exactly 100, not 90."]
    # A fund the PM may not trade (the service's check) with the form's error.
    response = web.post("/orders/new/", block_ticket(("ACC-1", "60"), ("ACC-9", "40"), quantity="many"))
    assert response.status_code == 400
    assert field_errors(response, "quantity") == [NOT_A_NUMBER]
    assert row_errors(response, 0) == []
    assert row_errors(response, 1) == ["Unknown account, or you are not entitled to trade it."]
    assert grid_errors(response) == []
    assert not Order.objects.exists()


# ------------------------------------------------------------- submit and new
def test_submit_and_new_keeps_the_account_and_clears_the_rest(web, acc2):
    posted = ticket(account="ACC-2", quantity="1,200", action="submit_new")
    response = web.post("/orders/new/", posted)

    order = Order.objects.get()
    assert (order.account.code, order.quantity, order.status) == ("ACC-2", 1200, OrderStatus.PENDING_NEW)
    assert response.status_code == 302 and response["Location"] == "/orders/new/?account=ACC-2"
    page = web.get(response["Location"])
    html = text_of(page)
    assert f"Order #{order.pk} submitted: BUY 1,200 AAPL (pending new)." in html
    assert '<option value="ACC-2" selected>' in html
    assert ticket_id(page) != posted["client_order_id"] and ticket_id(page).startswith("WEB-")
    assert 'name="quantity" value=' not in html and 'name="symbol" value=' not in html
    assert 'name="limit_price" value=' not in html
    assert 'name="alloc_account_0"' not in html  # the grid has no rows


def test_submit_still_goes_to_the_blotter(web):
    response = web.post("/orders/new/", ticket(action="submit"))
    assert response.status_code == 302 and response["Location"] == "/orders/"
    assert Order.objects.count() == 1


def test_submit_and_new_of_a_held_order_shows_the_order_first(web):
    web.post("/orders/new/", ticket(quantity="500"))
    response = web.post("/orders/new/", ticket(quantity="500", action="submit_new"))
    held = Order.objects.latest("id")
    assert held.status == OrderStatus.HELD
    assert response["Location"] == f"/orders/{held.pk}/"


def test_submit_and_new_of_a_block_gives_an_empty_ticket_with_an_empty_grid(pm):
    web = signed_in(pm)
    response = web.post(
        "/orders/new/", {**block_ticket(("ACC-1", "60"), ("ACC-2", "40"), quantity="1,000"), "action": "submit_new"}
    )
    order = Order.objects.get()
    assert order.block_order and response.status_code == 302 and response["Location"] == "/orders/new/"
    html = text_of(web.get(response["Location"]))
    assert f"Block order #{order.pk} submitted for 2 funds" in html
    assert 'name="alloc_account_0"' not in html  # the grid has no rows
    assert not re.search(r'<option value="ACC-\d" selected>', html)


def test_submit_and_new_with_errors_is_the_ticket_with_its_errors(web):
    response = web.post("/orders/new/", ticket(quantity="ten", action="submit_new"))
    assert response.status_code == 400 and field_errors(response, "quantity") == [NOT_A_NUMBER]
    assert not Order.objects.exists()


# ----------------------------------------------------------------------- check
def test_check_shows_the_block_reason_and_writes_nothing(web, middle_office):
    restricted_entry_add(user=middle_office, issuer="Apple Inc.", reason="M&A advisory: Project Orchard")
    watch_entry_add(user=middle_office, symbol="AAPL", reason="Contoso rumour")
    before, events = counts(), AuditEvent.objects.count()
    posted = ticket(quantity="1,500", action="check")

    response = web.post("/orders/new/", posted)

    assert response.status_code == 200
    shown = verdict(response)
    assert shown.startswith("block Compliance would reject this order. Nothing was submitted.")
    assert "block restricted list: Apple Inc. is on the restricted list." in shown
    assert "rules passed" in shown
    html = text_of(response)
    assert "Project Orchard" not in html and "Contoso" not in html and "watch" not in shown.lower()
    # Nothing written: no order, no result, no audit event.
    assert counts() == before and AuditEvent.objects.count() == events
    # The ticket keeps what was typed, and its id (it was not submitted).
    assert ticket_id(response) == posted["client_order_id"]
    assert 'name="quantity" value="1,500"' in html and 'name="limit_price" value="175.50"' in html


def test_check_of_a_clean_order_passes_and_one_that_would_be_held_warns(web, place):
    response = web.post("/orders/new/", ticket(action="check"))
    assert response.status_code == 200
    assert verdict(response).startswith("pass Compliance would let this order through.")
    first = place(quantity=700)
    response = web.post("/orders/new/", ticket(quantity="700", action="check"))
    shown = verdict(response)
    assert shown.startswith("warn Compliance would hold this order for an override.")
    assert f"as order #{first.pk} within 60 s" in shown
    assert Order.objects.count() == 1


def test_check_with_errors_shows_them_all_and_no_verdict(web):
    before = counts()
    response = web.post("/orders/new/", ticket(quantity="abc", limit_price="", action="check"))
    assert response.status_code == 400
    assert field_errors(response, "quantity") == [NOT_A_NUMBER]
    assert field_errors(response, "limit_price") == ["Required for a LIMIT order."]
    assert 'id="check-verdict"' not in text_of(response)
    assert counts() == before


def test_check_of_a_block_checks_each_fund_and_a_bad_grid_gives_its_error(pm, middle_office):
    web = signed_in(pm)
    before, events = counts(), AuditEvent.objects.count()
    response = web.post(
        "/orders/new/", {**block_ticket(("ACC-1", "60"), ("ACC-2", "40"), quantity="1,000"), "action": "check"}
    )
    assert response.status_code == 200
    assert verdict(response).startswith("pass ")
    assert 'name="alloc_value_1" id="alloc_value_1" value="40"' in text_of(response)

    restricted_entry_add(user=middle_office, issuer="Apple Inc.", reason="Project Orchard")
    before, events = counts(), AuditEvent.objects.count()
    response = web.post(
        "/orders/new/", {**block_ticket(("ACC-1", "60"), ("ACC-2", "40"), quantity="1,000"), "action": "check"}
    )
    shown = verdict(response)
    assert shown.startswith("block ") and "ACC-1" in shown and "ACC-2" in shown

    bad = web.post("/orders/new/", {**block_ticket(("ACC-1", "60"), ("ACC-2", "30")), "action": "check"})
    assert bad.status_code == 400
    assert grid_errors(bad) == ["The percents must sum to exactly 100, not 90."]
    assert 'id="check-verdict"' not in text_of(bad)
    assert counts() == before and AuditEvent.objects.count() == events


def test_the_ticket_brings_its_preview_script_and_three_buttons(web):
    html = text_of(web.get("/orders/new/"))
    assert '<script src="/static/orders/ticket.js" defer></script>' in html and "<script>" not in html
    assert 'id="ticket-notional"' in html
    buttons = re.findall(r'<button type="submit" name="action" value="(\w+)"[^>]*>([^<]+)</button>', html)
    assert buttons == [("submit", "Submit order"), ("submit_new", "Submit and new"), ("check", "Check")]
