"""The blotter through Django's test client: columns that sort (kept in the URL, an
unknown sort ignored), the notional and trader columns, millisecond times, totals of
all the filtered orders, kept live and cheap, and "Cancel selected" (a confirmation
first, then each order cancelled through the service on its own, each audited)."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from decimal import Decimal

import pytest
from django.test import Client

from audit.models import AuditEvent
from orders import views as order_views
from orders.models import Order, OrderRequest
from tests.compliance.conftest import ack, fill, long_position
from tests.factories import AccountFactory
from tests.orders.test_pm_workflow import _desk_order, _pm

from .conftest import signed_in, text_of

pytestmark = pytest.mark.django_db


def ids_on(response) -> list[int]:
    assert response.status_code == 200, response.status_code
    return [int(i) for i in re.findall(r'<tr data-order-id="(\d+)"', text_of(response))]


def shown(client, **params) -> list[int]:
    """The order ids of the blotter's rows, in order; the live fragment for the same
    query shows the same rows."""
    rows = ids_on(client.get("/orders/", params))
    assert ids_on(client.get("/orders/live/", params)) == rows
    return rows


def cell(html: str, order_id: int, field: str) -> str:
    row = re.search(rf'<tr data-order-id="{order_id}".*?</tr>', html, re.S).group(0)
    return re.search(rf'data-field="{field}"[^>]*>(.*?)</td>', row, re.S).group(1)


def totals_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="(\w+)">([^<]*)<', html))


def notional(order: Order) -> Decimal | None:
    price = order.limit_price or order.avg_fill_price or order.security.reference_price
    return None if price is None else order.quantity * price


SORT_VALUES = {
    "created": lambda o: o.created_at,
    "symbol": lambda o: o.security.symbol,
    "account": lambda o: o.account.code,
    "side": lambda o: o.side,
    "quantity": lambda o: o.quantity,
    "price": lambda o: o.limit_price,
    "status": lambda o: o.status,
    "filled": lambda o: o.filled_quantity,
    "notional": notional,
    "trader": lambda o: (o.owner or o.created_by).username,
}


def expected_order(orders: list[Order], key: str, descending: bool) -> list[int]:
    """Sorted as the blotter sorts: by the key, missing values last either way, ties
    by id in the same direction."""
    value = SORT_VALUES[key]
    present = sorted((o for o in orders if value(o) is not None), key=lambda o: (value(o), o.pk), reverse=descending)
    missing = sorted((o for o in orders if value(o) is None), key=lambda o: o.pk, reverse=descending)
    return [o.pk for o in present + missing]


@pytest.fixture
def book(web, place, trader, other_trader, account, other_account, aapl, msft):
    """Orders that differ in every sortable column: two accounts of trader1 and one of
    trader2, both symbols, both sides, limit and market, fills and none."""
    second = AccountFactory(code="ACC-2")
    second.traders.add(trader)
    long_position(second, aapl, 5_000)
    orders = [
        fill(ack(place(quantity=1_000, limit_price=Decimal("175.40"))), 400, "175.30"),
        place(symbol="MSFT", quantity=150, limit_price=Decimal("415.20"), account="ACC-2"),
        ack(place(side="SELL", quantity=700, limit_price=Decimal("176.10"), account="ACC-2")),
        place(order_type="MARKET", quantity=260),  # valued at AAPL's reference price
        fill(ack(place(symbol="MSFT", quantity=90, limit_price=Decimal("414.90"))), 90, "414.80"),
        place(user=other_trader, account="ACC-3", quantity=2_000, limit_price=Decimal("175.00")),
    ]
    for order in orders:
        order.refresh_from_db()
    return orders


# --------------------------------------------------------------------------- sorting
@pytest.mark.parametrize("key", sorted(SORT_VALUES))
@pytest.mark.parametrize("descending", [False, True])
def test_every_column_sorts_both_ways(book, middle_office, key, descending):
    officer = signed_in(middle_office)  # sees every account, so the trader column varies
    sort = f"-{key}" if descending else key
    expected = expected_order(book, key, descending)
    assert len(set(expected)) == len(book)
    assert shown(officer, sort=sort) == expected
    # Filters and sort together: the sort applies to the filtered rows.
    aapl_only = [o for o in book if o.security.symbol == "AAPL"]
    assert shown(officer, sort=sort, symbol="AAPL") == expected_order(aapl_only, key, descending)


def test_notional_sort_reorders_limit_and_market_orders(web, book):
    mine = [o for o in book if o.account.code != "ACC-3"]
    by_notional = shown(web, sort="-notional")
    assert by_notional == [o.pk for o in sorted(mine, key=notional, reverse=True)]
    assert by_notional != shown(web)  # not the order by time
    market = next(o for o in book if o.order_type == "MARKET")
    html = text_of(web.get("/orders/", {"sort": "-notional"}))
    assert cell(html, market.pk, "notional") == "45,630.00"  # 260 x the reference price 175.50
    limit = book[0]
    assert cell(html, limit.pk, "notional") == "175,400.00"  # 1,000 x the limit 175.40
    assert 'title="Quantity × limit price; with no limit (market, stop)' in html


def test_default_order_is_newest_first_and_an_unknown_sort_is_ignored(web, book):
    newest_first = [o.pk for o in sorted((o for o in book if o.account.code != "ACC-3"), key=lambda o: -o.pk)]
    assert shown(web) == newest_first
    assert shown(web, sort="-created") == newest_first
    for odd in ("bogus", "-", "--notional", "notional;drop", "-created_at", "id", "x" * 500, "notional\x00"):
        assert shown(web, sort=odd) == newest_first, odd


def test_headers_toggle_the_sort_and_keep_the_filters(web, book):
    html = html_lib.unescape(text_of(web.get("/orders/", {"symbol": "AAPL", "sort": "notional", "page": "1"})))
    head = re.search(r"<thead>.*?</thead>", html, re.S).group(0)
    notional_th = re.search(r'<th[^>]*data-sort="notional".*?</th>', head, re.S).group(0)
    assert 'aria-sort="ascending"' in notional_th and "▲" in notional_th
    assert 'href="?symbol=AAPL&sort=-notional"' in notional_th  # reversed, filters kept, first page
    quantity_th = re.search(r'<th[^>]*data-sort="quantity".*?</th>', head, re.S).group(0)
    assert 'href="?symbol=AAPL&sort=quantity"' in quantity_th and 'aria-sort="none"' in quantity_th
    created_th = re.search(r'<th[^>]*data-sort="created".*?</th>', head, re.S).group(0)
    assert 'href="?symbol=AAPL&sort=-created"' in created_th  # the time column starts newest first
    # The filter form carries the sort, the live region polls the same query.
    assert '<input type="hidden" name="sort" value="notional"' in html
    assert 'data-live-src="/orders/live/?symbol=AAPL&sort=notional&page=1"' in html

    descending = html_lib.unescape(text_of(web.get("/orders/", {"sort": "-notional"})))
    notional_th = re.search(r'<th[^>]*data-sort="notional".*?</th>', descending, re.S).group(0)
    assert 'aria-sort="descending"' in notional_th and "▼" in notional_th
    assert 'href="?sort=notional"' in notional_th


# ------------------------------------------------------------------- columns, times
def test_middle_office_sees_who_works_each_order(book, middle_office, trader, account, aapl, venue):
    pm = _pm("pm1", account)
    desk = _desk_order(pm, "PM-BLOTTER-1")
    signed_in(trader).post(f"/orders/{desk.pk}/accept/")
    html = text_of(signed_in(middle_office).get("/orders/"))
    assert '<th aria-sort="none" data-sort="trader">' in html
    for order in book:
        expected = "trader2" if order.account.code == "ACC-3" else "trader1"
        assert cell(html, order.pk, "trader") == expected
    # A desk order is worked by its owner; who entered it is in the cell's title.
    desk_cell = re.search(rf'<tr data-order-id="{desk.pk}".*?data-field="trader"[^>]*>', html, re.S).group(0)
    assert 'title="Entered by pm1"' in desk_cell
    assert cell(html, desk.pk, "trader") == "trader1"


def test_times_are_shown_to_the_millisecond_in_utc(web, place):
    order = place()
    stamp = dt.datetime(2026, 12, 7, 14, 23, 5, 123456, tzinfo=dt.UTC)
    Order.objects.filter(pk=order.pk).update(created_at=stamp)
    for path in ("/orders/", "/orders/live/"):
        html = text_of(web.get(path))
        assert cell(html, order.pk, "time") == "12-07 14:23:05.123"
        assert 'title="2026-12-07 14:23:05.123456 UTC"' in html


# -------------------------------------------------------------------------- totals
def test_totals_sum_every_filtered_order_not_only_the_page(web, book, monkeypatch):
    monkeypatch.setattr(order_views, "BLOTTER_PAGE_SIZE", 2)
    mine = [o for o in book if o.account.code != "ACC-3"]
    live = ("pending_new", "open", "partially_filled", "pending_cancel", "pending_amend")

    def expected(orders):
        working = [o for o in orders if o.status in live]
        return {
            "orders": f"{len(orders):,}",
            "working_quantity": f"{sum(o.quantity - o.filled_quantity for o in working):,}",
            "working_notional": f"{sum((o.quantity - o.filled_quantity) * (o.limit_price or o.security.reference_price) for o in working):,.2f}",
            "filled_quantity": f"{sum(o.filled_quantity for o in orders):,}",
            "filled_notional": f"{sum(o.filled_quantity * o.avg_fill_price for o in orders if o.filled_quantity):,.2f}",
        }

    for params, orders in (
        ({}, mine),
        ({"symbol": "AAPL"}, [o for o in mine if o.security.symbol == "AAPL"]),
        ({"symbol": "MSFT", "sort": "-notional"}, [o for o in mine if o.security.symbol == "MSFT"]),
        ({"status": "filled"}, [o for o in mine if o.status == "filled"]),
    ):
        page = text_of(web.get("/orders/", params))
        assert len(re.findall(r'<tr data-order-id="', page)) == min(2, len(orders))
        assert totals_of(page) == expected(orders), params
        assert totals_of(text_of(web.get("/orders/live/", params))) == expected(orders), params
    # The filled total is the fills at their prices: 400 @ 175.30 and 90 @ 414.80.
    assert totals_of(text_of(web.get("/orders/")))["filled_notional"] == "107,452.00"


def test_a_child_counts_in_its_parent_when_both_are_shown(trader, account, aapl, venue):
    pm = _pm("pm1", account)
    desk = _desk_order(pm, "PM-BLOTTER-2", quantity=1_000)
    web = signed_in(trader)
    web.post(f"/orders/{desk.pk}/accept/")
    child = {"quantity": "300", "order_type": "LIMIT", "limit_price": "175.50", "time_in_force": "DAY", "venue": ""}
    assert web.post(f"/orders/{desk.pk}/children/", child).status_code == 302
    desk.refresh_from_db()
    assert desk.status == "open"
    both = totals_of(text_of(web.get("/orders/")))
    assert both["orders"] == "2" and both["working_quantity"] == "1,000"  # the parent's leaves, once
    child_only = totals_of(text_of(web.get("/orders/", {"status": "pending_new"})))
    assert child_only["orders"] == "1" and child_only["working_quantity"] == "300"


def test_the_live_fragment_stays_304_until_a_shown_value_changes(web, place, aapl):
    market = place(order_type="MARKET", quantity=120)
    params = {"sort": "-notional"}
    etag = web.get("/orders/live/", params)["ETag"]
    assert web.get("/orders/live/", params, HTTP_IF_NONE_MATCH=etag).status_code == 304
    # A new reference price revalues the market order: its notional, the totals, the order.
    aapl.reference_price, aapl.reference_price_at = Decimal("180.00"), dt.datetime.now(dt.UTC)
    aapl.save()
    changed = web.get("/orders/live/", params, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert cell(text_of(changed), market.pk, "notional") == "21,600.00"
    assert web.get("/orders/live/", params, HTTP_IF_NONE_MATCH=changed["ETag"]).status_code == 304


# -------------------------------------------------------------------- cancel selected
def checkboxes(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<input type="checkbox" name="order" value="(\d+)"', html)]


def test_only_orders_the_user_may_cancel_have_a_checkbox(web, book, middle_office):
    mine = [o for o in book if o.account.code != "ACC-3"]
    cancellable = {o.pk for o in mine if o.status != "filled"}
    assert set(checkboxes(text_of(web.get("/orders/")))) == cancellable
    assert set(checkboxes(text_of(web.get("/orders/live/")))) == cancellable
    officer = text_of(signed_in(middle_office).get("/orders/"))
    assert checkboxes(officer) == [] and "Cancel selected" not in officer


def test_cancel_selected_confirms_first_then_cancels_each_and_reports_each(web, place, other_trader, other_account):
    working = [ack(place()) for _ in range(3)]
    filled = fill(ack(place(quantity=50)), 50, "175.40")
    theirs = place(user=other_trader, account="ACC-3")
    selection = [*(o.pk for o in working), filled.pk, theirs.pk, 999_999_999]
    events_before = AuditEvent.objects.count()

    # First the confirmation: the selected orders listed, nothing sent yet.
    confirm = web.post("/orders/cancel-selected/", {"order": [str(i) for i in selection], "next": "sort=-notional"})
    assert confirm.status_code == 200
    page = text_of(confirm)
    assert [int(i) for i in re.findall(r'<tr data-order-id="(\d+)"', page)] == [*(o.pk for o in working), filled.pk]
    assert f'data-missing="#{theirs.pk}"' in page and 'data-missing="#999999999"' in page
    assert "Cancel 4 orders" in page and "cannot be cancelled now" in page
    assert AuditEvent.objects.count() == events_before
    assert not OrderRequest.objects.filter(kind="cancel").exists()

    done = web.post(
        "/orders/cancel-selected/",
        {"order": [str(i) for i in selection], "confirmed": "1", "next": "sort=-notional"},
        follow=True,
    )
    assert done.redirect_chain == [("/orders/?sort=-notional", 302)]
    said = [str(m) for m in done.context["messages"]]
    for order in working:
        order.refresh_from_db()
        assert order.status == "pending_cancel"
        assert (
            AuditEvent.objects.filter(
                action="order.cancel_requested", object_type="order", object_id=str(order.pk), actor="trader1"
            ).count()
            == 1
        )
        assert f"Cancel requested for order #{order.pk}; waiting for the venue." in said
    assert f"Order #{filled.pk} not cancelled: Order cannot be cancelled in status filled." in said
    assert f"Order #{theirs.pk} not found." in said and "Order #999999999 not found." in said
    filled.refresh_from_db()
    theirs.refresh_from_db()
    assert (filled.status, theirs.status) == ("filled", "pending_new")
    # The refusal is on the filled order's trail; the foreign order's trail is untouched.
    cancel_events = AuditEvent.objects.filter(action__startswith="order.cancel")
    assert list(cancel_events.filter(object_id=str(filled.pk)).values_list("action", flat=True)) == [
        "order.cancel_refused"
    ]
    assert not cancel_events.filter(object_id=str(theirs.pk)).exists()


def test_cancel_selected_cancels_an_order_that_never_left_at_once(web, place):
    staged = place()  # its NewOrderSingle is still in the outbox: withdrawn, cancelled here
    assert staged.status == "pending_new"
    done = web.post("/orders/cancel-selected/", {"order": [str(staged.pk)], "confirmed": "1"}, follow=True)
    assert done.redirect_chain == [("/orders/", 302)]
    assert f"Order #{staged.pk} cancelled (it had not reached the venue)." in [str(m) for m in done.context["messages"]]
    staged.refresh_from_db()
    assert staged.status == "cancelled"
    assert AuditEvent.objects.filter(action="order.cancelled", object_id=str(staged.pk)).count() == 1


@pytest.mark.parametrize(
    "data, status, says",
    [
        ({}, 400, "No orders were selected"),
        ({"order": ["x" * 30], "confirmed": "1"}, 302, "not found"),
        ({"order": [str(i) for i in range(1, 202)], "confirmed": "1"}, 400, "At most 200 orders"),
    ],
)
def test_odd_selections_get_a_clear_answer(web, place, data, status, says):
    order = ack(place())
    response = web.post("/orders/cancel-selected/", data, follow=status == 302)
    if status == 302:
        assert response.redirect_chain[0][1] == 302
        assert any(says in str(m) for m in response.context["messages"])
    else:
        assert response.status_code == status and says in text_of(response)
    order.refresh_from_db()
    assert order.status == "open"
    assert not OrderRequest.objects.filter(kind="cancel").exists()


def test_cancel_selected_needs_csrf_a_post_and_a_signed_in_user(trader, place):
    order = ack(place())
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(trader)
    assert strict.post("/orders/cancel-selected/", {"order": [str(order.pk)], "confirmed": "1"}).status_code == 403
    assert signed_in(trader).get("/orders/cancel-selected/").status_code == 405
    anonymous = Client().post("/orders/cancel-selected/", {"order": [str(order.pk)], "confirmed": "1"})
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    order.refresh_from_db()
    assert order.status == "open"


def test_the_back_link_keeps_only_a_query_string(web, place):
    order = ack(place())
    done = web.post(
        "/orders/cancel-selected/",
        {"order": [str(order.pk)], "confirmed": "1", "next": "https://evil.example/?a=1"},
    )
    assert done.status_code == 302 and done["Location"].startswith("/orders/?")
    assert "evil.example/" not in done["Location"]
