"""Small things on the order page and around it: the heading follows an amendment
live, a refused amendment lands back on the order page with its reason once, the
admin lists name securities and accounts and show times as 24-hour UTC, and the
browser's /favicon.ico is answered."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

from orders.models import Execution, Order, OrderStatus
from routing.models import OutboundMessage
from tests.compliance.conftest import ack, fill, mark_sent
from tests.conftest import apply

from .conftest import signed_in, text_of

pytestmark = pytest.mark.django_db


def heading(html: str) -> str:
    match = re.search(r'<span class="sub" id="order-heading">(.*?)</span>', html, re.S)
    assert match, "no order heading"
    return match.group(1).strip()


def without_records(html: str) -> str:
    """The page less its records: the audit trail (every refusal with its reason) and
    the table of compliance checks (every verdict with its reason)."""
    html = re.sub(r'<ol class="timeline".*?</ol>', "", html, flags=re.S)
    return re.sub(r'<table class="grid" id="compliance-results">.*?</table>', "", html, flags=re.S)


# ------------------------------------------------------------------ live heading
def test_the_heading_is_part_of_the_live_fragment_and_follows_an_amendment(web, place, trader):
    order = ack(place(quantity=300))
    mark_sent(order)
    page = text_of(web.get(f"/orders/{order.pk}/"))
    assert heading(page) == "Buy 300 AAPL @ 175.50"
    assert '<div class="page-head" data-live-part="head">' in page
    live = web.get(f"/orders/{order.pk}/live/")
    etag = live["ETag"]
    assert heading(text_of(live)) == "Buy 300 AAPL @ 175.50"

    api = APIClient()
    api.force_authenticate(trader)
    assert api.post(f"/api/v1/orders/{order.pk}/amend/", {"quantity": 1200, "limit_price": "175.60"}, format="json")
    replace = OutboundMessage.objects.get(order_id=order.pk, msg_type="G")
    apply(order, ExecType="5", OrdStatus="0", ClOrdID=replace.cl_ord_id, OrderQty=1200, Price="175.60", CumQty=0,
          LeavesQty=1200)  # fmt: skip
    assert (order.quantity, order.limit_price) == (1200, Decimal("175.60"))

    changed = web.get(f"/orders/{order.pk}/live/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert heading(text_of(changed)) == "Buy 1,200 AAPL @ 175.60"


# ------------------------------------------------------------- refused amendment
def test_an_amend_refused_by_compliance_lands_on_the_order_page_with_the_reason_once(web, place):
    order = ack(place())
    response = web.post(f"/orders/{order.pk}/amend/", {"quantity": str(order.quantity), "limit_price": "250.00"})
    assert response.status_code == 302 and response["Location"] == f"/orders/{order.pk}/"
    page = web.get(response["Location"])
    assert page.status_code == 200
    html = without_records(text_of(page))
    reason = "Price 250 is 42.45% from the reference 175.5; the collar is 10%."
    assert html.count(reason) == 1
    assert re.search(r'<li class="message error">Amendment refused by compliance: ' + re.escape(reason), html)
    # Said once: a reload does not say it again.
    assert reason not in without_records(text_of(web.get(f"/orders/{order.pk}/")))
    order.refresh_from_db()
    assert order.status == OrderStatus.OPEN and order.limit_price == Decimal("175.50")


def test_an_amend_not_allowed_in_the_state_lands_on_the_order_page_with_the_reason_once(web, place):
    order = ack(place())
    fill(order, order.quantity, "175.50")
    response = web.post(f"/orders/{order.pk}/amend/", {"quantity": "1"})
    assert response.status_code == 302 and response["Location"] == f"/orders/{order.pk}/"
    html = without_records(text_of(web.get(response["Location"])))
    assert html.count("A filled order can only be amended to a larger quantity.") == 1
    order.refresh_from_db()
    assert (order.status, order.quantity) == (OrderStatus.FILLED, order.quantity)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"quantity": "lots"}, "Enter a whole number of shares."),  # the form's check
        ({"quantity": "{qty}", "limit_price": "zero"}, "Enter a valid decimal number."),  # the service's
    ],
)
def test_an_amend_with_bad_fields_still_shows_the_errors_beside_the_fields(web, place, data, message):
    order = ack(place())
    data = {key: value.replace("{qty}", str(order.quantity)) for key, value in data.items()}
    response = web.post(f"/orders/{order.pk}/amend/", data)
    assert response.status_code == 400
    html = text_of(response)
    form = re.search(r'<form[^>]*id="amend-form".*?</form>', html, re.S).group(0)
    assert f'<span class="error" role="alert">{message}</span>' in form
    assert html.count(message) == 1


# ------------------------------------------------------------------------- admin
def test_the_order_admin_list_shows_the_symbol_not_an_id(middle_office, place):
    order = ack(place())
    html = text_of(signed_in(middle_office).get("/admin/orders/order/"))
    row = re.search(rf'<tr>(?:(?!</tr>).)*?href="/admin/orders/order/{order.pk}/change/.*?</tr>', html, re.S).group(0)
    assert '<td class="field-security nowrap">AAPL</td>' in row
    assert '<td class="field-account nowrap">ACC-1</td>' in row
    assert "security_id" not in html and "account_id" not in html


@pytest.mark.parametrize(
    "path, shown",
    [
        ("/admin/orders/execution/", ["AAPL", "#{order} Buy"]),
        ("/admin/orders/position/", ["AAPL", "ACC-1"]),
        ("/admin/routing/outboundmessage/", ["#{order} AAPL"]),
        ("/admin/compliance/complianceresult/", ["AAPL", "ACC-1"]),
    ],
)
def test_admin_lists_name_securities_and_accounts(middle_office, place, path, shown):
    order = ack(place())
    mark_sent(order)
    fill(order, 10, "175.40")
    response = signed_in(middle_office).get(path)
    assert response.status_code == 200
    html = text_of(response)
    body = html.split('id="result_list"')[1]
    for text in shown:
        assert text.format(order=order.pk).replace("Buy", "BUY") in body, (path, text)


def test_admin_lists_stay_cheap_with_many_rows(middle_office, place, django_assert_max_num_queries):
    for _ in range(6):
        fill(ack(place()), 10, "175.40")
    client = signed_in(middle_office)
    for path in ("/admin/orders/execution/", "/admin/orders/position/", "/admin/orders/order/"):
        client.get(path)  # warm the session and content types
        with django_assert_max_num_queries(12):
            assert client.get(path).status_code == 200


def test_admin_times_are_24_hour_utc(middle_office, place):
    order = ack(place())
    afternoon = dt.datetime(2026, 3, 2, 14, 23, 5, 123456, tzinfo=dt.UTC)
    Order.objects.filter(pk=order.pk).update(created_at=afternoon)
    fill(order, 10, "175.40")
    Execution.objects.filter(order=order).update(received_at=afternoon)
    client = signed_in(middle_office)
    for path in ("/admin/orders/order/", "/admin/orders/execution/"):
        html = text_of(client.get(path))
        body = html.split('id="result_list"')[1]
        assert "2026-03-02 14:23:05 UTC" in body, path
        assert "p.m." not in html and "a.m." not in html
    detail = text_of(client.get(f"/admin/orders/order/{order.pk}/change/"))
    assert "2026-03-02 14:23:05 UTC" in detail and "p.m." not in detail


# ----------------------------------------------------------------------- favicon
def test_favicon_is_answered_and_linked(client, web, middle_office):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("/static/orders/favicon.svg")
    assert finders.find("orders/favicon.svg")
    assert '<link rel="icon" href="/static/orders/favicon.svg" type="image/svg+xml">' in text_of(web.get("/orders/"))
    admin = text_of(signed_in(middle_office).get("/admin/"))
    assert '<link rel="icon" href="/static/orders/favicon.svg" type="image/svg+xml">' in admin
    assert client.post("/favicon.ico").status_code == 405
