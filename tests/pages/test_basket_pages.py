"""The basket pages (issue 15): a CSV pasted or uploaded, every line checked (field
errors or the what-if verdict beside the line), the whole basket submitted in one
request, idempotently; the basket's page with its orders and totals, live; cancel
all working; and nobody else's basket."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from oms_site.errors import NotFound
from orders import services
from orders.basket_csv import basket_csv_parse
from orders.basket_forms import basket_text_digest
from orders.models import Basket, Order
from orders.views_baskets import basket_totals
from routing.models import OutboundMessage
from tests.orders.test_api import acknowledge, fill
from tests.orders.test_pm_workflow import _pm

from .conftest import distinct_quantity, signed_in, text_of

pytestmark = pytest.mark.django_db

NEW = "/baskets/new/"
HEADER = "account,symbol,side,quantity,order_type,limit_price,time_in_force"


def csv_of(*lines: str, header: str = HEADER) -> str:
    return "\n".join([header, *lines]) + "\n"


def buy(quantity: int | None = None, *, symbol="AAPL", price="175.50", order_type="LIMIT") -> str:
    quantity = quantity or distinct_quantity()
    return f"ACC-1,{symbol},BUY,{quantity},{order_type},{price if order_type == 'LIMIT' else ''},DAY"


def row_of(html: str, line: int) -> str:
    """The check table's row of one text line."""
    match = re.search(rf'<tr data-line="{line}".*?</tr>', html, re.S)
    assert match, f"no row for line {line}"
    return match.group(0)


def verdict_of(html: str, line: int) -> str:
    return re.search(r'data-verdict="(\w+)"', row_of(html, line)).group(1)


def check(web, text: str, **fields):
    data = {"client_basket_id": "BASKET-T1", "name": "", "csv_text": text, "action": "check"}
    data.update(fields)
    return web.post(NEW, data)


def post_submit(web, text: str, **fields):
    data = {
        "client_basket_id": "BASKET-T1",
        "name": "",
        "csv_text": text,
        "checked": basket_text_digest(text),
        "action": "submit",
    }
    data.update(fields)
    return web.post(NEW, data)


def basket_of(web, text: str, **fields) -> Basket:
    response = post_submit(web, text, **fields)
    assert response.status_code == 302, text_of(response)
    basket = Basket.objects.get(pk=int(re.fullmatch(r"/baskets/(\d+)/", response["Location"]).group(1)))
    return basket


# -------------------------------------------------------------------- the parser
def test_the_parser_reads_any_column_order_and_case_skips_blank_lines_and_a_bom():
    text = "\ufeffSymbol,ACCOUNT,side,Quantity,order_type,time_in_force,limit_price,venue\n\n"
    text += 'aapl,ACC-1,buy,"1,000",limit,day,175.50,SIM\n   \nMSFT,ACC-1,SELL,200,MARKET,,,\n'
    parsed = basket_csv_parse(text)
    assert parsed.valid and parsed.errors == []
    assert [line.number for line in parsed.lines] == [3, 5]
    assert parsed.lines[0].order == {
        "account": "ACC-1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 1000,
        "order_type": "LIMIT",
        "limit_price": "175.50",
        "time_in_force": "DAY",
        "venue": "SIM",
    }
    assert parsed.lines[1].order["limit_price"] is None and parsed.lines[1].order["time_in_force"] == "DAY"
    assert parsed.lines[1].order["venue"] is None


def test_the_parser_reports_structural_errors_by_line():
    assert basket_csv_parse("ACC-1,AAPL,BUY,100,MARKET,,DAY\n").errors == [
        (1, f"No header row: the first line must name the columns ({HEADER}[,venue]).")
    ]
    missing = basket_csv_parse("account,symbol,side,quantity\nACC-1,AAPL,BUY,100\n")
    assert missing.errors == [(1, "Missing column order_type, limit_price, time_in_force.")]
    parsed = basket_csv_parse(csv_of(buy(100), "ACC-1,AAPL,BUY,1.5,MARKET,,DAY", "ACC-1,AAPL", ",AAPL,BUY,,MARKET,,"))
    assert [(line.number, line.errors) for line in parsed.lines] == [
        (2, {}),
        (3, {"quantity": ["Must be a whole number."]}),
        (4, {"non_field_errors": ["2 cells where the header has 7 columns (" + HEADER.replace(",", ", ") + ")."]}),
        (5, {"account": ["This field is required."], "quantity": ["This field is required."]}),
    ]
    assert not parsed.valid and parsed.invalid_lines == 3
    too_many = basket_csv_parse(csv_of(buy(100), buy(200), buy(300)), max_lines=2)
    assert too_many.errors == [(4, "At most 2 order lines in a basket.")] and len(too_many.lines) == 2


# ------------------------------------------------------------------- the check
def test_the_new_basket_page_offers_the_form_with_a_basket_id(web):
    response = web.get(NEW)
    assert response.status_code == 200
    html = text_of(response)
    assert 'enctype="multipart/form-data"' in html and 'name="csv_text"' in html and 'name="csv_file"' in html
    assert re.search(r'name="client_basket_id" value="BASKET-[0-9A-F]{12}"', html)
    assert 'href="/baskets/"' in html  # the nav's Baskets link
    assert "Submit basket" not in html


def test_a_user_who_trades_no_account_may_not_enter_a_basket(outsider):
    response = signed_in(outsider).get(NEW)
    assert response.status_code == 403
    assert "not entitled to trade any account" in text_of(response)


def test_parse_errors_are_shown_beside_their_line_and_the_text_stays(web):
    no_header = check(web, "ACC-1,AAPL,BUY,100,MARKET,,DAY\n")
    assert no_header.status_code == 400
    assert '<p data-line="1">Line 1: No header row' in text_of(no_header)

    unknown = check(web, csv_of(buy(), header=HEADER + ",colour"))
    assert unknown.status_code == 400
    assert "Line 1: Unknown column &#x27;colour&#x27;" in text_of(unknown)

    text = csv_of(buy(), "ACC-1,AAPL,BUY,abc,MARKET,,DAY", buy())
    response = check(web, text)
    assert response.status_code == 400
    html = text_of(response)
    assert verdict_of(html, 3) == "invalid"
    assert '<span class="error" role="alert">Quantity: Must be a whole number.</span>' in row_of(html, 3)
    assert verdict_of(html, 2) == "pass" and verdict_of(html, 4) == "pass"
    assert "3 lines: 2 pass, 0 warn, 0 block, 1 with errors" in html
    assert "ACC-1,AAPL,BUY,abc,MARKET,,DAY" in html  # still in the text box, to fix
    assert "Submit basket" not in html
    assert not Order.objects.exists() and not Basket.objects.exists()


def test_the_what_if_finds_unknown_symbols_and_accounts_beside_the_line(web):
    response = check(web, csv_of(buy(), buy(symbol="NOPE"), "ACC-9,AAPL,BUY,100,MARKET,,DAY"))
    assert response.status_code == 400
    html = text_of(response)
    assert "Symbol: Unknown symbol." in row_of(html, 3)
    assert "Account: Unknown account, or you are not entitled to trade it." in row_of(html, 4)
    assert verdict_of(html, 2) == "pass"
    assert "Submit basket" not in html


def test_a_check_of_a_valid_basket_shows_each_verdict_and_offers_submit(web, trader, submit):
    quantity = distinct_quantity()
    submit(quantity=quantity)  # an order the duplicate rule will see
    text = csv_of(buy(), buy(quantity), buy(price="250.00"), "ACC-1,AAPL,SELL,100,MARKET,,DAY")
    response = check(web, text)
    assert response.status_code == 200
    html = text_of(response)
    assert [verdict_of(html, line) for line in (2, 3, 4, 5)] == ["pass", "warn", "block", "block"]
    assert "duplicate" in row_of(html, 3).lower()
    assert "the collar is 10%" in row_of(html, 4)
    assert "mark it SELL_SHORT" in row_of(html, 5)
    assert "4 lines: 1 pass, 1 warn, 2 block, 0 with errors" in html
    assert 'value="submit"' in html and "Submit basket" in html
    assert f'name="checked" value="{basket_text_digest(text)}"' in html
    assert Order.objects.count() == 1  # the check writes nothing


def test_an_uploaded_file_is_read_with_its_bom_and_shown_in_the_text_box(web):
    text = csv_of(buy(100), buy(200))
    upload = SimpleUploadedFile("basket.csv", b"\xef\xbb\xbf" + text.encode(), content_type="text/csv")
    response = web.post(NEW, {"client_basket_id": "B-UP", "csv_text": "", "csv_file": upload, "action": "check"})
    assert response.status_code == 200
    html = text_of(response)
    assert verdict_of(html, 2) == "pass" and verdict_of(html, 3) == "pass"
    assert "ACC-1,AAPL,BUY,200,LIMIT,175.50,DAY" in html

    latin = SimpleUploadedFile("basket.csv", "account,symbol\nÉ".encode("latin-1"))
    refused = web.post(NEW, {"client_basket_id": "B-UP", "csv_file": latin, "action": "check"})
    assert refused.status_code == 400
    assert "The file is not UTF-8 text" in text_of(refused)


def test_nothing_to_check_is_a_field_error(web):
    response = check(web, "   \n")
    assert response.status_code == 400
    assert "Paste the orders, or choose a CSV file." in text_of(response)


# ------------------------------------------------------------------ submitting
def test_submitting_creates_one_basket_with_its_orders_and_a_repeat_creates_none(web, trader):
    text = csv_of(buy(), buy(symbol="AAPL", order_type="MARKET"), buy())
    response = post_submit(web, text, client_basket_id="BASKET-ONE", name="Rebalance")
    assert response.status_code == 302
    basket = Basket.objects.get()
    assert response["Location"] == f"/baskets/{basket.pk}/"
    assert (basket.client_basket_id, basket.name, basket.created_by, basket.lines_total) == (
        "BASKET-ONE",
        "Rebalance",
        trader,
        3,
    )
    orders = list(basket.orders.order_by("id"))
    assert [o.client_order_id for o in orders] == ["BASKET-ONE-1", "BASKET-ONE-2", "BASKET-ONE-3"]
    assert [o.order_type for o in orders] == ["LIMIT", "MARKET", "LIMIT"]
    assert {o.origin for o in orders} == {"web"} and {o.status for o in orders} == {"pending_new"}
    page = text_of(web.get(response["Location"]))
    assert f"Basket #{basket.pk} submitted: 3 lines, 3 routed, 0 held, 0 rejected." in page

    again = post_submit(web, text, client_basket_id="BASKET-ONE", name="Rebalance")
    assert again.status_code == 302 and again["Location"] == f"/baskets/{basket.pk}/"
    assert Basket.objects.count() == 1 and Order.objects.count() == 3
    assert "was already submitted" in text_of(web.get(again["Location"]))


def test_a_bad_line_blocks_submit(web):
    text = csv_of(buy(), "ACC-1,AAPL,BUY,abc,MARKET,,DAY")
    response = post_submit(web, text)  # even with a digest of this text
    assert response.status_code == 400
    html = text_of(response)
    assert "Not submitted: fix the lines below." in html
    assert "Quantity: Must be a whole number." in row_of(html, 3)
    assert not Basket.objects.exists() and not Order.objects.exists()

    unknown = post_submit(web, csv_of(buy(), buy(symbol="NOPE")))
    assert unknown.status_code == 400
    assert "Symbol: Unknown symbol." in row_of(text_of(unknown), 3)
    assert not Basket.objects.exists() and not Order.objects.exists()


def test_text_changed_since_the_check_is_checked_again_not_submitted(web):
    checked = csv_of(buy(100))
    response = post_submit(web, csv_of(buy(200)), checked=basket_text_digest(checked))
    assert response.status_code == 409
    html = text_of(response)
    assert "the orders changed since they were checked" in html
    assert verdict_of(html, 2) == "pass" and "Submit basket" in html
    assert not Basket.objects.exists()


def test_the_services_line_errors_are_shown_beside_the_line(web, trader, account, aapl, submit):
    taken = submit(client_order_id="BASKET-TAKEN-2")
    response = post_submit(web, csv_of(buy(), buy()), client_basket_id="BASKET-TAKEN")
    assert response.status_code == 400
    html = text_of(response)
    assert f"Client order id: Already used by order #{taken.pk} of account ACC-1" in row_of(html, 3)
    assert "Not submitted: Invalid basket." in html
    assert not Basket.objects.exists() and Order.objects.count() == 1


def test_a_portfolio_managers_basket_lines_wait_for_the_desk(account, aapl, venue):
    pm = _pm("pm1", account)
    web = signed_in(pm)
    basket = basket_of(web, csv_of(buy(), buy()), client_basket_id="PM-BASKET")
    orders = list(basket.orders.order_by("id"))
    assert [(o.status, o.desk_order, o.owner_id) for o in orders] == [("new", True, None), ("new", True, None)]
    assert basket.counts == {"total": 2, "routed": 0, "held": 0, "rejected": 0}
    assert not OutboundMessage.objects.exists()
    page = text_of(web.get(f"/baskets/{basket.pk}/"))
    assert "desk, incoming" in page
    assert "Cancel all working" not in page  # the desk works them, not the PM
    assert web.post(f"/baskets/{basket.pk}/cancel/").status_code == 403


# -------------------------------------------------------------- the basket page
def _field(html: str, name: str) -> str:
    match = re.search(rf'data-field="{name}">([^<]*)<', html)
    assert match, name
    return match.group(1)


def test_the_basket_page_shows_its_orders_and_totals(web, trader, account, aapl, venue):
    basket = basket_of(web, csv_of(buy(1000), buy(3000), buy(price="250.00")), name="Three lines")
    first, second, blocked = basket.orders.order_by("id")
    assert blocked.status == "rejected"
    fill(acknowledge(first), 1000, "175.00")
    fill(acknowledge(second), 1000, "176.00")
    second.refresh_from_db()

    response = web.get(f"/baskets/{basket.pk}/")
    assert response.status_code == 200
    html = text_of(response)
    assert "Three lines" in html and f'data-live-src="/baskets/{basket.pk}/live/"' in html
    for order in (first, second, blocked):
        assert f'<tr data-order-id="{order.pk}"' in html
    assert (_field(html, "lines"), _field(html, "routed"), _field(html, "held"), _field(html, "rejected")) == (
        "3",
        "2",
        "0",
        "1",
    )
    assert (_field(html, "working"), _field(html, "filled_lines"), _field(html, "cancelled")) == ("1", "1", "0")
    assert _field(html, "filled_quantity") == "2,000"
    assert _field(html, "filled_notional") == "351,000.00"  # 1000 x 175 + 1000 x 176
    # 2,000 of 1,000 + 3,000 + the blocked line's quantity.
    expected = (Decimal(2000) * 100 / (4000 + blocked.quantity)).quantize(Decimal("0.1"), "ROUND_DOWN")
    assert _field(html, "percent_done") == f"{expected}%"
    assert 'data-confirm="Cancel all 1 working orders of basket' in html

    live = web.get(f"/baskets/{basket.pk}/live/")
    assert live.status_code == 200 and 'data-field="filled_notional"' in text_of(live)
    assert web.get(f"/baskets/{basket.pk}/live/", HTTP_IF_NONE_MATCH=live["ETag"]).status_code == 304
    fill(second, 2000, "176.00")
    refreshed = web.get(f"/baskets/{basket.pk}/live/", HTTP_IF_NONE_MATCH=live["ETag"])
    assert refreshed.status_code == 200 and _field(text_of(refreshed), "filled_quantity") == "4,000"
    assert "Cancel all working" not in text_of(refreshed)


def test_percent_done_is_rounded_down_to_one_decimal():
    orders = [Order(quantity=3, filled_quantity=2, avg_fill_price=Decimal("10"), status="partially_filled")]
    totals = basket_totals(orders, Basket(lines_routed=1))
    assert totals["percent_done"] == Decimal("66.6")
    assert totals["filled_notional"] == Decimal("20")
    almost = basket_totals([Order(quantity=10000, filled_quantity=9999, status="partially_filled")], Basket())
    assert almost["percent_done"] == Decimal("99.9")


def test_cancel_all_working_cancels_the_baskets_working_orders(web, trader, account, aapl, venue):
    basket = basket_of(web, csv_of(buy(), buy(), buy()))
    done, *working = basket.orders.order_by("id")
    fill(acknowledge(done), done.quantity)
    response = web.post(f"/baskets/{basket.pk}/cancel/", follow=True)
    assert response.status_code == 200
    assert f"Basket #{basket.pk}: 2 working orders cancelled or sent a cancel request." in text_of(response)
    assert [o.status for o in basket.orders.order_by("id")] == ["filled", "cancelled", "cancelled"]
    assert AuditEvent.objects.filter(action="basket.cancel_requested", object_id=str(basket.pk)).count() == 1

    again = web.post(f"/baskets/{basket.pk}/cancel/", follow=True)
    assert "no working orders, nothing to cancel" in text_of(again)


def test_middle_office_sees_the_basket_but_may_not_cancel_it(web, middle_office, account, aapl, venue):
    basket = basket_of(web, csv_of(buy()))
    mo = signed_in(middle_office)
    page = mo.get(f"/baskets/{basket.pk}/")
    assert page.status_code == 200 and "Cancel all working" not in text_of(page)
    refused = mo.post(f"/baskets/{basket.pk}/cancel/")
    assert refused.status_code == 403
    assert "You may view this basket but not trade its accounts." in text_of(refused)
    assert basket.orders.get().status == "pending_new"


def test_someone_elses_basket_is_404(web, other_trader, account, aapl, venue):
    basket = basket_of(web, csv_of(buy()))
    account.traders.add(other_trader)  # even one who trades its account
    other = signed_in(other_trader)
    assert other.get(f"/baskets/{basket.pk}/").status_code == 404
    assert other.get(f"/baskets/{basket.pk}/live/").status_code == 404
    assert other.post(f"/baskets/{basket.pk}/cancel/").status_code == 404
    assert basket.orders.get().status == "pending_new"
    assert f"/baskets/{basket.pk}/" not in text_of(other.get("/baskets/"))
    with pytest.raises(NotFound):
        services.basket_cancel(user=other_trader, basket_id=basket.pk)


def test_the_basket_list_is_newest_first(web):
    first = basket_of(web, csv_of(buy()), client_basket_id="B-FIRST")
    second = basket_of(web, csv_of(buy()), client_basket_id="B-SECOND")
    html = text_of(web.get("/baskets/"))
    assert html.index(f'data-basket-id="{second.pk}"') < html.index(f'data-basket-id="{first.pk}"')
    assert "B-FIRST" in html and "B-SECOND" in html and 'href="/baskets/new/"' in html
