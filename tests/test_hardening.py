"""Bad input is a 400 in the interface's own shape, never a 500: NUL bytes in the
API's or the admin's query strings or a JSON body (the pages' own tests cover theirs);
JSON nested too deeply; a body over the size limit. The schema describes every list
as the paginated list it returns. Sign-ins lock out after repeated failures (pages,
admin, API tokens), audited and cleared by middle office; every page carries a strict
Content-Security-Policy."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from axes.models import AccessAttempt
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AuditEvent
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


@pytest.mark.parametrize(
    ("query", "field"),
    [("page_size=abc", "page_size"), ("page_size=0", "page_size"), ("page=-1", "page"), ("page=last", "page")],
)
def test_a_bad_page_or_page_size_is_a_400_naming_it(api, ready, query, field):
    body = assert_error(api.get(f"/api/v1/orders/?{query}"), 400, "invalid")
    assert list(body["details"]) == [field]


def test_a_page_past_the_end_is_a_404_and_a_big_page_size_is_cut(api, ready):
    assert_error(api.get("/api/v1/orders/?page=2"), 404, "not_found")
    assert api.get("/api/v1/orders/?page_size=100000").status_code == 200


def test_an_empty_filter_is_a_400_not_an_unfiltered_list(api, ready):
    body = assert_error(api.get("/api/v1/orders/?symbol="), 400, "invalid")
    assert list(body["details"]) == ["symbol"]


def test_every_operation_documents_its_errors_in_the_error_shape(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"message", "code", "details"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code in ("401", "403", "429"):
                body = operation["responses"][code]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/Error"}, (method, path, code)
    order = schema["paths"]["/api/v1/orders/{order_id}/amend/"]["post"]["responses"]
    assert {"400", "404", "409", "415"} <= set(order)
    price = schema["components"]["schemas"]["OrderAmendInputRequest"]["properties"]["limit_price"]
    assert price["pattern"] == r"^-?\d{1,10}(?:\.\d{1,8})?$"


# ================================================================ sign-in lockout
PASSWORD = "pass-Word-1"  # tests.factories.UserFactory's
LIMIT = 10


def _sign_in(client: Client, username: str, password: str, *, path: str = "/login/", ip: str = "10.0.0.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def _fail(client: Client, username: str, times: int, **kwargs) -> list[int]:
    return [_sign_in(client, username, "wrong", **kwargs).status_code for _ in range(times)]


def _events(action: str, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


def test_ten_failed_sign_ins_lock_the_username_with_a_429_page_and_an_audit_event(trader):
    client = Client()
    assert _fail(client, "trader1", LIMIT - 1) == [200] * (LIMIT - 1)  # the form again

    locked = _sign_in(client, "trader1", "wrong")
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"  # 15 minutes
    assert "Sign-in locked" in locked.content.decode() and "middle office" in locked.content.decode()

    # Locked: the right password is refused too, and nobody is signed in.
    refused = _sign_in(client, "trader1", PASSWORD)
    assert refused.status_code == 429
    assert client.get("/orders/").status_code == 302

    failed = _events("auth.login_failed", object_id="trader1")
    assert len(failed) == LIMIT + 1
    assert [e.details.get("locked_out", False) for e in failed] == [False] * LIMIT + [True]
    (lockout,) = _events("auth.locked_out")
    assert (lockout.actor, lockout.object_type, lockout.object_id) == ("trader1", "user", "trader1")
    assert lockout.details == {
        "ip": "10.0.0.1",
        "path": "/login/",
        "failures": LIMIT,
        "cool_off_seconds": 900,
    }
    assert lockout.id < failed[-1].id
    assert not _events("auth.login")


def test_the_lock_is_on_the_username_from_any_address_not_on_the_desk_address(trader, other_trader):
    desk = Client()
    _fail(desk, "trader1", LIMIT, ip="10.0.0.1")

    # The same username from elsewhere is locked; a colleague behind the same address is not.
    assert _sign_in(Client(), "trader1", PASSWORD, ip="10.9.9.9").status_code == 429
    colleague = _sign_in(Client(), "trader2", PASSWORD, ip="10.0.0.1")
    assert colleague.status_code == 302 and colleague["Location"] == "/orders/"


def test_the_admin_login_locks_out_the_same_way(middle_office):
    statuses = _fail(Client(), "mo1", LIMIT, path="/admin/login/")
    assert statuses == [200] * (LIMIT - 1) + [429]
    assert _sign_in(Client(), "mo1", PASSWORD, path="/admin/login/").status_code == 429
    assert [e.details["path"] for e in _events("auth.locked_out")] == ["/admin/login/"]


def test_a_sign_in_below_the_limit_resets_the_count(trader):
    _fail(Client(), "trader1", LIMIT - 1)
    assert _sign_in(Client(), "trader1", PASSWORD).status_code == 302
    assert _fail(Client(), "trader1", LIMIT - 1) == [200] * (LIMIT - 1)
    assert not AccessAttempt.objects.filter(failures_since_start__gte=LIMIT).exists()


def test_the_lock_ends_after_the_cool_off(trader, settings):
    _fail(Client(), "trader1", LIMIT)
    assert _sign_in(Client(), "trader1", PASSWORD).status_code == 429
    # Refused attempts do not extend the lock: it runs from the tenth failure.
    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.UTC) - settings.AXES_COOLOFF_TIME)

    assert _sign_in(Client(), "trader1", PASSWORD).status_code == 302
    assert not AccessAttempt.objects.exists()


def _lockout_page(client: Client):
    return client.get("/admin/axes/accessattempt/")


def test_middle_office_sees_and_clears_a_lockout_and_the_clearing_is_audited(trader, middle_office):
    _fail(Client(), "trader1", LIMIT, ip="10.0.0.7")
    attempt = AccessAttempt.objects.get(username="trader1")
    console = Client()
    console.force_login(middle_office)

    listing = _lockout_page(console)
    assert listing.status_code == 200
    assert "trader1" in listing.content.decode() and "10.0.0.7" in listing.content.decode()
    assert console.get(f"/admin/axes/accessattempt/{attempt.pk}/change/").status_code == 200  # read-only

    cleared = console.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert cleared.status_code == 302
    assert not AccessAttempt.objects.exists()
    (event,) = _events("auth.lockout_cleared")
    assert (event.actor, event.object_type, event.object_id) == ("mo1", "user", "trader1")
    assert event.details["ip"] == "10.0.0.7" and event.details["failures"] == LIMIT
    assert event.details["was_locked"] is True

    assert _sign_in(Client(), "trader1", PASSWORD).status_code == 302


def test_clearing_several_lockouts_at_once_audits_each(trader, other_trader, middle_office):
    _fail(Client(), "trader1", LIMIT)
    _fail(Client(), "trader2", 3)
    console = Client()
    console.force_login(middle_office)
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]

    response = console.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )

    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    cleared = {e.object_id: e.details["was_locked"] for e in _events("auth.lockout_cleared")}
    assert cleared == {"trader1": True, "trader2": False}


def test_a_trader_cannot_see_or_clear_lockouts(trader, other_trader):
    _fail(Client(), "trader2", LIMIT)
    web = Client()
    web.force_login(trader)
    assert _lockout_page(web).status_code == 302  # to the admin's login: not staff
    assert AccessAttempt.objects.count() == 1


# --------------------------------------------------------------- bad API tokens
def _token_client(key: str, ip: str = "10.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_bad_tokens_from_one_address_are_throttled_and_audited(trader):
    good = Token.objects.create(user=trader)
    bad = _token_client("0" * 40)

    statuses = [bad.get("/api/v1/orders/").status_code for _ in range(LIMIT - 1)]
    assert statuses == [401] * (LIMIT - 1)
    for response in (bad.get("/api/v1/orders/"), bad.get("/api/v1/orders/")):
        body = assert_error(response, 429, "locked_out")
        assert body["details"] == {"retry_after_seconds": 900} and response["Retry-After"] == "900"

    # Another address is not affected; a valid token from the locked address still works.
    assert _token_client("1" * 40, ip="10.0.0.2").get("/api/v1/orders/").status_code == 401
    assert _token_client(good.key).get("/api/v1/orders/").status_code == 200

    failed = _events("auth.login_failed", object_type="api_token", object_id="10.0.0.1")
    assert len(failed) == LIMIT + 1 and failed[-1].details["locked_out"] is True
    assert all(e.actor == "anonymous" and "0" * 40 not in str(e.details) for e in failed)
    (lockout,) = _events("auth.locked_out")
    assert (lockout.object_type, lockout.object_id, lockout.details["failures"]) == ("api_token", "10.0.0.1", LIMIT)


def test_bad_tokens_do_not_count_against_sign_ins_from_the_same_address(trader):
    for _ in range(LIMIT):
        _token_client("0" * 40).get("/api/v1/orders/")
    assert _sign_in(Client(), "trader1", PASSWORD).status_code == 302
    # ... nor sign-in failures against tokens.
    AccessAttempt.objects.all().delete()
    _fail(Client(), "trader1", LIMIT)
    assert _token_client("0" * 40).get("/api/v1/orders/").status_code == 401


def test_a_token_lockout_is_cleared_in_the_admin_by_address(trader, middle_office):
    for _ in range(LIMIT):
        _token_client("0" * 40, ip="10.0.0.5").get("/api/v1/orders/")
    console = Client()
    console.force_login(middle_office)
    attempt = AccessAttempt.objects.get()
    console.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})

    (event,) = _events("auth.lockout_cleared")
    assert (event.object_type, event.object_id, event.details["username"]) == ("api_token", "10.0.0.5", None)
    assert _token_client("0" * 40, ip="10.0.0.5").get("/api/v1/orders/").status_code == 401


# ================================================================ Content-Security-Policy
POLICY = {
    "default-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
}


def _policy(response) -> dict[str, str]:
    directives = [part.strip() for part in response["Content-Security-Policy"].split(";") if part.strip()]
    return {d.split(" ", 1)[0]: d for d in directives}


def test_pages_and_admin_carry_a_strict_policy(trader, middle_office, account):
    web = Client()
    web.force_login(trader)
    console = Client()
    console.force_login(middle_office)
    for client, url in ((Client(), "/login/"), (web, "/orders/"), (web, "/orders/new/"), (console, "/admin/")):
        response = client.get(url)
        assert response.status_code == 200, url
        policy = _policy(response)
        assert POLICY <= set(policy.values()), (url, policy)
        # Scripts and styles from this origin only (a nonce only where one is used):
        # never 'unsafe-inline' or 'unsafe-eval'.
        for directive in ("script-src", "style-src"):
            assert policy[directive].startswith(f"{directive} 'self'"), policy
            assert "unsafe" not in policy[directive], policy


def test_the_api_docs_run_their_inline_start_up_under_the_nonce(trader):
    web = Client()
    web.force_login(trader)
    response = web.get("/api/docs/")
    assert response.status_code == 200
    nonce = re.search(r"'nonce-([^']+)'", _policy(response)["script-src"]).group(1)
    html = response.content.decode()
    assert f'<script nonce="{nonce}">' in html and f'<style nonce="{nonce}">' in html
    assert "<script>" not in html and "<style>" not in html


def test_the_lockout_page_carries_the_policy_too(trader):
    _fail(Client(), "trader1", LIMIT - 1)
    locked = _sign_in(Client(), "trader1", "wrong")
    assert locked.status_code == 429 and "default-src 'self'" in locked["Content-Security-Policy"]
