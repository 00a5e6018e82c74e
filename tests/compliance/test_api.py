"""The compliance REST API (issue 4 §5): the restricted list, the kill switch, override
requests and decisions, the what-if check, and the watch list's invisibility to traders.

The firm's default rule settings are live here (duplicate orders warn, short sales
need a locate, 20 orders a second per trader), so orders vary in quantity or price
unless a test is about duplicates. Every negative path asserts that nothing changed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from audit.models import AuditEvent
from compliance.models import (
    ComplianceResult,
    KillSwitch,
    Locate,
    LocateUse,
    OverrideRequest,
    RestrictedEntry,
    ReviewItem,
    WatchEntry,
)
from compliance.services import restricted_entry_add, watch_entry_add
from orders.models import Order, OrderRequest, Position
from orders.selectors import MIDDLE_OFFICE_GROUP, TRADER_GROUP
from orders.services import order_override_request
from routing.models import OutboundMessage
from tests.factories import SecurityFactory, UserFactory
from tests.helpers import assert_error, assert_field_errors, client_for

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"
CHECK = "/api/v1/orders/check/"
RESTRICTED = "/api/v1/compliance/restricted-list/"
KILL_SWITCH = "/api/v1/compliance/kill-switch/"
OVERRIDES = "/api/v1/compliance/overrides/"

ENTRY_FIELDS = {
    "id",
    "symbol",
    "issuer",
    "reason",
    "effective_from",
    "effective_to",
    "active",
    "added_by",
    "added_at",
    "ended_by",
    "ended_at",
}
SWITCH_FIELDS = {
    "id",
    "scope",
    "target",
    "active",
    "reason",
    "activated_by",
    "activated_at",
    "released_by",
    "released_at",
    "release_reason",
    "cancels_requested",
}
OVERRIDE_FIELDS = {
    "id",
    "order",
    "status",
    "justification",
    "requested_by",
    "requested_at",
    "expires_at",
    "warnings",
    "decided_by",
    "decided_at",
    "decision_note",
}
WATCH_REASON = "Contoso bid rumour: desk 7 has inside information"

_MISSING = object()
_client_ids = iter(range(1, 1_000_000))


# ----------------------------------------------------------------------------- helpers
def payload(**overrides) -> dict:
    """A valid order request (BUY 1000 AAPL LIMIT 175.50 DAY on ACC-1), with a fresh
    client_order_id; an override of ``_MISSING`` leaves the field out."""
    body = {
        "client_order_id": f"CMP-{next(_client_ids)}",
        "account": "ACC-1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 1000,
        "order_type": "LIMIT",
        "limit_price": "175.50",
        "time_in_force": "DAY",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not _MISSING}


def row_counts() -> dict[str, int]:
    models = (
        Order,
        OrderRequest,
        OutboundMessage,
        AuditEvent,
        ComplianceResult,
        RestrictedEntry,
        WatchEntry,
        KillSwitch,
        OverrideRequest,
        ReviewItem,
        LocateUse,
    )
    return {model.__name__: model.objects.count() for model in models}


def results_by_rule(body: dict) -> dict[str, dict]:
    return {r["rule"]: r for r in body["compliance_results"]}


def not_passed(results: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["rule"], r["outcome"], r["code"]) for r in results if r["outcome"] != "pass"]


def mark_sent(order_id: int) -> None:
    """What the venue's FIX session does after writing the message to the socket."""
    OutboundMessage.objects.filter(order_id=order_id, state=OutboundMessage.State.PENDING).update(
        state=OutboundMessage.State.SENT, sent_at=dt.datetime.now(dt.UTC), msg_seq_num=1
    )


def create_order(client: APIClient, **overrides) -> dict:
    response = client.post(ORDERS, payload(**overrides), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def held_order(client: APIClient, **overrides) -> dict:
    """A working order and its duplicate, which the duplicate_order rule holds."""
    create_order(client, **overrides)
    body = create_order(client, **overrides)
    assert body["status"] == "held", body
    return body


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


@pytest.fixture
def ready(account, aapl, venue):
    """Reference data for a valid submission by the trader."""


@pytest.fixture
def mo_api(middle_office) -> APIClient:
    return client_for(middle_office)


@pytest.fixture
def other_api(other_trader, other_account) -> APIClient:
    return client_for(other_trader)


@pytest.fixture
def dual_user(account):
    """A trader on ACC-1 who is also in middle office: may not approve their own override."""
    user = UserFactory(username="dual1")
    user.groups.add(Group.objects.get_or_create(name=TRADER_GROUP)[0])
    user.groups.add(Group.objects.get_or_create(name=MIDDLE_OFFICE_GROUP)[0])
    account.traders.add(user)
    return user


# ---------------------------------------------------------------- restricted list
def test_restricted_list_add_by_issuer_returns_201_with_the_entry(mo_api, ready):
    before = dt.datetime.now(dt.UTC)
    response = mo_api.post(RESTRICTED, {"issuer": "Apple Inc.", "reason": "M&A mandate"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == ENTRY_FIELDS
    entry = RestrictedEntry.objects.get()
    assert {k: v for k, v in body.items() if k not in ("effective_from", "added_at")} == {
        "id": entry.pk,
        "symbol": None,
        "issuer": "Apple Inc.",
        "reason": "M&A mandate",
        "effective_to": None,
        "active": True,
        "added_by": "mo1",
        "ended_by": None,
        "ended_at": None,
    }
    assert before <= dt.datetime.fromisoformat(body["effective_from"]) <= dt.datetime.now(dt.UTC)
    assert entry.added_by.username == "mo1"
    assert AuditEvent.objects.filter(action="restrictedentry.added", object_id=str(entry.pk), actor="mo1").exists()


def test_restricted_list_add_by_symbol_with_period(mo_api, ready):
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    end = start + dt.timedelta(days=30)

    response = mo_api.post(
        RESTRICTED,
        {"symbol": "aapl", "reason": "Research blackout", "effective_from": iso(start), "effective_to": iso(end)},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["symbol"], body["issuer"], body["active"]) == ("AAPL", "Apple Inc.", False)  # not started yet
    assert dt.datetime.fromisoformat(body["effective_from"]) == start
    assert dt.datetime.fromisoformat(body["effective_to"]) == end


def test_api_client_persona_may_maintain_the_restricted_list(ready, api_user):
    response = client_for(api_user).post(RESTRICTED, {"issuer": "Apple Inc.", "reason": "feed"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["added_by"] == "pm-system"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"symbol": "AAPL", "issuer": "Apple Inc.", "reason": "r"}, ("non_field_errors",)),
        ({"reason": "r"}, ("non_field_errors",)),
        ({"symbol": "", "issuer": "", "reason": "r"}, ("non_field_errors",)),
        ({"symbol": "NOPE", "reason": "r"}, ("symbol",)),
        ({"issuer": "Apple Inc."}, ("reason",)),
        ({"issuer": "Apple Inc.", "reason": "   "}, ("reason",)),
        (
            {
                "issuer": "Apple Inc.",
                "reason": "r",
                "effective_from": "2031-02-01T00:00:00Z",
                "effective_to": "2031-01-01T00:00:00Z",
            },
            ("effective_to",),
        ),
        ({"issuer": "Apple Inc.", "reason": "r", "effective_to": "2020-01-01T00:00:00Z"}, ("effective_to",)),
        ({"issuer": "Apple Inc.", "reason": "r", "effective_from": "2031-01-01T09:00:00"}, ("effective_from",)),
        ({"issuer": "Apple Inc.", "reason": "r", "effective_to": "tomorrow"}, ("effective_to",)),
    ],
    ids=[
        "symbol-and-issuer",
        "neither",
        "both-blank",
        "unknown-symbol",
        "missing-reason",
        "blank-reason",
        "to-before-from",
        "to-in-the-past",
        "naive-datetime",
        "not-a-datetime",
    ],
)
def test_restricted_list_add_invalid_is_400_and_adds_nothing(mo_api, ready, body, fields):
    counts = row_counts()

    assert_field_errors(mo_api.post(RESTRICTED, body, format="json"), *fields)

    assert row_counts() == counts


def test_restricted_list_get_is_paginated_with_filters(mo_api, ready, middle_office, msft):
    now = dt.datetime.now(dt.UTC)
    issuer = restricted_entry_add(user=middle_office, issuer="Apple Inc.", reason="deal")
    by_symbol = restricted_entry_add(user=middle_office, symbol="MSFT", reason="research")
    future = restricted_entry_add(
        user=middle_office, issuer="Contoso", reason="later", effective_from=now + dt.timedelta(days=2)
    )

    body = mo_api.get(RESTRICTED).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3
    assert all(set(row) == ENTRY_FIELDS for row in body["results"])
    by_id = {row["id"]: row for row in body["results"]}
    assert (by_id[by_symbol.pk]["symbol"], by_id[by_symbol.pk]["issuer"]) == ("MSFT", "Microsoft")
    assert by_id[issuer.pk]["symbol"] is None
    assert [by_id[e.pk]["active"] for e in (issuer, by_symbol, future)] == [True, True, False]

    def ids(**params) -> set[int]:
        response = mo_api.get(RESTRICTED, params)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids(active="true") == {issuer.pk, by_symbol.pk}
    assert ids(active="false") == {future.pk}
    assert ids(symbol="msft") == {by_symbol.pk}
    assert ids(issuer="apple inc.") == {issuer.pk}
    assert ids(issuer="Microsoft") == {by_symbol.pk}  # a symbol entry carries its issuer
    assert ids(issuer="Contoso", active="true") == set()

    page = mo_api.get(RESTRICTED, {"page_size": 2}).json()
    assert (page["count"], len(page["results"]), page["next"] is not None) == (3, 2, True)


def test_restricted_list_bad_filter_is_400(mo_api, ready):
    assert_field_errors(mo_api.get(RESTRICTED, {"active": "maybe"}), "active")


def test_restricted_list_delete_ends_the_entry_and_keeps_history(mo_api, ready, middle_office, api_user):
    entry = restricted_entry_add(user=api_user, issuer="Apple Inc.", reason="deal")

    response = mo_api.delete(f"{RESTRICTED}{entry.pk}/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == ENTRY_FIELDS
    assert (body["id"], body["active"], body["added_by"], body["ended_by"]) == (entry.pk, False, "pm-system", "mo1")
    assert body["ended_at"] is not None and body["effective_to"] is not None
    entry.refresh_from_db()
    assert entry.ended_by == middle_office
    assert AuditEvent.objects.filter(action="restrictedentry.ended", object_id=str(entry.pk)).count() == 1
    # History kept: still listed, no longer in force.
    listed = mo_api.get(RESTRICTED).json()["results"]
    assert [(row["id"], row["active"]) for row in listed] == [(entry.pk, False)]
    assert mo_api.get(RESTRICTED, {"active": "true"}).json()["count"] == 0
    # Ending it again changes nothing.
    counts = row_counts()
    again = mo_api.delete(f"{RESTRICTED}{entry.pk}/")
    assert again.status_code == 200 and again.json()["ended_at"] == body["ended_at"]
    assert row_counts() == counts


def test_restricted_list_delete_unknown_is_404(mo_api, ready):
    counts = row_counts()

    assert_error(mo_api.delete(f"{RESTRICTED}999999/"), 404, "not_found")

    assert row_counts() == counts


def test_restricted_issuer_blocks_a_traders_order_and_the_check_says_so(api, mo_api, ready):
    added = mo_api.post(RESTRICTED, {"issuer": "Apple Inc.", "reason": "confidential deal X-17"}, format="json")
    assert added.status_code == 201

    response = api.post(ORDERS, payload(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["venue"]) == ("rejected", None)
    restricted = results_by_rule(body)["restricted_list"]
    assert (restricted["outcome"], restricted["code"]) == ("block", "restricted_list")
    assert "Apple Inc." in body["reject_reason"]
    # The entry's reason may be inside information: the trader sees only the fact.
    assert "X-17" not in response.content.decode()
    assert not OutboundMessage.objects.filter(order_id=body["id"]).exists()

    counts = row_counts()
    check = api.post(CHECK, payload(quantity=1100), format="json")
    assert check.status_code == 200, check.content
    assert check.json()["outcome"] == "block"
    assert ("restricted_list", "block", "restricted_list") in not_passed(check.json()["results"])
    assert row_counts() == counts


def test_restricted_symbol_covers_the_whole_issuer(api, mo_api, ready):
    SecurityFactory(symbol="AAPLW", name="Apple warrant", issuer="Apple Inc.", reference_price=Decimal("12.00"))
    assert mo_api.post(RESTRICTED, {"symbol": "AAPL", "reason": "deal"}, format="json").status_code == 201

    body = create_order(api, symbol="AAPLW", limit_price="12.00")

    assert body["status"] == "rejected"
    assert not_passed(body["compliance_results"]) == [("restricted_list", "block", "restricted_list")]


def test_ended_restriction_no_longer_blocks(api, mo_api, ready, middle_office):
    entry = restricted_entry_add(user=middle_office, issuer="Apple Inc.", reason="deal")
    assert create_order(api)["status"] == "rejected"

    assert mo_api.delete(f"{RESTRICTED}{entry.pk}/").status_code == 200

    assert create_order(api, quantity=1200)["status"] == "pending_new"


# -------------------------------------------------------------------- kill switch
def test_firm_kill_switch_cancels_working_orders_blocks_new_ones_and_releases(api, mo_api, ready, middle_office):
    working = create_order(api, quantity=700)
    assert working["status"] == "pending_new"
    mark_sent(working["id"])  # on the wire: a cancel must go to the venue
    held = held_order(api, quantity=800)
    held_duplicate_of = Order.objects.filter(quantity=800, status="pending_new").get()
    mark_sent(held_duplicate_of.pk)

    response = mo_api.post(KILL_SWITCH, {"scope": "firm", "active": True, "reason": "runaway algo"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == SWITCH_FIELDS | {"changed", "cancelled_order_ids"}
    switch = KillSwitch.objects.get()
    assert {k: v for k, v in body.items() if k != "activated_at"} == {
        "id": switch.pk,
        "scope": "firm",
        "target": "",
        "active": True,
        "reason": "runaway algo",
        "activated_by": "mo1",
        "released_by": None,
        "released_at": None,
        "release_reason": "",
        "cancels_requested": 3,
        "changed": True,
        "cancelled_order_ids": sorted([working["id"], held_duplicate_of.pk, held["id"]]),
    }
    # The sent order gets an OrderCancelRequest through the outbox; the held one ends at once.
    assert Order.objects.get(pk=working["id"]).status == "pending_cancel"
    cancel = OutboundMessage.objects.get(order_id=working["id"], msg_type="F")
    assert cancel.state == OutboundMessage.State.PENDING
    assert Order.objects.get(pk=held["id"]).status == "cancelled"
    assert not OutboundMessage.objects.filter(order_id=held["id"]).exists()

    listed = mo_api.get(KILL_SWITCH).json()
    assert listed["count"] == 1
    assert set(listed["results"][0]) == SWITCH_FIELDS
    assert (listed["results"][0]["id"], listed["results"][0]["active"]) == (switch.pk, True)

    blocked = create_order(api, quantity=900)
    assert blocked["status"] == "rejected"
    assert not_passed(blocked["compliance_results"]) == [("kill_switch", "block", "kill_switch")]
    check = api.post(CHECK, payload(quantity=950), format="json").json()
    assert (check["outcome"], not_passed(check["results"])) == ("block", [("kill_switch", "block", "kill_switch")])

    # Switching on what is on changes nothing.
    counts = row_counts()
    again = mo_api.post(KILL_SWITCH, {"scope": "firm", "active": True, "reason": "again"}, format="json")
    assert again.status_code == 200, again.content
    assert (again.json()["id"], again.json()["changed"], again.json()["cancelled_order_ids"]) == (switch.pk, False, [])
    assert row_counts() == counts

    released = mo_api.post(KILL_SWITCH, {"scope": "firm", "active": False, "reason": "algo fixed"}, format="json")
    assert released.status_code == 200, released.content
    assert {k: released.json()[k] for k in ("id", "active", "released_by", "release_reason", "changed")} == {
        "id": switch.pk,
        "active": False,
        "released_by": "mo1",
        "release_reason": "algo fixed",
        "changed": True,
    }
    assert mo_api.get(KILL_SWITCH).json()["count"] == 0
    assert create_order(api, quantity=1100)["status"] == "pending_new"
    # Releasing is not retroactive: the cancels stay.
    assert Order.objects.get(pk=working["id"]).status == "pending_cancel"


def test_account_kill_switch_only_stops_that_account(api, mo_api, other_api, ready, other_account):
    response = mo_api.post(
        KILL_SWITCH, {"scope": "account", "target": "ACC-3", "active": True, "reason": "margin call"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert (response.json()["scope"], response.json()["target"]) == ("account", "ACC-3")

    assert create_order(api)["status"] == "pending_new"
    assert create_order(other_api, account="ACC-3")["status"] == "rejected"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"scope": "galaxy", "active": True, "reason": "r"}, ("scope",)),
        ({"active": True, "reason": "r"}, ("scope",)),
        ({"scope": "account", "active": True, "reason": "r"}, ("target",)),
        ({"scope": "account", "target": "", "active": True, "reason": "r"}, ("target",)),
        ({"scope": "account", "target": "ACC-404", "active": True, "reason": "r"}, ("target",)),
        ({"scope": "trader", "target": "nobody", "active": True, "reason": "r"}, ("target",)),
        ({"scope": "venue", "target": "NOPE", "active": True, "reason": "r"}, ("target",)),
        ({"scope": "symbol", "target": "NOPE", "active": True, "reason": "r"}, ("target",)),
        ({"scope": "firm", "target": "ACC-1", "active": True, "reason": "r"}, ("target",)),
        ({"scope": "firm", "active": True}, ("reason",)),
        ({"scope": "firm", "active": True, "reason": ""}, ("reason",)),
        ({"scope": "firm", "reason": "r"}, ("active",)),
        ({"scope": "firm", "active": "perhaps", "reason": "r"}, ("active",)),
    ],
    ids=[
        "bad-scope",
        "missing-scope",
        "missing-target",
        "blank-target",
        "unknown-account",
        "unknown-trader",
        "unknown-venue",
        "unknown-symbol",
        "firm-with-target",
        "missing-reason",
        "blank-reason",
        "missing-active",
        "bad-active",
    ],
)
def test_kill_switch_invalid_is_400_and_changes_nothing(mo_api, api, ready, body, fields):
    working = create_order(api)
    counts = row_counts()

    assert_field_errors(mo_api.post(KILL_SWITCH, body, format="json"), *fields)

    assert row_counts() == counts
    assert Order.objects.get(pk=working["id"]).status == "pending_new"


def test_releasing_a_switch_that_was_never_on_is_404(mo_api, ready):
    counts = row_counts()

    assert_error(
        mo_api.post(KILL_SWITCH, {"scope": "firm", "active": False, "reason": "r"}, format="json"), 404, "not_found"
    )

    assert row_counts() == counts


# ---------------------------------------------------------------------- overrides
def test_duplicate_order_is_held_until_middle_office_approves_the_override(api, mo_api, ready, trader):
    first = create_order(api)
    response = api.post(ORDERS, payload(), format="json")
    assert response.status_code == 201
    held = response.json()
    assert held["status"] == "held"
    duplicate = results_by_rule(held)["duplicate_order"]
    assert (duplicate["outcome"], duplicate["code"]) == ("warn", "duplicate_order")
    assert not OutboundMessage.objects.filter(order_id=held["id"]).exists()

    requested = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "second clip, same terms"}, format="json")

    assert requested.status_code == 201, requested.content
    body = requested.json()
    assert set(body) == OVERRIDE_FIELDS
    override = OverrideRequest.objects.get()
    assert {k: v for k, v in body.items() if k not in ("requested_at", "expires_at")} == {
        "id": override.pk,
        "order": held["id"],
        "status": "pending",
        "justification": "second clip, same terms",
        "requested_by": "trader1",
        "warnings": ["duplicate_order"],
        "decided_by": None,
        "decided_at": None,
        "decision_note": "",
    }
    assert dt.datetime.fromisoformat(body["expires_at"]) > dt.datetime.fromisoformat(body["requested_at"])

    queue = mo_api.get(OVERRIDES, {"status": "pending"}).json()
    assert queue["count"] == 1
    assert set(queue["results"][0]) == OVERRIDE_FIELDS
    assert queue["results"][0]["id"] == override.pk
    assert mo_api.get(OVERRIDES, {"status": "approved"}).json()["count"] == 0

    approved = mo_api.post(f"{OVERRIDES}{override.pk}/approve/", {"note": "checked with the desk"}, format="json")

    assert approved.status_code == 200, approved.content
    decision = approved.json()
    assert set(decision) == OVERRIDE_FIELDS | {"order_status"}
    assert {k: decision[k] for k in ("id", "status", "decided_by", "decision_note", "order_status")} == {
        "id": override.pk,
        "status": "approved",
        "decided_by": "mo1",
        "decision_note": "checked with the desk",
        "order_status": "pending_new",
    }
    order = Order.objects.get(pk=held["id"])
    assert order.status == "pending_new"
    nos = OutboundMessage.objects.get(order_id=order.pk)
    assert (nos.msg_type, nos.state, nos.cl_ord_id) == ("D", "pending", order.cl_ord_id)
    assert Order.objects.get(pk=first["id"]).status == "pending_new"
    # The trader sees the warning as overridden history on the order.
    detail = api.get(f"{ORDERS}{order.pk}/").json()
    assert detail["status"] == "pending_new"
    assert mo_api.get(OVERRIDES, {"status": "pending"}).json()["count"] == 0
    assert mo_api.get(OVERRIDES).json()["count"] == 1


def test_approve_without_note_is_fine(mo_api, api, ready):
    held = held_order(api)
    override = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json").json()

    response = mo_api.post(f"{OVERRIDES}{override['id']}/approve/", {}, format="json")

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["decision_note"]) == ("approved", "")
    assert response.json()["order_status"] == "pending_new"


def test_api_client_persona_may_decide_overrides(api, ready, api_user):
    held = held_order(api)
    override = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json").json()

    response = client_for(api_user).post(f"{OVERRIDES}{override['id']}/deny/", {"note": "policy"}, format="json")

    assert response.status_code == 200, response.content
    assert (response.json()["decided_by"], response.json()["order_status"]) == ("pm-system", "rejected")


def test_deny_rejects_the_held_order(api, mo_api, ready):
    held = held_order(api)
    override = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json").json()

    response = mo_api.post(f"{OVERRIDES}{override['id']}/deny/", {"note": "no duplicates today"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["decided_by"], body["decision_note"], body["order_status"]) == (
        "denied",
        "mo1",
        "no duplicates today",
        "rejected",
    )
    order = Order.objects.get(pk=held["id"])
    assert order.status == "rejected"
    assert "no duplicates today" in order.reject_reason
    assert not OutboundMessage.objects.filter(order_id=order.pk).exists()


@pytest.mark.parametrize("body", [{}, {"note": ""}, {"note": "   "}], ids=["missing", "empty", "blank"])
def test_deny_without_a_note_is_400_and_changes_nothing(api, mo_api, ready, body):
    held = held_order(api)
    override = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json").json()
    counts = row_counts()

    assert_field_errors(mo_api.post(f"{OVERRIDES}{override['id']}/deny/", body, format="json"), "note")

    assert row_counts() == counts
    assert OverrideRequest.objects.get().status == "pending"
    assert Order.objects.get(pk=held["id"]).status == "held"


def test_self_approval_is_refused_four_eyes(ready, dual_user, middle_office):
    dual = client_for(dual_user)
    held = held_order(dual)
    override = dual.post(f"{ORDERS}{held['id']}/override/", {"justification": "mine"}, format="json")
    assert override.status_code == 201, override.content
    override_id = override.json()["id"]
    counts = row_counts()

    for decision, body in (("approve", {}), ("deny", {"note": "no"})):
        assert_error(dual.post(f"{OVERRIDES}{override_id}/{decision}/", body, format="json"), 403, "four_eyes")

    assert row_counts() == counts
    assert OverrideRequest.objects.get().status == "pending"
    assert Order.objects.get(pk=held["id"]).status == "held"
    # Another compliance user may.
    approved = client_for(middle_office).post(f"{OVERRIDES}{override_id}/approve/", {}, format="json")
    assert approved.status_code == 200, approved.content
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", "mo1")
    assert approved.json()["order_status"] == "pending_new"


def test_approval_after_expiry_is_409_and_the_order_stays_held(api, mo_api, ready):
    held = held_order(api)
    override_id = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json").json()["id"]
    OverrideRequest.objects.filter(pk=override_id).update(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))

    response = mo_api.post(f"{OVERRIDES}{override_id}/approve/", {"note": "too late"}, format="json")

    assert_error(response, 409, "override_expired")
    assert OverrideRequest.objects.get().status == "expired"
    assert Order.objects.get(pk=held["id"]).status == "held"
    assert not OutboundMessage.objects.filter(order_id=held["id"]).exists()
    # The trader may ask again.
    again = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "again"}, format="json")
    assert again.status_code == 201, again.content


def test_deciding_a_decided_override_is_409(api, mo_api, ready):
    held = held_order(api)
    override_id = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json").json()["id"]
    assert mo_api.post(f"{OVERRIDES}{override_id}/deny/", {"note": "no"}, format="json").status_code == 200
    counts = row_counts()

    assert_error(mo_api.post(f"{OVERRIDES}{override_id}/approve/", {}, format="json"), 409, "invalid_state")
    assert_error(mo_api.post(f"{OVERRIDES}{override_id}/deny/", {"note": "n"}, format="json"), 409, "invalid_state")

    assert row_counts() == counts
    assert Order.objects.get(pk=held["id"]).status == "rejected"


@pytest.mark.parametrize(("decision", "body"), [("approve", {}), ("deny", {"note": "n"})])
def test_deciding_an_unknown_override_is_404(mo_api, ready, decision, body):
    counts = row_counts()

    assert_error(mo_api.post(f"{OVERRIDES}999999/{decision}/", body, format="json"), 404, "not_found")

    assert row_counts() == counts


def test_override_list_bad_status_is_400(mo_api, ready):
    assert_field_errors(mo_api.get(OVERRIDES, {"status": "whenever"}), "status")


# -------------------------------------------------------- override request errors
@pytest.mark.parametrize(
    "body", [{}, {"justification": ""}, {"justification": "  "}], ids=["missing", "empty", "blank"]
)
def test_override_request_without_justification_is_400(api, ready, body):
    held = held_order(api)
    counts = row_counts()

    assert_field_errors(api.post(f"{ORDERS}{held['id']}/override/", body, format="json"), "justification")

    assert row_counts() == counts


def test_override_request_for_an_order_not_held_is_409(api, ready):
    order = create_order(api)
    counts = row_counts()

    assert_error(
        api.post(f"{ORDERS}{order['id']}/override/", {"justification": "j"}, format="json"), 409, "invalid_state"
    )

    assert row_counts() == counts


def test_second_override_request_while_one_is_pending_is_409(api, ready):
    held = held_order(api)
    assert api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json").status_code == 201
    counts = row_counts()

    response = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "again"}, format="json")

    assert_error(response, 409, "override_pending")
    assert row_counts() == counts


def test_override_request_for_another_traders_order_is_404(api, other_api, ready):
    held = held_order(api)
    counts = row_counts()

    assert_error(
        other_api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json"), 404, "not_found"
    )
    assert_error(other_api.post(f"{ORDERS}999999/override/", {"justification": "j"}, format="json"), 404, "not_found")

    assert row_counts() == counts


def test_middle_office_cannot_request_an_override(api, mo_api, ready):
    held = held_order(api)
    counts = row_counts()

    response = mo_api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json")

    assert_error(response, 403, "permission_denied")
    assert row_counts() == counts


def test_cancelling_a_held_order_withdraws_its_override(api, mo_api, ready):
    held = held_order(api)
    override_id = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json").json()["id"]

    assert api.post(f"{ORDERS}{held['id']}/cancel/").status_code == 202

    assert OverrideRequest.objects.get().status == "withdrawn"
    assert_error(mo_api.post(f"{OVERRIDES}{override_id}/approve/", {}, format="json"), 409, "invalid_state")
    assert Order.objects.get(pk=held["id"]).status == "cancelled"


# -------------------------------------------------------------------- short sales
def test_sell_beyond_the_position_without_a_locate_is_rejected(api, ready, account, aapl):
    Position.objects.create(account=account, security=aapl, quantity=300, bought_quantity=300)

    within = create_order(api, side="SELL", quantity=300)
    beyond = create_order(api, side="SELL", quantity=100, limit_price="175.40")

    assert within["status"] == "pending_new"
    assert beyond["status"] == "rejected"
    assert not_passed(beyond["compliance_results"]) == [("short_sale", "block", "short_sale_unmarked")]
    assert not OutboundMessage.objects.filter(order_id=beyond["id"]).exists()


def test_sell_short_needs_a_locate(api, ready, account, aapl, middle_office):
    without = create_order(api, side="SELL_SHORT", quantity=500)
    assert without["status"] == "rejected"
    assert not_passed(without["compliance_results"]) == [("short_sale", "block", "no_locate")]

    locate = Locate.objects.create(
        account=account,
        security=aapl,
        broker="PB1",
        reference="L-1",
        quantity=1000,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=8),
        created_by=middle_office,
    )
    with_locate = create_order(api, side="SELL_SHORT", quantity=600)

    assert with_locate["status"] == "pending_new"
    assert results_by_rule(with_locate)["short_sale"]["code"] == "locate"
    assert LocateUse.objects.get().locate == locate
    assert OutboundMessage.objects.get(order_id=with_locate["id"]).msg_type == "D"
    # The rest of the locate does not cover another 600.
    assert create_order(api, side="SELL_SHORT", quantity=600, limit_price="175.40")["status"] == "rejected"


def test_short_exempt_reason_is_taken_and_shown(api, ready):
    body = create_order(api, side="SELL_SHORT", quantity=400, short_exempt_reason="odd-lot liquidation (Rule 200(g))")

    assert body["status"] == "pending_new"
    assert body["short_exempt_reason"] == "odd-lot liquidation (Rule 200(g))"
    assert results_by_rule(body)["short_sale"]["code"] == "short_exempt"
    assert api.get(f"{ORDERS}{body['id']}/").json()["short_exempt_reason"] == "odd-lot liquidation (Rule 200(g))"


def test_short_exempt_reason_only_on_sell_short(api, ready):
    counts = row_counts()

    assert_field_errors(api.post(ORDERS, payload(short_exempt_reason="why not"), format="json"), "short_exempt_reason")
    assert_field_errors(api.post(CHECK, payload(short_exempt_reason="why not"), format="json"), "short_exempt_reason")

    assert row_counts() == counts


# ------------------------------------------------------------------------ what-if
def test_check_passes_and_writes_nothing(api, ready):
    counts = row_counts()

    response = api.post(CHECK, payload(client_order_id=_MISSING), format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"outcome", "results"}
    assert body["outcome"] == "pass"
    assert body["results"] and all(set(r) == {"rule", "outcome", "code", "reason"} for r in body["results"])
    assert {r["rule"] for r in body["results"]} >= {"restricted_list", "kill_switch", "max_order_quantity"}
    assert "watch_list" not in {r["rule"] for r in body["results"]}
    assert row_counts() == counts


def test_check_reports_warnings_and_blocks(api, ready, account, aapl, middle_office):
    create_order(api)
    counts = row_counts()

    duplicate = api.post(CHECK, payload(), format="json").json()
    fat_finger = api.post(CHECK, payload(quantity=1_000_001, limit_price="1.00"), format="json").json()
    short = api.post(CHECK, payload(side="SELL_SHORT", quantity=10), format="json").json()

    assert (duplicate["outcome"], not_passed(duplicate["results"])) == (
        "warn",
        [("duplicate_order", "warn", "duplicate_order")],
    )
    assert fat_finger["outcome"] == "block"
    assert ("max_order_quantity", "block", "max_order_quantity") in not_passed(fat_finger["results"])
    assert short["outcome"] == "block"
    assert ("short_sale", "block", "no_locate") in not_passed(short["results"])
    assert row_counts() == counts

    # A locate makes the what-if pass without reserving anything.
    Locate.objects.create(
        account=account,
        security=aapl,
        broker="PB1",
        reference="L-2",
        quantity=100,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        created_by=middle_office,
    )
    counts = row_counts()
    covered = api.post(CHECK, payload(side="SELL_SHORT", quantity=10, limit_price="175.40"), format="json").json()
    assert covered["outcome"] == "warn"  # opposite side of the working BUY: wash trade
    assert [r for r in not_passed(covered["results"]) if r[0] == "short_sale"] == []
    assert row_counts() == counts


def test_check_on_an_account_the_user_does_not_trade_is_400(api, mo_api, ready, other_account):
    counts = row_counts()

    assert_field_errors(api.post(CHECK, payload(account="ACC-3"), format="json"), "account")
    assert_field_errors(mo_api.post(CHECK, payload(), format="json"), "account")

    assert row_counts() == counts


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"symbol": "NOPE"}, ("symbol",)),
        ({"quantity": 0}, ("quantity",)),
        ({"side": "HOLD"}, ("side",)),
        ({"order_type": "LIMIT", "limit_price": _MISSING}, ("limit_price",)),
        ({"account": _MISSING}, ("account",)),
    ],
)
def test_check_invalid_input_is_400(api, ready, overrides, fields):
    counts = row_counts()

    assert_field_errors(api.post(CHECK, payload(**overrides), format="json"), *fields)

    assert row_counts() == counts


# ------------------------------------------------------------------------ watch list
def test_watch_list_is_invisible_to_the_trader(api, ready, middle_office):
    entry = watch_entry_add(user=middle_office, symbol="AAPL", reason=WATCH_REASON)

    def assert_no_trace(response) -> None:
        assert response.status_code in (200, 201), response.content
        text = response.content.decode()
        assert "watch" not in text.lower()
        assert WATCH_REASON not in text
        assert "Contoso" not in text
        assert f"#{entry.pk} " not in text

    reviews_before = ReviewItem.objects.count()
    check = api.post(CHECK, payload(), format="json")
    assert_no_trace(check)
    assert check.json()["outcome"] == "pass"
    assert ReviewItem.objects.count() == reviews_before  # the what-if raises nothing

    created = api.post(ORDERS, payload(quantity=1300), format="json")
    assert_no_trace(created)
    order_id = created.json()["id"]
    assert created.json()["status"] == "pending_new"  # never blocks or holds
    assert_no_trace(api.get(ORDERS))
    assert_no_trace(api.get(f"{ORDERS}{order_id}/"))
    assert_no_trace(api.get(f"{ORDERS}{order_id}/audit/"))

    # Compliance has it: an internal result and a review item for the order.
    item = ReviewItem.objects.get(order_id=order_id)
    assert item.kind == "watch_list"
    assert ComplianceResult.objects.filter(order_id=order_id, rule="watch_list", internal=True).exists()


def test_watch_list_hit_on_a_held_order_stays_invisible(api, ready, middle_office):
    watch_entry_add(user=middle_office, issuer="Apple Inc.", reason=WATCH_REASON)
    held = held_order(api, quantity=1400)

    response = api.post(f"{ORDERS}{held['id']}/override/", {"justification": "j"}, format="json")

    assert response.status_code == 201
    assert response.json()["warnings"] == ["duplicate_order"]
    for text in (response.content.decode(), api.get(f"{ORDERS}{held['id']}/audit/").content.decode()):
        assert "watch" not in text.lower() and WATCH_REASON not in text


# ------------------------------------------------------------------- permissions
@pytest.fixture
def compliance_world(ready, trader, middle_office):
    """A restricted entry and a pending override request for a held order."""
    entry = restricted_entry_add(user=middle_office, issuer="Contoso", reason="deal")
    held = held_order(client_for(trader), quantity=1500)
    override = order_override_request(user=trader, order_id=held["id"], justification="j")
    return {"entry": entry.pk, "override": override.pk, "order": held["id"]}


COMPLIANCE_CALLS = [
    ("get", RESTRICTED, None),
    ("post", RESTRICTED, {"issuer": "Apple Inc.", "reason": "r"}),
    ("delete", RESTRICTED + "{entry}/", None),
    ("get", KILL_SWITCH, None),
    ("post", KILL_SWITCH, {"scope": "firm", "active": True, "reason": "r"}),
    ("get", OVERRIDES, None),
    ("post", OVERRIDES + "{override}/approve/", {"note": "n"}),
    ("post", OVERRIDES + "{override}/deny/", {"note": "n"}),
]
CALL_IDS = [
    "list-restricted",
    "add-restricted",
    "end-restricted",
    "list-switches",
    "set-switch",
    "list-overrides",
    "approve",
    "deny",
]


def _snapshot() -> dict:
    return {
        "counts": row_counts(),
        "entries": list(RestrictedEntry.objects.values()),
        "overrides": list(OverrideRequest.objects.values()),
        "orders": list(Order.objects.order_by("id").values("id", "status")),
    }


@pytest.mark.parametrize(("method", "path", "body"), COMPLIANCE_CALLS, ids=CALL_IDS)
@pytest.mark.parametrize("persona", ["trader", "other_trader", "outsider"])
def test_compliance_endpoints_are_403_for_traders_and_outsiders(
    request, compliance_world, other_account, outsider, method, path, body, persona
):
    client = client_for(request.getfixturevalue(persona))
    before = _snapshot()

    response = getattr(client, method)(path.format(**compliance_world), body, format="json")

    assert_error(response, 403, "permission_denied")
    assert _snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), COMPLIANCE_CALLS, ids=CALL_IDS)
def test_compliance_endpoints_are_401_unauthenticated(compliance_world, method, path, body):
    before = _snapshot()

    response = getattr(APIClient(), method)(path.format(**compliance_world), body, format="json")

    assert_error(response, 401, "not_authenticated")
    assert _snapshot() == before


@pytest.mark.parametrize("path", [CHECK, f"{ORDERS}1/override/"])
def test_new_order_endpoints_are_401_unauthenticated(ready, path):
    counts = row_counts()

    assert_error(APIClient().post(path, payload(), format="json"), 401, "not_authenticated")

    assert row_counts() == counts


def test_superuser_is_a_compliance_user(ready):
    admin = UserFactory(username="root", is_superuser=True)

    assert client_for(admin).get(RESTRICTED).status_code == 200


def test_openapi_schema_lists_the_compliance_endpoints(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()

    assert {
        "/api/v1/compliance/restricted-list/",
        "/api/v1/compliance/restricted-list/{entry_id}/",
        "/api/v1/compliance/kill-switch/",
        "/api/v1/compliance/overrides/",
        "/api/v1/compliance/overrides/{override_id}/approve/",
        "/api/v1/compliance/overrides/{override_id}/deny/",
        "/api/v1/orders/check/",
        "/api/v1/orders/{order_id}/override/",
    } <= set(schema["paths"])
    assert set(schema["paths"]["/api/v1/compliance/kill-switch/"]["post"]["responses"]) >= {"200", "201"}
    assert "short_exempt_reason" in schema["components"]["schemas"]["OrderCreateInputRequest"]["properties"]
