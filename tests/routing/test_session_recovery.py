"""Recovering a FIX session without the superuser: middle office resets sequence
numbers, reconnects and disconnects from the admin, each with a reason, audited with
who and why; the session's error shows on its page and clears once it logs on again;
and a session stopped by "MsgSeqNum too low" after a venue restart logs on again after
a reset."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission

from audit.models import AuditEvent
from oms_site.errors import InvalidInput
from oms_site.roles import MIDDLE_OFFICE_GROUP
from orders.selectors import TRADER_GROUP
from routing import services
from routing.models import FixMessageLog, Venue, VenueSession
from tests.factories import UserFactory

from .conftest import venue_at, wait_for
from .fix_acceptor import ScriptedVenue

SESSIONS = "/admin/routing/venuesession/"


def session_of(venue: Venue) -> VenueSession:
    services.venue_session_ensure(venue_id=venue.pk)
    return VenueSession.objects.get(venue=venue)


def requests_audited(venue: Venue):
    return AuditEvent.objects.filter(object_type="venue", object_id=venue.code, action__endswith="_requested")


def fatal(row: VenueSession, error: str = "MsgSeqNum too low, expecting 50 but received 1") -> None:
    VenueSession.objects.filter(pk=row.pk).update(fatal=True, last_error=error, last_error_at="2026-12-07T09:31:00Z")


# ------------------------------------------------------------------ admin actions
@pytest.mark.django_db
def test_middle_office_resets_the_sequence_and_reconnects_with_a_reason(client, venue, middle_office):
    row = session_of(venue)
    fatal(row)
    assert not middle_office.is_superuser
    client.force_login(middle_office)
    action = {"action": "request_sequence_reset", "_selected_action": [row.pk]}

    page = client.post(SESSIONS, action)
    assert page.status_code == 200 and b"Reset sequence numbers" in page.content

    response = client.post(
        SESSIONS, {**action, "confirm": "yes", "mode": "reset", "reconnect": "on", "reason": "SIM restarted"}
    )

    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.requested_action, row.requested_by, row.requested_reason) == ("reset", "mo1", "SIM restarted")
    assert (row.fatal, row.stopped) == (False, False)  # "then reconnect"
    assert (row.next_sender_seq, row.next_target_seq) == (1, 1)  # the holder resets them, not the admin
    event = requests_audited(venue).get()
    assert (event.action, event.actor) == ("venue.session_reset_requested", "mo1")
    assert event.details["reason"] == "SIM restarted"
    assert event.details["reconnect"] is True
    assert event.details["error"].startswith("MsgSeqNum too low")
    assert (event.before["fatal"], event.after["fatal"]) == (True, False)


@pytest.mark.django_db
def test_middle_office_sets_explicit_numbers_disconnects_and_reconnects(client, venue, middle_office):
    row = session_of(venue)
    client.force_login(middle_office)
    operate = {"_selected_action": [row.pk], "confirm": "yes"}

    client.post(
        SESSIONS,
        {
            **operate,
            "action": "request_sequence_reset",
            "mode": "set",
            "next_sender_seq": "7",
            "next_target_seq": "12",
            "reason": "agreed with the venue's desk",
        },
    )
    row.refresh_from_db()
    assert (row.requested_action, row.requested_sender_seq, row.requested_target_seq) == ("set_sequence", 7, 12)
    assert row.stopped is False

    client.post(SESSIONS, {**operate, "action": "request_disconnect", "reason": "venue maintenance"})
    row.refresh_from_db()
    assert (row.requested_action, row.stopped, row.requested_reason) == ("disconnect", True, "venue maintenance")

    client.post(SESSIONS, {**operate, "action": "request_reconnect", "reason": "maintenance over"})
    row.refresh_from_db()
    assert (row.requested_action, row.stopped) == ("reconnect", False)

    events = list(requests_audited(venue).order_by("id"))
    assert [(e.action, e.actor, e.details["reason"]) for e in events] == [
        ("venue.session_set_sequence_requested", "mo1", "agreed with the venue's desk"),
        ("venue.session_disconnect_requested", "mo1", "venue maintenance"),
        ("venue.session_reconnect_requested", "mo1", "maintenance over"),
    ]
    assert (events[0].details["sender_seq"], events[0].details["target_seq"]) == (7, 12)


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["request_sequence_reset", "request_reconnect", "request_disconnect"])
def test_without_a_reason_nothing_is_recorded(client, venue, middle_office, action):
    row = session_of(venue)
    fatal(row)
    client.force_login(middle_office)
    response = client.post(
        SESSIONS, {"action": action, "_selected_action": [row.pk], "confirm": "yes", "mode": "reset", "reason": " "}
    )
    assert response.status_code == 200
    assert b"This field is required" in response.content
    row.refresh_from_db()
    assert (row.requested_action, row.fatal, row.stopped, row.requested_by) == ("", True, False, "")
    assert not requests_audited(venue).exists()


@pytest.mark.django_db
def test_setting_numbers_needs_a_number(client, venue, middle_office):
    row = session_of(venue)
    client.force_login(middle_office)
    response = client.post(
        SESSIONS,
        {
            "action": "request_sequence_reset",
            "_selected_action": [row.pk],
            "confirm": "yes",
            "mode": "set",
            "reason": "x",
        },
    )
    assert response.status_code == 200 and b"Give a next sender and/or target sequence number" in response.content
    assert not requests_audited(venue).exists()


@pytest.mark.django_db
def test_the_session_page_shows_the_error_and_operates_one_session(client, venue, middle_office):
    row = session_of(venue)
    fatal(row)
    client.force_login(middle_office)
    page = client.get(f"{SESSIONS}{row.pk}/change/")
    assert page.status_code == 200
    content = page.content.decode()
    assert 'id="session-error"' in content
    assert "Stopped on a fatal error" in content and "MsgSeqNum too low, expecting 50 but received 1" in content
    assert f"{SESSIONS}{row.pk}/operate/sequence/" in content
    assert f"{SESSIONS}{row.pk}/operate/reconnect/" in content

    form = client.get(f"{SESSIONS}{row.pk}/operate/reconnect/")
    assert form.status_code == 200 and b"reason" in form.content
    done = client.post(f"{SESSIONS}{row.pk}/operate/reconnect/", {"confirm": "yes", "reason": "venue is back"})
    assert done.status_code == 302 and done["Location"] == f"{SESSIONS}{row.pk}/change/"
    row.refresh_from_db()
    assert (row.requested_action, row.fatal) == ("reconnect", False)
    assert requests_audited(venue).get().details["reason"] == "venue is back"


@pytest.mark.django_db
def test_middle_office_may_operate_but_not_edit_the_row(client, venue, middle_office):
    row = session_of(venue)
    group = Group.objects.get(name=MIDDLE_OFFICE_GROUP)
    codenames = set(group.permissions.filter(content_type__app_label="routing").values_list("codename", flat=True))
    assert "operate_venuesession" in codenames and "view_venuesession" in codenames
    assert "change_venuesession" not in codenames
    assert "close_order_locally" in set(group.permissions.values_list("codename", flat=True))

    client.force_login(middle_office)
    response = client.post(f"{SESSIONS}{row.pk}/change/", {"next_sender_seq": "99", "fatal": "on"})
    assert response.status_code == 403
    row.refresh_from_db()
    assert (row.next_sender_seq, row.requested_action) == (1, "")


@pytest.mark.django_db
def test_traders_get_no_session_operations(client, venue):
    row = session_of(venue)
    fatal(row)
    staff_trader = UserFactory(username="desk", is_staff=True)
    staff_trader.groups.add(Group.objects.get_or_create(name=TRADER_GROUP)[0])
    client.force_login(staff_trader)
    body = {"_selected_action": [row.pk], "confirm": "yes", "reason": "x", "mode": "reset"}
    assert client.post(SESSIONS, {**body, "action": "request_reconnect"}).status_code == 403
    assert client.post(f"{SESSIONS}{row.pk}/operate/reconnect/", body).status_code == 403
    assert client.get(f"{SESSIONS}{row.pk}/change/").status_code == 403

    # Viewing the console is not operating it either.
    staff_trader.user_permissions.add(Permission.objects.get(codename="view_venuesession"))
    client.force_login(staff_trader)
    assert client.post(f"{SESSIONS}{row.pk}/operate/reconnect/", body).status_code == 403
    response = client.post(SESSIONS, {**body, "action": "request_reconnect"})
    assert response.status_code == 200  # the list again: no such action for this user
    row.refresh_from_db()
    assert (row.requested_action, row.fatal) == ("", True)
    assert not requests_audited(venue).exists()


# --------------------------------------------------------------------- services
@pytest.mark.django_db
def test_a_reconnect_keeps_a_pending_sequence_reset(venue):
    session_of(venue)
    services.session_action_request(venue=venue, action="reset", actor="mo1", reason="venue restarted")
    services.session_action_request(venue=venue, action="reconnect", actor="mo2", reason="and log on")
    row = VenueSession.objects.get(venue=venue)
    assert (row.requested_action, row.requested_by, row.fatal, row.stopped) == ("reset", "mo1", False, False)
    event = requests_audited(venue).get(action="venue.session_reconnect_requested")
    assert event.details["kept_pending"] == "reset"

    services.session_action_request(venue=venue, action="disconnect", actor="mo2", reason="stop")
    assert VenueSession.objects.get(venue=venue).requested_action == "disconnect"  # a disconnect replaces it


@pytest.mark.django_db
def test_the_service_refuses_requests_without_a_reason_or_numbers(venue):
    with pytest.raises(InvalidInput):
        services.session_action_request(venue=venue, action="reconnect", actor="mo1", reason="")
    with pytest.raises(InvalidInput):
        services.session_action_request(venue=venue, action="set_sequence", actor="mo1", reason="x")
    with pytest.raises(InvalidInput):
        services.session_action_request(venue=venue, action="explode", actor="mo1", reason="x")
    assert not requests_audited(venue).exists()


@pytest.mark.django_db
def test_a_logon_clears_the_error_and_keeps_it_on_the_audit_trail(venue):
    token = services.session_lease_acquire(venue_id=venue.pk, holder="h1", ttl=30)
    row = VenueSession.objects.get(venue=venue)
    fatal(row)

    assert services.session_error_clear(venue_id=venue.pk, holder="h1", token=token) is True

    row.refresh_from_db()
    assert (row.last_error, row.last_error_at, row.fatal) == ("", None, False)
    event = AuditEvent.objects.get(action="venue.session_recovered", object_id=venue.code)
    assert event.details["cleared_error"] == "MsgSeqNum too low, expecting 50 but received 1"
    assert event.details["was_fatal"] is True
    # A healthy session has nothing to clear: no event at every logon.
    assert services.session_error_clear(venue_id=venue.pk, holder="h1", token=token) is False
    assert AuditEvent.objects.filter(action="venue.session_recovered").count() == 1


# -------------------------------------------------------------------- end to end
@pytest.fixture
def acceptor():
    venue = ScriptedVenue().start()
    yield venue
    venue.stop()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_after_a_venue_restart_a_reset_and_reconnect_by_middle_office_logs_on_again(
    eager, acceptor, hosts, client, middle_office
):
    sim = venue_at(acceptor.port, "Scripted venue")
    hosts(holder_id="host-r")
    wait_for(lambda: session_of(sim).status == "connected", what="logon")
    wait_for(lambda: session_of(sim).next_target_seq > 1, what="the venue's Logon counted")

    # The venue restarts and forgets its sequence numbers: it logs on with 1 again,
    # which is below what we expect: fatal.
    with acceptor.lock:
        acceptor.drop()
        acceptor.store.reset()
    wait_for(lambda: session_of(sim).fatal, timeout=15, what="the fatal stop")
    row = session_of(sim)
    assert "MsgSeqNum too low" in row.last_error
    epochs = (row.sender_epoch, row.target_epoch)
    connections = acceptor.connections

    client.force_login(middle_office)
    response = client.post(
        f"{SESSIONS}{row.pk}/operate/sequence/",
        {"confirm": "yes", "mode": "reset", "reconnect": "on", "reason": "SIM restarted overnight"},
    )
    assert response.status_code == 302

    wait_for(lambda: session_of(sim).status == "connected", timeout=15, what="logon after the reset")
    wait_for(lambda: not session_of(sim).last_error, what="the error cleared")
    row = session_of(sim)
    assert (row.fatal, row.stopped, row.requested_action) == (False, False, "")
    assert row.sender_epoch > epochs[0] and row.target_epoch > epochs[1]  # new generations
    assert acceptor.connections == connections + 1
    # The Logon after an operator's reset asks the venue to reset too (ResetSeqNumFlag).
    logon = FixMessageLog.objects.filter(venue=sim, direction="out", msg_type="A").latest("id")
    assert "\x01141=Y\x01" in logon.raw and "\x0134=1\x01" in logon.raw
    actions = list(
        AuditEvent.objects.filter(object_type="venue", object_id="SIM").order_by("id").values_list("action", "actor")
    )
    assert ("venue.session_fatal", "system:fix-host:host-r") in actions
    assert ("venue.session_reset_requested", "mo1") in actions
    recovered = AuditEvent.objects.filter(action="venue.session_recovered", object_id="SIM").last()
    assert "MsgSeqNum too low" in recovered.details["cleared_error"]
