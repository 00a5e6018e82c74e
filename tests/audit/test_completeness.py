"""Completeness of the audit trail (issue 5, item 4): raw FIX messages in and out linked
to their order and session, reference data edited in the admin (venues, accounts,
securities, users, groups), sign-ins and failed sign-ins, every order service and
refused transition, and the order's every version rebuilt from its events."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.serializers.json import DjangoJSONEncoder

from audit.models import AuditEvent
from orders.models import Account, Order, Security
from orders.services import inbox_apply, order_amend, order_cancel, order_snapshot, venue_reconcile
from routing import services as routing_services
from routing.fix.session import FixSession, Role, SessionConfig, State
from routing.models import FixMessageLog, InboundMessage, OutboundMessage, Venue
from routing.services import LeaseLost
from routing.store import DbStore, fix_audit_text
from tests.conftest import apply, compliance_quiet_for_lifecycle, report
from tests.factories import SecurityFactory, UserFactory

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"
PASSWORD = "Corr3ct-horse-battery"


@pytest.fixture(autouse=True)
def _lifecycle_compliance(request):
    compliance_quiet_for_lifecycle(request)


def events(**filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


def order_events(order: Order) -> list[AuditEvent]:
    return events(object_type="order", object_id=str(order.pk))


def normalised(value):
    """A value as the audit trail's JSON stores it."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


# ============================================================ raw FIX messages, out
class _Wire:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, raw: bytes) -> None:
        self.written.append(raw)

    def close(self) -> None:
        pass


def logged_on_session(venue: Venue, holder: str = "h") -> tuple[FixSession, DbStore, _Wire]:
    """The OMS side of a venue's session on the real store, logged on, without a
    socket: the Logon goes through the store like every outbound message."""
    token = routing_services.session_lease_acquire(venue_id=venue.pk, holder=holder, ttl=30)
    store = DbStore(venue_id=venue.pk, holder=holder, token=token)
    session = FixSession(
        config=SessionConfig(begin_string="FIX.4.4", sender_comp_id="OMS", target_comp_id="SIM", role=Role.INITIATOR),
        store=store,
        app=None,
    )
    wire = _Wire()
    session.connection_made(wire, time.monotonic())  # sends the Logon (35=A)
    session.state = State.ACTIVE  # as if the venue answered the Logon
    return session, store, wire


def post_order(api, account, security, quantity=100) -> Order:
    response = api.post(
        ORDERS,
        {
            "client_order_id": f"C-{time.monotonic_ns()}",
            "account": account.code,
            "symbol": security.symbol,
            "side": "BUY",
            "quantity": quantity,
            "order_type": "LIMIT",
            "limit_price": "175.50",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return Order.objects.get(pk=response.json()["id"])


def test_an_order_sent_from_the_outbox_is_audited_with_its_raw_message(api, account, aapl, venue):
    order = post_order(api, account, aapl)
    outbox = OutboundMessage.objects.get(order_id=order.pk, msg_type="D")
    session, store, wire = logged_on_session(venue)

    raw = routing_services.outbox_message_stamp(
        venue_id=venue.pk, holder="h", token=store.token, message_id=outbox.pk, prepare=session.prepare_app
    )

    outbox.refresh_from_db()
    assert outbox.state == "sent"
    (sent,) = events(action="fix.sent", object_type="order")
    assert (sent.object_id, sent.actor) == (str(order.pk), "system:fix-host:h")
    assert sent.before is None and sent.after is None
    assert sent.details == {
        "venue": "SIM",
        "epoch": 1,
        "seq": outbox.msg_seq_num,
        "msg_type": "D",
        "message": raw.decode("latin-1").replace("\x01", "|"),
        "outbound_message_id": outbox.pk,
        "cl_ord_id": order.cl_ord_id,
    }
    assert "\x01" not in sent.details["message"] and f"|11={order.cl_ord_id}|" in sent.details["message"]
    assert FixMessageLog.objects.get(direction="out", msg_type="D").msg_seq_num == sent.details["seq"]
    # On the order's trail, after the order's own events.
    assert order_events(order)[-1] == sent

    # The session's own messages (the Logon here) are on the session's trail.
    (logon,) = events(action="fix.sent", object_type="fix_session")
    assert logon.object_id == "SIM"
    assert (logon.details["msg_type"], logon.details["seq"], logon.details["epoch"]) == ("A", 1, 1)
    assert logon.details["message"] == wire.written[0].decode("latin-1").replace("\x01", "|")


def test_cancel_and_status_requests_are_linked_to_their_order(api, account, aapl, venue):
    order = post_order(api, account, aapl)
    session, store, _ = logged_on_session(venue)
    nos = OutboundMessage.objects.get(order_id=order.pk, msg_type="D")
    routing_services.outbox_message_stamp(
        venue_id=venue.pk, holder="h", token=store.token, message_id=nos.pk, prepare=session.prepare_app
    )
    apply(order, ExecType="0", OrdStatus="0", OrderQty=100, CumQty=0, LeavesQty=100)
    assert api.post(f"{ORDERS}{order.pk}/cancel/").status_code == 202

    def send_pending() -> None:
        for message in OutboundMessage.objects.filter(order_id=order.pk, state="pending").order_by("id"):
            routing_services.outbox_message_stamp(
                venue_id=venue.pk, holder="h", token=store.token, message_id=message.pk, prepare=session.prepare_app
            )

    send_pending()  # the OrderCancelRequest (11 = the cancel's own ClOrdID)
    assert venue_reconcile(venue_code="SIM") == [order.pk]
    send_pending()  # the OrderStatusRequest (its outbox row is named by 790)

    sent = [e for e in order_events(order) if e.action == "fix.sent"]
    assert [e.details["msg_type"] for e in sent] == ["D", "F", "H"]
    assert [e.details["seq"] for e in sent] == [2, 3, 4]
    assert not events(action="fix.sent", object_type="fix_session", details__msg_type__in=["D", "F", "H"])


def test_a_stale_holder_stores_nothing_and_audits_nothing(venue):
    token = routing_services.session_lease_acquire(venue_id=venue.pk, holder="a", ttl=30)
    stale = DbStore(venue_id=venue.pk, holder="a", token=token)
    routing_services.session_lease_release(venue_id=venue.pk, holder="a", token=token)
    routing_services.session_lease_acquire(venue_id=venue.pk, holder="b", ttl=30)

    with pytest.raises(LeaseLost):
        stale.save_outbound(1, "0", b"8=FIX.4.4\x0135=0\x01")

    assert not FixMessageLog.objects.exists() and not AuditEvent.objects.filter(action="fix.sent").exists()


def test_logon_credentials_never_reach_the_trail():
    assert fix_audit_text(b"8=FIX.4.4\x0135=A\x01553=me\x01554=secret\x01925=new\x0110=000\x01") == (
        "8=FIX.4.4|35=A|553=me|554=***|925=***|10=000|"
    )


# ============================================================= raw FIX messages, in
def inbound(venue: Venue, seq: int, tags: dict[int, str]) -> InboundMessage:
    fields = [[35, tags[35]], [34, str(seq)], *[[t, v] for t, v in tags.items() if t != 35]]
    raw = "".join(f"{t}={v}\x01" for t, v in fields)
    return InboundMessage.objects.create(
        venue=venue, epoch=1, msg_seq_num=seq, msg_type=tags[35], fields=fields, raw=raw
    )


def test_an_inbound_execution_report_is_audited_on_its_order_when_applied(submit):
    order = submit(quantity=1000)
    message = inbound(order.venue, 1, report(order, ExecType="0", OrdStatus="0", OrderQty=1000, CumQty=0))

    assert inbox_apply(venue_code="SIM") == 1

    order.refresh_from_db()
    assert order.status == "open"
    received = order_events(order)[-1]
    assert (received.action, received.actor) == ("fix.received", "venue:SIM")
    assert received.details == {
        "venue": "SIM",
        "epoch": 1,
        "seq": 1,
        "msg_type": "8",
        "message": message.raw.replace("\x01", "|"),
        "inbound_message_id": message.pk,
        "outcome": "applied",
    }
    assert order_events(order)[-2].action == "order.acknowledged"


def test_an_inbound_message_that_fails_or_matches_no_order_is_still_audited(submit, venue):
    order = submit(quantity=1000)
    broken = report(order, OrdStatus="0")  # no ExecType (150): cannot be applied
    inbound(venue, 1, broken)
    stranger = {35: "8", 11: "NOBODY", 17: "X-stranger", 150: "0", 39: "0", 55: "AAPL"}
    inbound(venue, 2, stranger)

    assert inbox_apply(venue_code="SIM") == 2

    failed = [e for e in order_events(order) if e.action == "fix.received"]
    assert len(failed) == 1 and failed[0].details["outcome"] == "failed" and failed[0].details["seq"] == 1
    (unknown,) = events(action="fix.received", object_type="fix_session")
    assert unknown.object_id == "SIM" and unknown.details["seq"] == 2 and "11=NOBODY" in unknown.details["message"]


# ============================================================ reference data (admin)
def venue_form(**overrides) -> dict:
    data = {
        "code": "BRKR",
        "name": "Broker",
        "host": "fix.example.net",
        "port": "9001",
        "sender_comp_id": "OMS",
        "target_comp_id": "BRKR",
        "fix_version": "FIX.4.4",
        "heartbeat_interval": "30",
        "enabled": "on",
        "asset_classes": "[]",
        "symbols": "[]",
        "currencies": '["USD"]',
        "priority": "100",
        "session_time_zone": "UTC",
        "trading_days": "Mon,Tue,Wed,Thu,Fri",
    }
    data.update(overrides)
    return data


def test_venue_added_and_changed_in_the_admin_is_audited(admin_client):
    response = admin_client.post("/admin/routing/venue/add/", venue_form())
    assert response.status_code == 302, response.content
    venue = Venue.objects.get(code="BRKR")
    response = admin_client.post(f"/admin/routing/venue/{venue.pk}/change/", venue_form(port="9002", enabled=""))
    assert response.status_code == 302, response.content

    created, changed = events(object_type="venue", object_id="BRKR")
    assert (created.action, created.actor, created.before) == ("venue.created", "root", None)
    assert created.after["port"] == 9001 and created.after["currencies"] == ["USD"]
    assert (changed.action, changed.actor) == ("venue.changed", "root")
    assert (changed.before["port"], changed.after["port"]) == (9001, 9002)
    assert (changed.before["enabled"], changed.after["enabled"]) == (True, False)
    assert changed.details["changed_fields"] == ["enabled", "port"]


def test_venue_deleted_in_the_admin_is_audited(admin_client):
    venue = Venue.objects.create(code="GONE", host="h", port=1)
    response = admin_client.post(
        "/admin/routing/venue/", {"action": "delete_selected", "_selected_action": [venue.pk], "post": "yes"}
    )
    assert response.status_code == 302
    assert not Venue.objects.filter(code="GONE").exists()
    (deleted,) = events(object_type="venue", object_id="GONE")
    assert (deleted.action, deleted.before["host"], deleted.after) == ("venue.deleted", "h", None)


def test_account_added_and_traders_changed_in_the_admin_are_audited(admin_client, trader, other_trader):
    response = admin_client.post(
        "/admin/orders/account/add/", {"code": "ACC-9", "name": "Nine", "active": "on", "traders": [trader.pk]}
    )
    assert response.status_code == 302, response.content
    account = Account.objects.get(code="ACC-9")
    response = admin_client.post(
        f"/admin/orders/account/{account.pk}/change/",
        {"code": "ACC-9", "name": "Nine", "active": "on", "traders": [trader.pk, other_trader.pk]},
    )
    assert response.status_code == 302, response.content

    created, changed = events(object_type="account", object_id="ACC-9")
    assert created.action == "account.created" and created.after["traders"] == ["trader1"]
    assert changed.action == "account.changed" and changed.actor == "root"
    assert (changed.before["traders"], changed.after["traders"]) == (["trader1"], ["trader1", "trader2"])
    assert changed.details["changed_fields"] == ["traders"]


def test_security_changed_in_the_admin_is_audited(admin_client):
    security = SecurityFactory(symbol="IBM", reference_price=Decimal("150.00"), reference_price_at=None)
    data = {
        "symbol": "IBM",
        "name": security.name,
        "issuer": security.issuer,
        "asset_class": security.asset_class,
        "currency": "USD",
        "reference_price": "151.25",
        "lot_size": "100",
        "active": "on",
    }
    response = admin_client.post(f"/admin/orders/security/{security.pk}/change/", data)
    assert response.status_code == 302, response.content
    response = admin_client.post("/admin/orders/security/add/", {**data, "symbol": "NEW", "lot_size": "1"})
    assert response.status_code == 302, response.content

    (changed,) = events(object_type="security", object_id="IBM")
    assert changed.action == "security.changed" and changed.actor == "root"
    assert (changed.before["reference_price"], changed.after["reference_price"]) == ("150.00000000", "151.25000000")
    assert (changed.before["lot_size"], changed.after["lot_size"]) == (1, 100)
    assert Security.objects.get(symbol="IBM").lot_size == 100
    (created,) = events(object_type="security", object_id="NEW")
    assert created.action == "security.created" and created.before is None


def user_form(user, **overrides) -> dict:
    data = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S.%f"),
        "last_login_0": "",
        "last_login_1": "",
        "groups": [],
        "user_permissions": [],
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_user_staff_groups_and_permissions_changed_in_the_admin_are_audited(admin_client):
    user = UserFactory(username="newcomer", password=PASSWORD)
    traders = Group.objects.get_or_create(name="trader")[0]
    view_order = Permission.objects.get(codename="view_order", content_type__app_label="orders")
    hash_before = user.password

    response = admin_client.post(
        f"/admin/auth/user/{user.pk}/change/",
        user_form(user, is_staff="on", groups=[traders.pk], user_permissions=[view_order.pk]),
    )
    assert response.status_code == 302, response.content

    (changed,) = events(object_type="user", object_id="newcomer")
    assert (changed.action, changed.actor) == ("user.changed", "root")
    assert (changed.before["is_staff"], changed.after["is_staff"]) == (False, True)
    assert (changed.before["groups"], changed.after["groups"]) == ([], ["trader"])
    assert (changed.before["user_permissions"], changed.after["user_permissions"]) == ([], ["orders.view_order"])
    assert changed.details["changed_fields"] == ["groups", "is_staff", "user_permissions"]
    assert changed.details["password_changed"] is False
    assert_no_password(changed, hash_before)


def assert_no_password(event: AuditEvent, *secrets: str) -> None:
    text = json.dumps([event.before, event.after, event.details])
    assert "password" not in (event.before or {}) and "password" not in (event.after or {})
    for secret in (PASSWORD, *secrets):
        assert secret not in text


def test_user_added_and_password_changed_in_the_admin_are_audited_without_the_password(admin_client):
    response = admin_client.post(
        "/admin/auth/user/add/",
        {"username": "fresh", "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    user = get_user_model().objects.get(username="fresh")
    hash_at_creation = user.password
    response = admin_client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": PASSWORD + "2", "password2": PASSWORD + "2", "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert user.check_password(PASSWORD + "2")

    created, password = events(object_type="user", object_id="fresh")
    assert (created.action, created.before, created.details["password_changed"]) == ("user.created", None, True)
    assert created.after["username"] == "fresh" and created.after["is_staff"] is False
    assert (password.action, password.actor) == ("user.password_changed", "root")
    assert password.details == {"via": "admin", "password_changed": True, "usable": True}
    for event in (created, password):
        assert_no_password(event, hash_at_creation, user.password, PASSWORD + "2")


def test_group_permissions_changed_in_the_admin_are_audited(admin_client):
    group = Group.objects.create(name="desk")
    add_order = Permission.objects.get(codename="add_order", content_type__app_label="orders")
    view_order = Permission.objects.get(codename="view_order", content_type__app_label="orders")
    group.permissions.add(view_order)

    response = admin_client.post(
        f"/admin/auth/group/{group.pk}/change/", {"name": "desk", "permissions": [view_order.pk, add_order.pk]}
    )
    assert response.status_code == 302, response.content
    response = admin_client.post("/admin/auth/group/add/", {"name": "ops", "permissions": [view_order.pk]})
    assert response.status_code == 302, response.content

    (changed,) = events(object_type="group", object_id="desk")
    assert (changed.action, changed.actor) == ("group.changed", "root")
    assert changed.before["permissions"] == ["orders.view_order"]
    assert changed.after["permissions"] == ["orders.add_order", "orders.view_order"]
    (created,) = events(object_type="group", object_id="ops")
    assert created.action == "group.created" and created.after["permissions"] == ["orders.view_order"]


def test_an_admin_change_that_fails_validation_leaves_no_event(admin_client):
    venue = Venue.objects.create(code="KEEP", host="h", port=1)
    response = admin_client.post(f"/admin/routing/venue/{venue.pk}/change/", venue_form(code="KEEP", port="70000"))
    assert response.status_code == 200  # the form again, with the error
    assert not events(object_type="venue", object_id="KEEP")


# ============================================================== sign-ins, sign-outs
def test_login_failed_login_and_logout_are_audited(client):
    user = UserFactory(username="alice", is_staff=True, password=PASSWORD)

    failed = client.post(
        "/admin/login/", {"username": "alice", "password": "wrong-" + PASSWORD}, REMOTE_ADDR="10.1.2.3"
    )
    assert failed.status_code == 200  # the login form again
    ok = client.post("/admin/login/?next=/admin/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.1.2.4")
    assert ok.status_code == 302
    out = client.post("/admin/logout/", REMOTE_ADDR="10.1.2.4")
    assert out.status_code == 200

    trail = events(object_type="user", object_id="alice")
    assert [(e.action, e.actor, e.details["ip"]) for e in trail] == [
        ("auth.login_failed", "alice", "10.1.2.3"),
        ("auth.login", "alice", "10.1.2.4"),
        ("auth.logout", "alice", "10.1.2.4"),
    ]
    for event in trail:
        text = json.dumps([event.before, event.after, event.details])
        assert PASSWORD not in text and user.password not in text and "********" not in text


def test_failed_login_of_an_unknown_user_names_what_was_tried(client):
    client.post("/admin/login/", {"username": "mallory", "password": "guess"})
    (event,) = events(action="auth.login_failed")
    assert (event.actor, event.object_type, event.object_id) == ("mallory", "user", "mallory")
    assert "guess" not in json.dumps(event.details)


# ====================================================== order services, refusals
def test_every_order_service_leaves_its_event(trader, submit):
    order = submit(quantity=1000)
    assert [e.action for e in order_events(order) if e.action.startswith("order.")] == ["order.created", "order.routed"]

    apply(order, ExecType="0", OrdStatus="0", OrderQty=1000, CumQty=0, LeavesQty=1000)
    order_amend(user=trader, order_id=order.pk, quantity=1200)
    replace = OutboundMessage.objects.get(order_id=order.pk, msg_type="G")
    apply(order, ExecType="5", OrdStatus="0", ClOrdID=replace.cl_ord_id, OrderQty=1200, CumQty=0, LeavesQty=1200)
    order_cancel(user=trader, order_id=order.pk)

    actions = [e.action for e in order_events(order)]
    for expected in ("order.acknowledged", "order.amend_requested", "order.replaced", "order.cancel_requested"):
        assert expected in actions, actions
    amend = next(e for e in order_events(order) if e.action == "order.amend_requested")
    assert (amend.before["status"], amend.after["status"]) == ("open", "pending_amend")
    assert amend.details["requested"]["quantity"] == 1200
    replaced = next(e for e in order_events(order) if e.action == "order.replaced")
    assert (replaced.before["quantity"], replaced.after["quantity"]) == (1000, 1200)


def test_a_refused_cancel_still_leaves_its_event(api, submit):
    order = submit(quantity=100)
    apply(order, ExecType="0", OrdStatus="0", OrderQty=100, CumQty=0, LeavesQty=100)
    apply(order, ExecType="F", OrdStatus="2", OrderQty=100, CumQty=100, LeavesQty=0, LastQty=100, LastPx="175.50")
    assert order.status == "filled"

    response = api.post(f"{ORDERS}{order.pk}/cancel/")

    assert response.status_code == 409
    refusal = order_events(order)[-1]
    assert (refusal.action, refusal.actor) == ("order.cancel_refused", "trader1")
    assert refusal.details["code"] == "invalid_state"
    order.refresh_from_db()
    assert order.status == "filled"


# ======================================================================== replay
def rebuild(order: Order) -> list[dict]:
    """The order's versions from its audit events: each event's ``after``, in order
    (events without one, like compliance verdicts and raw messages, add no version)."""
    return [e.after for e in order_events(order) if e.after is not None]


def statuses(versions: list[dict]) -> list[str]:
    seen: list[str] = []
    for version in versions:
        if not seen or seen[-1] != version["status"]:
            seen.append(version["status"])
    return seen


PRICE_FIELDS = ("limit_price", "stop_price", "avg_fill_price")


def priced(version: dict) -> dict:
    return {k: Decimal(v) if k in PRICE_FIELDS and v is not None else v for k, v in version.items()}


def is_subsequence(part: list, whole: list) -> bool:
    it = iter(whole)
    return all(any(item == candidate for candidate in it) for item in part)


def test_every_version_of_an_order_is_rebuilt_from_its_events(trader, submit):
    order = submit(quantity=1000)
    order.refresh_from_db()
    seen = [normalised(order_snapshot(order))]

    def step(**tags) -> None:
        apply(order, **tags)
        seen.append(normalised(order_snapshot(order)))

    step(ExecType="0", OrdStatus="0", OrderQty=1000, CumQty=0, LeavesQty=1000)
    step(ExecType="F", OrdStatus="1", OrderQty=1000, CumQty=400, LeavesQty=600, LastQty=400, LastPx="175.40")
    order_amend(user=trader, order_id=order.pk, quantity=1500)
    order.refresh_from_db()
    seen.append(normalised(order_snapshot(order)))
    replace = OutboundMessage.objects.get(order_id=order.pk, msg_type="G")
    step(ExecType="5", OrdStatus="1", ClOrdID=replace.cl_ord_id, OrderQty=1500, CumQty=400, LeavesQty=1100)
    step(
        ExecType="F",
        OrdStatus="2",
        ClOrdID=replace.cl_ord_id,
        OrderQty=1500,
        CumQty=1500,
        LeavesQty=0,
        LastQty=1100,
        LastPx="175.50",
    )
    assert (order.status, order.quantity, order.filled_quantity) == ("filled", 1500, 1500)
    assert not order.needs_review

    versions = rebuild(order)

    assert versions[-1] == normalised(order_snapshot(order))
    # Prices compared as numbers: order_submit's first snapshots render the limit
    # price as entered ("175.50"), later ones as stored ("175.50000000").
    assert is_subsequence([priced(v) for v in seen], [priced(v) for v in versions]), (seen, versions)
    assert is_subsequence(
        ["pending_new", "open", "partially_filled", "pending_amend", "partially_filled", "filled"], statuses(versions)
    ), statuses(versions)
    # Every version follows from the one before: each event's ``before`` is the
    # previous event's ``after`` (nothing changed the order off the record).
    with_before = [e for e in order_events(order) if e.after is not None and e.before is not None]
    for event in with_before:
        index = versions.index(event.after)
        assert priced(versions[index - 1]) == priced(event.before), event.action


def test_the_rebuilt_history_is_served_with_the_order(api, submit):
    order = submit(quantity=100)
    apply(order, ExecType="0", OrdStatus="0", OrderQty=100, CumQty=0, LeavesQty=100)
    response = api.get(f"{ORDERS}{order.pk}/audit/")
    assert response.status_code == 200
    body = response.json()
    rows = body["results"] if isinstance(body, dict) and "results" in body else body
    assert [row["action"] for row in rows][-1] == "order.acknowledged"
