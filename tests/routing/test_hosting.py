"""FIX session hosting: lease, outbox → socket, socket → inbox → orders, crash
recovery, takeover, fatal stop, reconciliation, routing rule, configure_venue.

End-to-end tests run real TCP on localhost against a scripted acceptor
(tests/routing/fix_acceptor.py) with Celery tasks eager, and commit for real
(``transaction=True``) because the host runs in its own threads."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from audit.models import AuditEvent
from orders import services as order_services
from orders.models import Execution, Order, OrderFlag
from routing import hosting, selectors, services
from routing.hosting import VenueRunner
from routing.models import FixMessageLog, InboundMessage, OutboundMessage, Venue, VenueSession
from routing.services import LeaseLost
from routing.store import DbStore

from .conftest import venue_at, wait_for
from .fix_acceptor import ScriptedVenue

pytestmark = pytest.mark.postgres
live = pytest.mark.django_db(transaction=True)

ORDERS = "/api/v1/orders/"
_ids = itertools.count(1)


def session_row(venue: Venue) -> VenueSession | None:
    return VenueSession.objects.filter(venue=venue).first()


def connected(venue: Venue) -> bool:
    row = session_row(venue)
    return row is not None and row.status == VenueSession.Status.CONNECTED


# ----------------------------------------------------------------------- fixtures
@pytest.fixture
def acceptor():
    venue = ScriptedVenue().start()
    yield venue
    venue.stop()


@pytest.fixture
def sim(acceptor) -> Venue:
    return venue_at(acceptor.port, "Scripted venue")


def post_order(client: APIClient, account, security, quantity=100, price="175.50") -> Order:
    response = client.post(
        ORDERS,
        {
            "client_order_id": f"H-{next(_ids)}",
            "account": account.code,
            "symbol": security.symbol,
            "side": "BUY",
            "quantity": quantity,
            "order_type": "LIMIT",
            "limit_price": price,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending_new", response.json()
    return Order.objects.get(pk=response.json()["id"])


def order_status(order: Order) -> str:
    order.refresh_from_db()
    return order.status


# -------------------------------------------------------------------- end to end
@live
def test_order_from_the_api_reaches_the_venue_and_its_fill_comes_back(eager, acceptor, sim, hosts, api, account, aapl):
    host = hosts()
    wait_for(lambda: connected(sim), what="logon")

    order = post_order(api, account, aapl, quantity=300)
    wait_for(lambda: order_status(order) == "filled", what="the fill applied")

    assert order.filled_quantity == 300
    assert order.leaves_quantity == 0
    assert order.avg_fill_price == Decimal("175.50")
    sent = acceptor.app_messages("D")
    assert len(sent) == 1
    assert sent[0][2][11] == order.cl_ord_id and 43 not in sent[0][2]
    outbox = OutboundMessage.objects.get(order_id=order.pk, msg_type="D")
    assert outbox.state == "sent" and outbox.msg_seq_num == sent[0][0]
    stored = FixMessageLog.objects.get(venue=sim, direction="out", msg_type="D")
    assert stored.msg_seq_num == outbox.msg_seq_num and f"11={order.cl_ord_id}" in stored.raw
    inbox = list(InboundMessage.objects.filter(venue=sim).order_by("msg_seq_num"))
    assert [(m.msg_type, m.outcome) for m in inbox] == [("8", "applied"), ("8", "applied")], [m.fields for m in inbox]
    assert all(m.applied_at is not None for m in inbox)
    assert sorted(Execution.objects.filter(order=order).values_list("exec_type", flat=True)) == ["0", "F"]
    assert FixMessageLog.objects.filter(venue=sim, direction="in", msg_type="8").count() == 2

    row = session_row(sim)
    assert row.holder == host.holder_id
    assert row.next_sender_seq == acceptor.store.target_seq
    assert row.next_target_seq == acceptor.store.sender_seq
    assert row.last_message_at is not None and row.last_logon_at is not None


@live
def test_partial_fills_from_the_venue_simulator_fill_the_order(eager, hosts, api, account, aapl):
    from routing.simulator import SimulatorServer

    simulator = SimulatorServer(fill_mode="partial", fill_interval=0.2, partial_fill_parts=4).start()
    try:
        sim = Venue.objects.create(
            code="SIM", host="127.0.0.1", port=simulator.port, sender_comp_id="OMS", target_comp_id="SIM"
        )
        hosts()
        wait_for(lambda: connected(sim), what="logon")
        order = post_order(api, account, aapl, quantity=400)
        wait_for(lambda: order_status(order) == "filled", what="four partial fills applied")
        assert order.filled_quantity == 400 and order.leaves_quantity == 0
        fills = Execution.objects.filter(order=order, exec_type="F", in_effect=True)
        assert fills.count() == 4 and sum(f.last_qty for f in fills) == 400
        assert [m[0] for m in simulator.received].count("D") == 1
        assert not OrderFlag.objects.filter(order=order).exists()
        assert not InboundMessage.objects.filter(venue=sim, applied_at__isnull=True).exists()
    finally:
        simulator.stop()


@live
def test_crash_after_the_outbox_commit_before_the_write_sends_the_order_once_as_a_resend(
    eager, acceptor, sim, hosts, api, account, aapl
):
    class CrashBeforeWrite(VenueRunner):
        def write_prepared(self, raw):
            self.host.stop(release=False)  # the process dies: no write, no Logout, lease kept
            raise SystemError("crash between commit and socket write")

    hosts(holder_id="crashing", runner_class=CrashBeforeWrite)
    wait_for(lambda: connected(sim), what="logon")
    order = post_order(api, account, aapl)
    wait_for(lambda: OutboundMessage.objects.get(order_id=order.pk).state == "sent", what="the outbox commit")
    wait_for(lambda: acceptor.session.transport is None, what="the crashed connection to drop")
    assert acceptor.app_messages("D") == []
    assert session_row(sim).holder == "crashing"

    crashed_at = time.monotonic()
    hosts(holder_id="survivor")
    wait_for(lambda: session_row(sim).holder == "survivor" and connected(sim), timeout=12, what="takeover")
    assert time.monotonic() - crashed_at < 10
    wait_for(lambda: order_status(order) == "filled", what="the fill applied")

    received = acceptor.app_messages("D")
    assert len(received) == 1, received  # exactly once, and as a PossDup resend
    assert received[0][2][43] == "Y" and received[0][2][11] == order.cl_ord_id
    assert received[0][0] == OutboundMessage.objects.get(order_id=order.pk, msg_type="D").msg_seq_num
    assert order.filled_quantity == 100


@live
def test_crash_between_inbox_store_and_apply_is_applied_once_by_the_sweep(
    eager, acceptor, sim, hosts, api, account, aapl, monkeypatch
):
    enqueued = []
    monkeypatch.setattr(hosting, "enqueue", lambda name, **kwargs: enqueued.append((name, kwargs)))
    first = hosts(holder_id="first")
    wait_for(lambda: connected(sim), what="logon")
    order = post_order(api, account, aapl)
    wait_for(lambda: InboundMessage.objects.filter(venue=sim).count() == 2, what="the reports stored")
    first.stop(release=True)
    assert order_status(order) == "pending_new"
    assert InboundMessage.objects.filter(venue=sim, applied_at__isnull=True).count() == 2

    monkeypatch.undo()
    hosts(holder_id="second")
    # The sweep at host start applies the two stored reports. The new logon's
    # reconciliation asks for the order's status only if it ran before the sweep (the
    # order still pending then); its answer (ExecType I) is applied as it arrives.
    wait_for(
        lambda: (
            order_status(order) == "filled"
            and not InboundMessage.objects.filter(venue=sim, applied_at__isnull=True).exists()
        ),
        what="the sweep to apply the inbox",
    )

    def settled() -> bool:
        status_requests = OutboundMessage.objects.filter(order_id=order.pk, msg_type="H").count()
        return (
            InboundMessage.objects.filter(venue=sim).count() == 2 + status_requests
            and not InboundMessage.objects.filter(venue=sim, applied_at__isnull=True).exists()
        )

    # Settled twice, a second apart: the reconciliation (run at logon) is done and
    # answered, if it asked at all.
    wait_for(lambda: settled() and (time.sleep(1.0) or settled()), what="the reconciliation's answer, if asked")
    assert order_services.inbox_apply(venue_code="SIM") == 0
    order.refresh_from_db()
    assert order.filled_quantity == 100
    assert Execution.objects.filter(order=order, exec_type="F").count() == 1


@live
def test_two_hosts_only_one_logs_on_and_the_other_takes_over_when_it_dies(eager, acceptor, sim, hosts):
    a = hosts(holder_id="host-a")
    b = hosts(holder_id="host-b")
    wait_for(lambda: connected(sim), what="logon")
    time.sleep(2.5)  # a renewal or two: nobody else logs on meanwhile
    assert acceptor.logons == 1 and acceptor.connections == 1
    row = session_row(sim)
    holder, other = (a, b) if row.holder == "host-a" else (b, a)
    assert holder.runner("SIM").holds_lease and not other.runner("SIM").holds_lease
    token = row.fencing_token

    holder.stop(release=False)  # dies: the lease is left to expire
    died_at = time.monotonic()
    wait_for(lambda: session_row(sim).holder == other.holder_id and connected(sim), timeout=12, what="takeover")
    assert time.monotonic() - died_at < 10
    assert acceptor.logons == 2
    assert session_row(sim).fencing_token > token


@live
def test_a_too_low_msg_seq_num_is_fatal_and_stops_reconnecting_until_an_operator_acts(eager, acceptor, sim, hosts):
    VenueSession.objects.create(venue=sim, next_target_seq=50)  # the venue will log on with 1
    hosts(holder_id="host-f")
    wait_for(lambda: session_row(sim).fatal, what="the fatal stop")
    row = session_row(sim)
    assert "MsgSeqNum too low" in row.last_error
    assert row.status == VenueSession.Status.DISCONNECTED
    assert AuditEvent.objects.filter(action="venue.session_fatal", object_id="SIM").count() == 1
    time.sleep(3.5)  # backoff would have retried by now
    assert acceptor.connections == 1
    assert selectors.venue_choose(asset_class="EQUITY", symbol="AAPL", currency="USD") is None

    services.session_action_request(
        venue=sim, action="set_sequence", actor="ops", reason="test", target_seq=acceptor.store.sender_seq
    )
    wait_for(lambda: session_row(sim).requested_action == "", what="set_sequence taken")
    assert session_row(sim).next_target_seq == acceptor.store.sender_seq
    services.session_action_request(venue=sim, action="reconnect", actor="ops", reason="test")
    wait_for(lambda: connected(sim), what="logon after the operator's reconnect")
    assert not session_row(sim).fatal
    assert acceptor.connections == 2


@live
def test_operator_disconnect_logs_out_and_stays_down(eager, acceptor, sim, hosts):
    hosts()
    wait_for(lambda: connected(sim), what="logon")
    services.session_action_request(venue=sim, action="disconnect", actor="ops", reason="test")
    wait_for(lambda: session_row(sim).status == "disconnected", what="logout")
    time.sleep(2.5)
    assert acceptor.connections == 1 and session_row(sim).stopped
    services.session_action_request(venue=sim, action="reconnect", actor="ops", reason="test")
    wait_for(lambda: connected(sim), what="logon again")
    assert acceptor.connections == 2


@live
def test_logon_reconciles_working_orders_with_status_requests(eager, acceptor, sim, hosts, api, account, aapl):
    acceptor.fill = False
    order = post_order(api, account, aapl, quantity=500)  # no session row yet: routable, waits in the outbox
    hosts()
    wait_for(lambda: order_status(order) == "open", what="the ack")
    # The first logon's reconciliation may already have asked (if the order had left
    # the outbox by then): count from here.
    time.sleep(0.5)
    asked_before = len(acceptor.app_messages("H"))
    reports_before = Execution.objects.filter(order=order, exec_type="I").count()
    acceptor.drop()  # the connection drops; the host reconnects and reconciles
    wait_for(lambda: len(acceptor.app_messages("H")) == asked_before + 1, timeout=8, what="the status request")
    wait_for(
        lambda: Execution.objects.filter(order=order, exec_type="I").count() == reports_before + 1,
        what="the status report applied",
    )
    request = acceptor.app_messages("H")[-1][2]
    assert request[11] == order.cl_ord_id and request[37] == f"V-{order.cl_ord_id}"
    assert order_status(order) == "open"
    assert AuditEvent.objects.filter(action="venue.reconcile_requested", object_id="SIM").exists()


# --------------------------------------------------------------------- lease/fence
@pytest.mark.django_db
def test_the_lease_fences_a_former_holder(venue, submit):
    order = submit()  # before any session row exists: routable
    token_a = services.session_lease_acquire(venue_id=venue.pk, holder="a", ttl=6)
    assert token_a and services.session_lease_acquire(venue_id=venue.pk, holder="b", ttl=6) is None
    VenueSession.objects.filter(venue=venue).update(lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    token_b = services.session_lease_acquire(venue_id=venue.pk, holder="b", ttl=6)
    assert token_b == token_a + 1

    with pytest.raises(LeaseLost):
        services.session_lease_renew(venue_id=venue.pk, holder="a", token=token_a, ttl=6)
    stale = DbStore(venue_id=venue.pk, holder="a", token=token_a)
    with pytest.raises(LeaseLost):
        stale.save_outbound(1, "0", b"8=FIX.4.4\x01")
    message = OutboundMessage.objects.get(order_id=order.pk)
    with pytest.raises(LeaseLost):
        services.outbox_message_stamp(
            venue_id=venue.pk, holder="a", token=token_a, message_id=message.pk, prepare=lambda *a: (1, b"x")
        )
    message.refresh_from_db()
    assert message.state == "pending" and not FixMessageLog.objects.exists()

    raw = services.outbox_message_stamp(
        venue_id=venue.pk, holder="b", token=token_b, message_id=message.pk, prepare=lambda t, body: (7, b"raw")
    )
    message.refresh_from_db()
    assert raw == b"raw" and message.state == "sent" and message.msg_seq_num == 7


@pytest.mark.django_db
def test_db_store_keeps_numbers_and_separates_sequence_generations(venue):
    token = services.session_lease_acquire(venue_id=venue.pk, holder="h", ttl=6)
    store = DbStore(venue_id=venue.pk, holder="h", token=token)
    store.save_outbound(1, "A", b"logon")
    store.set_next_sender_seq(2)
    store.accept_inbound(1, "8", [(35, "8"), (34, "1")], b"er1")
    assert store.outbound_range(1, 5) == [(1, "A", b"logon")]
    store.reset()
    store.save_outbound(1, "A", b"logon again")
    store.accept_inbound(1, "8", [(35, "8"), (34, "1"), (43, "Y")], b"er1 again")
    assert store.outbound_range(1, 5) == [(1, "A", b"logon again")]
    assert list(InboundMessage.objects.values_list("epoch", "msg_seq_num", "poss_dup")) == [
        (1, 1, False),
        (2, 1, True),
    ]
    fresh = DbStore(venue_id=venue.pk, holder="h", token=token)
    assert (fresh.next_sender_seq(), fresh.next_target_seq()) == (2, 2)


# --------------------------------------------------------------------- the inbox
def _inbox(venue, seq, fields, msg_type="8"):
    return InboundMessage.objects.create(
        venue=venue, epoch=1, msg_seq_num=seq, msg_type=msg_type, fields=[[35, msg_type], [34, seq], *fields], raw=""
    )


@pytest.mark.django_db
def test_inbox_applies_in_sequence_and_keeps_what_fails(venue, submit):
    order = submit(quantity=100)
    base = [[37, "V1"], [11, order.cl_ord_id], [55, "AAPL"], [54, "1"], [38, "100"], [6, "0"]]
    # Stored out of id order: the fill (seq 3) before the ack (seq 1).
    _inbox(venue, 3, [*base, [17, "X3"], [150, "F"], [39, "2"], [151, "0"], [14, "100"], [32, "100"], [31, "10"]])
    bad = _inbox(venue, 2, [[11, order.cl_ord_id], [17, "X2"], [39, "0"]])  # no ExecType
    _inbox(venue, 1, [*base, [17, "X1"], [150, "0"], [39, "0"], [151, "100"], [14, "0"]])

    assert order_services.inbox_apply(venue_code="SIM") == 3
    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity == 100
    assert list(Execution.objects.filter(order=order).order_by("id").values_list("exec_id", flat=True)) == ["X1", "X3"]
    bad.refresh_from_db()
    assert bad.applied_at is None and "ExecType" in bad.error
    assert OrderFlag.objects.filter(order=order, details__inbound_message_id=bad.pk).exists()
    assert order_services.inbox_apply(venue_code="SIM") == 0  # the failed one waits for an operator

    services.inbox_retry(message_id=bad.pk, actor="ops")
    assert order_services.inbox_apply(venue_code="SIM") == 1
    bad.refresh_from_db()
    assert bad.error  # still failing, still kept


@pytest.mark.django_db
def test_business_and_session_rejects_are_audited_against_the_order(venue, submit):
    order = submit()
    OutboundMessage.objects.filter(order_id=order.pk).update(state="sent", msg_seq_num=5)
    _inbox(venue, 1, [[45, "5"], [372, "D"], [380, "3"], [58, "not here"]], msg_type="j")
    order_services.inbox_apply(venue_code="SIM")
    event = AuditEvent.objects.get(action="venue.business_reject")
    assert event.object_id == str(order.pk) and event.details["text"] == "not here"
    order.refresh_from_db()
    assert order.needs_review and order.status == "pending_new"

    services.session_reject_record(venue_id=venue.pk, msg_type="3", fields=[(45, "5"), (373, "1"), (371, "44")])
    event = AuditEvent.objects.get(action="venue.session_reject")
    assert event.details["order_id"] == order.pk and event.details["ref_tag"] == "44"


@pytest.mark.django_db
def test_a_business_reject_between_reports_of_its_order_keeps_the_review_flag(venue, submit):
    """In one batch: the ack, a BusinessMessageReject naming the order, then a fill. The
    fill's write must not undo the review flag the reject set."""
    order = submit(quantity=100)
    OutboundMessage.objects.filter(order_id=order.pk).update(state="sent", msg_seq_num=5)
    base = [[37, "V1"], [11, order.cl_ord_id], [55, "AAPL"], [54, "1"], [38, "100"]]
    _inbox(venue, 1, [*base, [17, "A1"], [150, "0"], [39, "0"]])
    _inbox(venue, 2, [[45, "5"], [372, "D"], [380, "3"], [58, "not here"]], msg_type="j")
    _inbox(venue, 3, [*base, [17, "F1"], [150, "F"], [39, "1"], [32, "40"], [31, "10"]])

    assert order_services.inbox_apply(venue_code="SIM") == 3

    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.needs_review) == ("partially_filled", 40, True)
    flagged = AuditEvent.objects.filter(action="order.flagged", object_id=str(order.pk))
    assert [e.details["kind"] for e in flagged] == ["unexpected_message"]


@pytest.mark.django_db
def test_venue_reconcile_asks_about_working_orders_only(venue, submit):
    queued = submit()  # its NewOrderSingle is still in the outbox
    working = submit()
    OutboundMessage.objects.filter(order_id=working.pk).update(state="sent", msg_seq_num=3)
    assert order_services.venue_reconcile(venue_code="SIM") == [working.pk]
    request = OutboundMessage.objects.get(msg_type="H")
    assert request.order_id == working.pk and [11, working.cl_ord_id] in request.fields
    # The status request never stands in for the NewOrderSingle when cancelling.
    assert queued.pk not in OutboundMessage.objects.filter(msg_type="H").values_list("order_id", flat=True)


# ------------------------------------------------------------------ routing rule
@pytest.mark.django_db
def test_router_waits_for_a_session_coming_back_and_skips_one_an_operator_must_restart(venue):
    choose = lambda: selectors.venue_choose(asset_class="EQUITY", symbol="AAPL", currency="USD")  # noqa: E731
    now = dt.datetime.now(dt.UTC)
    assert choose() == venue  # never hosted: routable, orders wait in the outbox
    token = services.session_lease_acquire(venue_id=venue.pk, holder="h", ttl=6)
    assert not selectors.venue_is_up(Venue.objects.select_related("session").get(), now)
    assert choose() == venue  # hosted but not logged on yet: orders wait for the logon
    services.session_status_set(venue_id=venue.pk, holder="h", token=token, status="connected", logon=True)
    assert selectors.venue_is_up(Venue.objects.select_related("session").get(), now)
    VenueSession.objects.update(lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert not selectors.venue_is_up(Venue.objects.select_related("session").get(), now)
    assert choose() == venue  # its holder died: orders wait for the next holder
    VenueSession.objects.update(fatal=True)
    assert choose() is None  # down until an operator acts: refused at once
    VenueSession.objects.update(fatal=False, stopped=True)
    assert choose() is None
    Venue.objects.update(enabled=False)
    VenueSession.objects.all().delete()
    assert choose() is None


# -------------------------------------------------------------- configure_venue
@pytest.mark.django_db
def test_configure_venue_creates_and_updates_with_audit():
    call_command(
        "configure_venue",
        "BRKR",
        "--host=fix.example.net",
        "--port=9001",
        "--sender-comp-id=OMS1",
        "--target-comp-id=BRKR",
        "--heartbeat=20",
        "--reset-on-logon",
    )
    venue = Venue.objects.get(code="BRKR")
    assert (venue.host, venue.port, venue.heartbeat_interval, venue.reset_on_logon, venue.enabled) == (
        "fix.example.net",
        9001,
        20,
        True,
        True,
    )
    call_command("configure_venue", "BRKR", "--port=9002", "--fix-version=FIX.4.2", "--disabled")
    venue.refresh_from_db()
    assert (venue.port, venue.fix_version, venue.enabled, venue.host) == (9002, "FIX.4.2", False, "fix.example.net")
    created, updated = AuditEvent.objects.filter(object_type="venue", object_id="BRKR").order_by("id")
    assert created.action == "venue.created" and created.before is None
    assert updated.before["port"] == 9001 and updated.after["port"] == 9002 and updated.after["enabled"] is False


@pytest.mark.django_db
def test_configure_venue_audits_as_the_admin_does():
    call_command("configure_venue", "BRKR", "--host=h", "--port=1", "--sender-comp-id=A", "--target-comp-id=B")
    call_command("configure_venue", "BRKR", "--port=2")
    call_command("configure_venue", "BRKR", "--port=2")  # nothing changes: nothing written

    created, changed = AuditEvent.objects.filter(object_type="venue", object_id="BRKR").order_by("id")
    assert (created.action, created.details, created.after["name"]) == ("venue.created", {"via": "command"}, "BRKR")
    assert set(created.after) == {f.name for f in Venue._meta.concrete_fields}
    assert changed.action == "venue.changed"
    assert changed.details == {"via": "command", "changed_fields": ["port"]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["NEW", "--host=h", "--port=1"], "required for a new venue"),
        (["NEW", "--host=h", "--port=70000", "--sender-comp-id=A", "--target-comp-id=B"], "--port"),
        (["NEW", "--host=h", "--port=1", "--sender-comp-id=A", "--target-comp-id=B", "--heartbeat=0"], "--heartbeat"),
        (["NEW", "--host= ", "--port=1", "--sender-comp-id=A", "--target-comp-id=B"], "--host"),
    ],
)
def test_configure_venue_refuses_bad_values(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("configure_venue", *args)
    assert not Venue.objects.exists() and not AuditEvent.objects.exists()


@live
def test_reconnects_back_off_exponentially(hosts):
    venue = Venue.objects.create(code="DOWN", host="127.0.0.1", port=9, sender_comp_id="OMS", target_comp_id="DOWN")
    attempts: list[float] = []

    class Refused(VenueRunner):
        def open_connection(self, host, port):
            attempts.append(time.monotonic())
            raise ConnectionRefusedError("refused")

    hosts(runner_class=Refused)
    wait_for(lambda: len(attempts) >= 4, timeout=12, what="four attempts")
    gaps = [round(b - a) for a, b in itertools.pairwise(attempts[:4])]
    assert gaps == [1, 2, 4]
    row = session_row(venue)
    assert "refused" in row.last_error and row.status == "disconnected"


@pytest.mark.django_db
def test_admin_actions_file_requests_for_the_holder(client, venue, django_user_model):
    admin_user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(admin_user)
    services.venue_session_ensure(venue_id=venue.pk)
    row = session_row(venue)
    url = "/admin/routing/venuesession/"
    operate = {"_selected_action": [row.pk], "confirm": "yes", "reason": "test"}
    response = client.post(url, {**operate, "action": "request_disconnect"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.requested_action, row.stopped, row.requested_by) == ("disconnect", True, "ops")

    client.post(url, {**operate, "action": "request_reconnect"})
    row.refresh_from_db()
    assert (row.requested_action, row.stopped, row.fatal) == ("reconnect", False, False)

    sequence = {"mode": "set", "next_sender_seq": "10", "next_target_seq": "20"}
    response = client.post(url, {**operate, **sequence, "action": "request_sequence_reset"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.requested_action, row.requested_sender_seq, row.requested_target_seq) == ("set_sequence", 10, 20)
    assert (row.next_sender_seq, row.next_target_seq) == (1, 1)  # only the holder changes them
    assert list(AuditEvent.objects.filter(object_type="venue", object_id="SIM").values_list("action", flat=True)) == [
        "venue.session_disconnect_requested",
        "venue.session_reconnect_requested",
        "venue.session_set_sequence_requested",
    ]
    assert client.get(url).status_code == 200
    assert client.get(f"{url}{row.pk}/change/").status_code == 200
    assert client.get("/admin/routing/inboundmessage/").status_code == 200
    assert client.get("/admin/routing/fixmessagelog/").status_code == 200
    venues = client.get("/admin/routing/venue/")
    assert venues.status_code == 200 and b"disconnected" in venues.content
