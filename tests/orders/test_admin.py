"""The order page of the admin shows compliance everything about the order, watch-list
verdicts included; traders cannot open it."""

from compliance.services import watch_entry_add


def test_order_page_shows_every_compliance_result_to_middle_office(client, middle_office, submit, aapl):
    watch_entry_add(user=middle_office, symbol="AAPL", reason="Rumoured bid")
    order = submit()
    client.force_login(middle_office)

    response = client.get(f"/admin/orders/order/{order.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "watch_list" in page and "Rumoured bid" in page
    assert "max_order_quantity" in page
    assert order.compliance_results.count() >= 10


def test_order_page_is_not_for_traders(client, trader, submit):
    order = submit()
    client.force_login(trader)

    response = client.get(f"/admin/orders/order/{order.pk}/change/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
