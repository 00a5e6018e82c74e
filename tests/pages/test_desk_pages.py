"""The desk on the trader pages: the Incoming tab (portfolio managers' orders waiting
for a trader), accepting one, the desk order's page with its children, and placing a
child from it."""

from __future__ import annotations

import pytest

from orders.models import Order
from tests.orders.test_pm_workflow import _desk_order, _pm

from .conftest import signed_in, text_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def pm(account):
    return _pm("pm1", account)


@pytest.fixture
def desk_order(pm, aapl, venue) -> Order:
    order = _desk_order(pm, "PM-PAGE-1")
    assert order.status == "new" and order.desk_order
    return order


def test_the_incoming_tab_lists_waiting_desk_orders_with_accept(trader, desk_order):
    web = signed_in(trader)
    page = web.get("/orders/incoming/")
    assert page.status_code == 200
    html = text_of(page)
    assert 'id="nav-incoming"' in html
    assert f'data-order-id="{desk_order.pk}"' in html and "pm1" in html
    assert f'action="/orders/{desk_order.pk}/accept/"' in html
    # The blotter marks it as a desk order still incoming.
    assert "desk, incoming" in text_of(web.get("/orders/"))


def test_a_portfolio_manager_has_no_incoming_tab_and_cannot_accept(pm, desk_order):
    web = signed_in(pm)
    assert 'id="nav-incoming"' not in text_of(web.get("/orders/"))
    refused = web.post(f"/orders/{desk_order.pk}/accept/")
    assert refused.status_code == 403
    desk_order.refresh_from_db()
    assert desk_order.owner_id is None


def test_accepting_from_the_page_makes_the_trader_its_owner_and_offers_the_child_form(trader, desk_order):
    web = signed_in(trader)
    detail = text_of(web.get(f"/orders/{desk_order.pk}/"))
    assert 'id="accept-form"' in detail and "waiting for a trader" in detail
    response = web.post(f"/orders/{desk_order.pk}/accept/", follow=True)
    assert response.status_code == 200
    desk_order.refresh_from_db()
    assert desk_order.owner == trader
    html = text_of(response)
    assert "is yours to work" in html
    assert 'id="child-form"' in html and 'id="accept-form"' not in html
    assert f'data-order-id="{desk_order.pk}"' not in text_of(web.get("/orders/incoming/"))
    # Accepting it again is refused on the page with the service's reason.
    again = web.post(f"/orders/{desk_order.pk}/accept/")
    assert again.status_code == 409
    assert 'id="action-error"' in text_of(again)


def test_placing_a_child_from_the_page_routes_it_and_lists_it_under_the_parent(trader, desk_order):
    web = signed_in(trader)
    web.post(f"/orders/{desk_order.pk}/accept/")
    form = {"quantity": "400", "order_type": "LIMIT", "limit_price": "175.50", "time_in_force": "DAY", "venue": ""}
    response = web.post(f"/orders/{desk_order.pk}/children/", form, follow=True)
    assert response.status_code == 200
    child = Order.objects.get(parent=desk_order)
    assert (child.quantity, child.status) == (400, "pending_new")
    html = text_of(response)
    assert f"Child order #{child.pk} placed" in html
    assert f'<tr data-order-id="{child.pk}">' in html and 'id="order-placed">400<' in html
    child_page = text_of(web.get(f"/orders/{child.pk}/"))
    assert f'href="/orders/{desk_order.pk}/"' in child_page and "Child order" in child_page
    # More than what is left: refused with the reason, nothing placed.
    over = web.post(f"/orders/{desk_order.pk}/children/", {**form, "quantity": "700"})
    assert over.status_code == 409
    assert Order.objects.filter(parent=desk_order).count() == 1
    # A bad quantity is a field error beside the field.
    bad = web.post(f"/orders/{desk_order.pk}/children/", {**form, "quantity": "lots"})
    assert bad.status_code == 400 and "Enter a whole number of shares." in text_of(bad)


def test_equal_slices_of_one_desk_order_are_not_duplicates_of_each_other(trader, desk_order, firm_defaults):
    web = signed_in(trader)
    web.post(f"/orders/{desk_order.pk}/accept/")
    form = {"quantity": "500", "order_type": "LIMIT", "limit_price": "175.50", "time_in_force": "DAY", "venue": ""}
    for _ in range(2):
        assert web.post(f"/orders/{desk_order.pk}/children/", form).status_code == 302
    # Both go out: the duplicate-order rule (on by default) does not hold a sibling.
    assert list(Order.objects.filter(parent=desk_order).values_list("status", flat=True)) == ["pending_new"] * 2


def test_the_blotter_nests_children_under_their_parent(trader, desk_order, submit):
    web = signed_in(trader)
    web.post(f"/orders/{desk_order.pk}/accept/")
    form = {"quantity": "300", "order_type": "LIMIT", "limit_price": "175.50", "time_in_force": "DAY", "venue": ""}
    web.post(f"/orders/{desk_order.pk}/children/", form)
    own = submit(quantity=100)  # a trader's own order, entered after the parent
    web.post(f"/orders/{desk_order.pk}/children/", form)
    first, second = Order.objects.filter(parent=desk_order).order_by("pk")
    html = text_of(web.get("/orders/"))
    rows = [html.index(f'data-order-id="{pk}"') for pk in (own.pk, desk_order.pk, first.pk, second.pk)]
    # Newest first, except that children follow their parent, oldest child first.
    assert rows == sorted(rows)
    assert html.count('class="side-buy nested"') == 2
