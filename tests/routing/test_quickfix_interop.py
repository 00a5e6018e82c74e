"""Interop with an independent FIX engine: QuickFIX (C++, via quickfix-py) as the
FIX 4.4 acceptor with its data dictionary validation on, the OMS hosted in-process by
``routing.hosting`` exactly as a Celery worker hosts it (tasks eager).

Everything the OMS sends must pass QuickFIX's validation (no Reject, no
BusinessMessageReject, no Logout with a reason), and everything QuickFIX sends must be
understood by the OMS (applied, shown over the REST API)."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from orders import services as order_services
from orders.models import Order, OrderFlag
from routing.hosting import SessionHost, VenueRunner
from routing.models import InboundMessage, OutboundMessage, Venue, VenueSession

from . import quickfix_acceptor
from .conftest import venue_at
from .conftest import wait_for as _wait_for
from .quickfix_acceptor import QuickFixVenue

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ORDERS = "/api/v1/orders/"
_ids = itertools.count(1)


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    return _wait_for(predicate, timeout=timeout, what=what)


# ----------------------------------------------------------------------- fixtures
@pytest.fixture
def quickfix(tmp_path):
    try:
        quickfix_acceptor.require_quickfix()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)  # CI installs requirements: never a skip
    venue = QuickFixVenue(tmp_path / "quickfix").start()
    yield venue
    venue.stop()


@pytest.fixture
def sim(quickfix) -> Venue:
    return venue_at(quickfix.port, "QuickFIX acceptor")


@pytest.fixture
def host(eager, sim, hosts) -> SessionHost:
    return hosts()


# ------------------------------------------------------------------------ helpers
def session_row(venue: Venue) -> VenueSession | None:
    return VenueSession.objects.filter(venue=venue).first()


def get_order(client: APIClient, order_id: int) -> dict:
    response = client.get(f"{ORDERS}{order_id}/")
    assert response.status_code == 200, response.content
    return response.json()


def wait_status(client: APIClient, order_id: int, status: str, what: str, **expected) -> dict:
    def check():
        data = get_order(client, order_id)
        return data if data["status"] == status and all(data[k] == v for k, v in expected.items()) else None

    try:
        return wait_for(check, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: order is {get_order(client, order_id)}") from None


def post_order(client: APIClient, account, security, quantity: int, price: str = "175.50") -> dict:
    response = client.post(
        ORDERS,
        {
            "client_order_id": f"QF-{next(_ids)}",
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
    return response.json()


def cl_ord_id_of(order_id: int) -> str:
    return Order.objects.get(pk=order_id).cl_ord_id


def submit(quickfix: QuickFixVenue, client, account, security, mode: str, quantity: int) -> tuple[dict, dict]:
    """Post an order with QuickFIX answering it per ``mode``; returns the order and the
    NewOrderSingle as QuickFIX received it."""
    quickfix.on_new = mode
    seen = len(quickfix.app_messages("D"))
    order = post_order(client, account, security, quantity)
    wait_for(lambda: len(quickfix.app_messages("D")) > seen, what="QuickFIX to take the NewOrderSingle")
    received = quickfix.app_messages("D")[-1]
    assert received[11] == cl_ord_id_of(order["id"])
    return order, received


# ----------------------------------------------------------------------- the test
def test_quickfix_acceptor_validates_our_messages_and_we_understand_its(quickfix, sim, host, api, account, aapl):
    wait_for(
        lambda: quickfix.is_logged_on() and session_row(sim) and session_row(sim).status == "connected",
        what="logon with QuickFIX",
    )
    assert quickfix.logons == 1

    # New, partial fill, full fill: 100 @ 175.40 + 200 @ 175.46 = 300 @ 175.44.
    filled, nos = submit(quickfix, api, account, aapl, "fill", 300)
    assert (nos[55], nos[54], nos[38], nos[40], nos[44], nos[1]) == ("AAPL", "1", "300", "2", "175.5", "ACC-1")
    data = wait_status(api, filled["id"], "filled", "the fills applied")
    assert (data["filled_quantity"], data["leaves_quantity"]) == (300, 0)
    assert Decimal(data["avg_fill_price"]) == Decimal("175.44")
    fills = [(e["exec_type"], e["last_qty"], Decimal(e["last_px"])) for e in data["executions"]]
    assert sorted(fills) == [("F", 100, Decimal("175.40")), ("F", 200, Decimal("175.46"))]

    # A trade bust (150=H, ExecRefID) of the first fill.
    busted_exec = next(e["exec_id"] for e in data["executions"] if e["last_qty"] == 100)
    quickfix.bust(nos[11], busted_exec)
    data = wait_status(api, filled["id"], "partially_filled", "the bust applied", filled_quantity=200)
    assert Decimal(data["avg_fill_price"]) == Decimal("175.46") and data["leaves_quantity"] == 100
    bust = next(e for e in data["executions"] if e["exec_type"] == "H")
    assert bust["exec_ref_id"] == busted_exec
    assert not next(e for e in data["executions"] if e["exec_id"] == busted_exec)["in_effect"]

    # Cancel: a valid 35=F with OrigClOrdID = the order's ClOrdID; Pending Cancel, Canceled.
    cancelled, nos = submit(quickfix, api, account, aapl, "ack", 500)
    wait_status(api, cancelled["id"], "open", "the ack")
    response = api.post(f"{ORDERS}{cancelled['id']}/cancel/")
    assert response.status_code == 202, response.json()
    wait_status(api, cancelled["id"], "cancelled", "the cancel confirmed")
    [cancel] = quickfix.app_messages("F")
    assert cancel[41] == nos[11] and cancel[11] != nos[11]
    assert cancel[37] == quickfix.by_cl_ord_id[cancel[11]].order_id
    assert (cancel[55], cancel[54], cancel[38]) == ("AAPL", "1", "500")
    assert [r[150] for r in quickfix.sent_messages("8") if r.get(41) == nos[11]] == ["6", "4"]

    # Amend: a valid 35=G; Pending Replace, Replaced; the confirmed quantity is the order's.
    amended, nos = submit(quickfix, api, account, aapl, "ack", 500)
    wait_status(api, amended["id"], "open", "the ack")
    response = api.post(f"{ORDERS}{amended['id']}/amend/", {"quantity": 400}, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["quantity"] == 500  # unchanged until the venue confirms
    data = wait_status(api, amended["id"], "open", "the replace confirmed", quantity=400)
    assert data["leaves_quantity"] == 400
    [replace] = quickfix.app_messages("G")
    assert replace[41] == nos[11] and replace[11] != nos[11]
    assert (replace[38], replace[40], replace[44], replace[55], replace[54]) == ("400", "2", "175.5", "AAPL", "1")
    assert [r[150] for r in quickfix.sent_messages("8") if r.get(41) == nos[11]] == ["E", "5"]
    assert cl_ord_id_of(amended["id"]) == replace[11]

    # OrderStatusRequest (35=H) for the working orders: ExecType I comes back and applies.
    asked = order_services.venue_reconcile(venue_code="SIM")
    assert sorted(asked) == sorted([filled["id"], amended["id"]])
    wait_for(lambda: len(quickfix.app_messages("H")) == 2, what="status requests")
    wait_for(
        lambda: len([r for r in quickfix.sent_messages("8") if r[150] == "I"]) == 2,
        what="QuickFIX's status reports",
    )
    status_requests = {m[11]: m for m in quickfix.app_messages("H")}
    assert set(status_requests) == {cl_ord_id_of(filled["id"]), cl_ord_id_of(amended["id"])}
    wait_for(
        lambda: (
            InboundMessage.objects.filter(venue=sim, fields__contains=[[150, "I"]], applied_at__isnull=False).count()
            == 2
        ),
        what="the status reports applied",
    )
    assert get_order(api, filled["id"])["status"] == "partially_filled"
    assert get_order(api, amended["id"])["status"] == "open"

    # An unsolicited cancel from the venue.
    unsolicited, nos = submit(quickfix, api, account, aapl, "ack", 200)
    wait_status(api, unsolicited["id"], "open", "the ack")
    quickfix.unsolicited_cancel(nos[11])
    data = wait_status(api, unsolicited["id"], "cancelled", "the unsolicited cancel applied")
    assert data["leaves_quantity"] == 0

    # A reject (150=8).
    rejected, nos = submit(quickfix, api, account, aapl, "reject", 100)
    data = wait_status(api, rejected["id"], "rejected", "the reject applied")
    assert data["reject_reason"] == "Rejected by QuickFIX test venue"

    # QuickFIX's view: what reached fromApp, all valid.
    received_types = [t for t, _ in quickfix.received]
    assert sorted(received_types) == sorted(["D"] * 5 + ["F", "G", "H", "H"]), received_types
    assert quickfix.problems == [], "\n".join(quickfix.problems) + "\n" + quickfix.event_log()

    # The OMS's view: every report QuickFIX sent was stored and applied without a flag.
    inbox = InboundMessage.objects.filter(venue=sim)
    assert inbox.count() == len(quickfix.sent_messages("8"))
    assert not inbox.filter(applied_at__isnull=True).exists(), list(inbox.filter(applied_at__isnull=True).values())
    assert not inbox.exclude(error="").exists(), list(inbox.exclude(error="").values("fields", "error"))
    assert not OrderFlag.objects.exists(), list(OrderFlag.objects.values("kind", "message"))
    assert not AuditEvent.objects.filter(action__in=("venue.session_reject", "venue.business_reject")).exists()

    # A clean logout at the end.
    host.stop(release=True)
    wait_for(lambda: quickfix.logouts == 1, what="QuickFIX to see the logout")
    row = session_row(sim)
    assert row.status == VenueSession.Status.DISCONNECTED and not row.last_error, row.last_error
    assert not row.fatal
    [logout] = quickfix.sent_messages("5")
    assert 58 not in logout
    assert quickfix.problems == [], "\n".join(quickfix.problems) + "\n" + quickfix.event_log()


def test_a_resend_after_a_crash_and_heartbeats_pass_quickfix(eager, quickfix, sim, hosts, api, account, aapl):
    """The worker dies between the outbox commit and the socket write; the next holder
    logs on with a gap, QuickFIX asks for a resend, and gets the NewOrderSingle as a
    PossDup resend (OrigSendingTime) and a SequenceReset-GapFill over the Logon. With a
    2 s HeartBtInt the idle time meanwhile exchanges heartbeats."""

    class CrashBeforeWrite(VenueRunner):
        def write_prepared(self, raw):
            self.host.stop(release=False)  # the process dies: no write, no Logout, lease kept
            raise SystemError("crash between commit and socket write")

    Venue.objects.filter(pk=sim.pk).update(heartbeat_interval=2)
    hosts(holder_id="crashing", runner_class=CrashBeforeWrite)
    wait_for(lambda: quickfix.is_logged_on() and session_row(sim).status == "connected", what="logon")
    quickfix.on_new = "fill"
    order = post_order(api, account, aapl, 300)
    wait_for(lambda: OutboundMessage.objects.get(order_id=order["id"]).state == "sent", what="the outbox commit")
    wait_for(lambda: not quickfix.is_logged_on(), what="QuickFIX to see the connection drop")
    assert quickfix.app_messages("D") == []

    hosts(holder_id="survivor")
    wait_status(api, order["id"], "filled", "the resent order filled", filled_quantity=300)

    [nos] = quickfix.app_messages("D")  # exactly once, as a PossDup resend
    assert nos[43] == "Y" and nos[122] <= nos[52] and nos[11] == cl_ord_id_of(order["id"])
    assert nos[34] == str(OutboundMessage.objects.get(order_id=order["id"], msg_type="D").msg_seq_num)
    resend_requests = quickfix.sent_messages("2")
    assert resend_requests and resend_requests[0][7] == nos[34]
    gap_fills = quickfix.logged_from_counterparty("4")
    assert gap_fills and all(g[123] == "Y" and g[43] == "Y" and 122 in g for g in gap_fills), gap_fills
    # QuickFIX took the gap fill: the session goes on in sequence after it.
    after, after_nos = submit(quickfix, api, account, aapl, "ack", 100)
    wait_status(api, after["id"], "open", "an order after the resend acknowledged")
    assert int(after_nos[34]) >= max(int(g[36]) for g in gap_fills) and 43 not in after_nos

    # The other way round: QuickFIX's next message comes past a gap; the OMS's
    # ResendRequest must pass QuickFIX, which gap-fills, and the message then applies.
    quickfix.skip_sender_seq(3)
    quickfix.unsolicited_cancel(after_nos[11])
    wait_status(api, after["id"], "cancelled", "the unsolicited cancel past the gap applied")
    [resend_request] = quickfix.logged_from_counterparty("2")
    assert resend_request[16] == "0"
    assert int(resend_request[7]) == int(quickfix.sent_messages("8")[-1][34]) - 3

    wait_for(
        lambda: sum(1 for t, f in quickfix.admin_received if t == "0") >= 2 and quickfix.sent_messages("0"),
        what="heartbeats both ways",
    )
    assert quickfix.logons == 2
    assert quickfix.problems == [], "\n".join(quickfix.problems) + "\n" + quickfix.event_log()
