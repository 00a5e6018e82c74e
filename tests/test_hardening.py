"""Bad input is a 400 in the interface's own shape, never a 500: NUL bytes in the
API's or the admin's query strings or a JSON body (the pages' own tests cover theirs);
JSON nested too deeply; a body over the size limit. The schema describes every list
as the paginated list it returns."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from orders.models import Order
from tests.helpers import assert_error, order_line

ORDER = order_line(1)


@pytest.fixture
def ready(account, aapl, venue):
    """Reference data for a valid order."""


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/positions/?account=%00", "account"),
        ("/api/v1/positions/?symbol=AB%00", "symbol"),
        ("/api/v1/orders/?status=new%00", "status"),
        ("/api/v1/executions/?x%00=1", "x"),
    ],
)
def test_a_nul_byte_in_a_query_is_a_400_in_the_api_shape(api, ready, url, field):
    body = assert_error(api.get(url), 400, "invalid")
    assert body["details"] == {field: ["Contains a NUL byte."]}


def test_a_nul_byte_in_an_admin_filter_or_search_is_a_plain_400(middle_office, ready):
    admin = Client()
    admin.force_login(middle_office)
    for url in ("/admin/orders/order/?status__exact=%00", "/admin/orders/order/?q=AB%00"):
        response = admin.get(url)
        assert response.status_code == 400, url
        assert b"NUL bytes are not allowed" in response.content


def test_a_nul_byte_in_the_login_form_is_a_form_error(db):
    response = Client().post("/login/", {"username": "trader1\x00", "password": "x"})
    assert response.status_code == 200
    assert response.context["form"].errors["username"] == ["Null characters are not allowed."]


def test_a_nul_byte_in_a_json_body_is_a_400_and_creates_nothing(api, ready):
    response = api.post("/api/v1/orders/", {**ORDER, "client_order_id": "H\x00-1"}, format="json")

    assert_error(response, 400, "parse_error")
    assert not Order.objects.exists()


@pytest.mark.parametrize("depth", [40, 100_000])
def test_json_nested_too_deeply_is_a_400(api, ready, depth):
    body = "[" * depth + "]" * depth

    response = api.generic("POST", "/api/v1/orders/", body, content_type="application/json")

    error = assert_error(response, 400, "parse_error")
    assert "nested deeper" in error["message"]


def test_a_body_over_the_limit_is_a_400_in_the_api_shape(api, ready, settings):
    lines = [{**ORDER, "client_order_id": f"H-{i}"} for i in range(70_000)]
    body = json.dumps({"client_basket_id": "big", "orders": lines})
    assert len(body) > 10_000_000 > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = api.generic("POST", "/api/v1/baskets/", body, content_type="application/json")

    # Refused by Django's own limit or the parser's, whichever reads first: a 400 in
    # the API's error shape either way.
    assert response.status_code == 400
    error = response.json()
    assert set(error) == {"message", "code", "details"} and error["code"] in ("bad_request", "parse_error")
    assert "too large" in error["message"]
    assert not Order.objects.exists()


def test_every_list_in_the_schema_is_paginated(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/v1/positions/", "/api/v1/executions/", "/api/v1/orders/", "/api/v1/baskets/"):
        ok = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["$ref"].startswith("#/components/schemas/Paginated"), (path, ok)
