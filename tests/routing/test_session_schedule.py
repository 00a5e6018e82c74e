"""Session schedules and the operating day: when a venue is open, the sequence reset at
the start of each session, orders waiting for a session that is coming back (and
rejected once they waited too long), and the end of day (DAY and GTD orders)."""

from __future__ import annotations

import datetime as dt
import time
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import AuditEvent
from compliance.readings import trading_day
from orders import services as order_services
from orders.models import AccountExposure, Order, OrderRequest
from routing import selectors, services
from routing.models import FixMessageLog, OutboundMessage, Venue, VenueSession
from routing.schedule import Schedule, parse_days
from tests.conftest import apply

from .conftest import venue_at, wait_for
from .fix_acceptor import ScriptedVenue

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
live = pytest.mark.django_db(transaction=True)


def schedule(start="09:30", end="16:00", zone="America/New_York", days="Mon-Fri") -> Schedule:
    venue = SimpleNamespace(
        session_start=dt.time.fromisoformat(start) if start else None,
        session_end=dt.time.fromisoformat(end) if end else None,
        session_time_zone=zone,
        trading_days=days,
    )
    return Schedule.of(venue)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# ------------------------------------------------------------------ the schedule
def test_trading_days_parse_ranges_lists_and_wraparounds():
    assert parse_days("Mon-Fri") == {0, 1, 2, 3, 4}
    assert parse_days("mon, wed,FRI") == {0, 2, 4}
    assert parse_days("Sun-Thu") == {6, 0, 1, 2, 3}
    assert parse_days("Monday") == {0}
    with pytest.raises(ValueError, match="is not a day"):
        parse_days("Mon-Funday")
    with pytest.raises(ValueError, match="at least one"):
        parse_days(" , ")


def test_a_day_session_in_new_york_follows_its_local_time_across_daylight_saving():
    nyse = schedule()
    # Monday 2026-12-07: EST, UTC-5. Opens 14:30 UTC, ends 21:00 UTC.
    assert not nyse.is_open(at("2026-12-07T14:29:59"))
    assert nyse.is_open(at("2026-12-07T14:30:00"))
    assert nyse.is_open(at("2026-12-07T20:59:59"))
    assert not nyse.is_open(at("2026-12-07T21:00:00"))
    assert nyse.current_start(at("2026-12-07T18:00:00")) == at("2026-12-07T14:30:00")
    assert nyse.current_start(at("2026-12-07T22:00:00")) is None
    # Monday 2026-07-06: EDT, UTC-4. Opens 13:30 UTC.
    assert nyse.is_open(at("2026-07-06T13:30:00"))
    assert not nyse.is_open(at("2026-07-06T13:29:00"))


def test_weekends_are_closed_and_the_last_end_and_next_open_are_found():
    nyse = schedule()
    saturday = at("2026-12-12T15:00:00")
    assert not nyse.is_open(saturday)
    assert nyse.last_end(saturday) == at("2026-12-11T21:00:00")  # Friday's close
    assert nyse.next_open(saturday) == at("2026-12-14T14:30:00")  # Monday's open
    assert nyse.last_end(at("2026-12-08T10:00:00")) == at("2026-12-07T21:00:00")
    assert nyse.last_end(at("2026-12-07T15:00:00")) == at("2026-12-04T21:00:00")  # open now: Friday's end
    assert nyse.describe() == "09:30-16:00 America/New_York Mon,Tue,Wed,Thu,Fri"


def test_an_overnight_session_belongs_to_the_day_it_opens():
    fx = schedule(start="17:00", end="16:00", days="Sun-Thu")
    # Opens Sunday 17:00 New York, ends Monday 16:00.
    assert fx.is_open(at("2026-12-06T23:00:00"))  # Sunday 18:00 EST
    assert fx.is_open(at("2026-12-07T20:59:00"))  # Monday 15:59 EST
    assert not fx.is_open(at("2026-12-07T21:30:00"))  # Monday 16:30: the daily break
    assert fx.current_start(at("2026-12-07T12:00:00")) == at("2026-12-06T22:00:00")
    assert not fx.is_open(at("2026-12-12T12:00:00"))  # Saturday


def test_no_start_and_end_is_always_open_with_no_daily_boundary():
    anytime = schedule(start=None, end=None)
    assert anytime.is_open(at("2026-12-12T03:00:00"))
    assert anytime.current_start(at("2026-12-12T03:00:00")) is None
    assert anytime.last_end(at("2026-12-12T03:00:00")) is None
    assert anytime.describe() == "always open"


# ------------------------------------------------------------ venue configuration
@pytest.mark.django_db
def test_a_venue_schedule_is_validated():
    venue = Venue(code="X1", sender_comp_id="OMS", target_comp_id="X1", session_start=dt.time(9, 30))
    with pytest.raises(ValidationError) as exc:
        venue.full_clean()
    assert "session_end" in exc.value.message_dict
    venue.session_end, venue.session_time_zone, venue.trading_days = dt.time(16), "Mars/Olympus", "Mon-Funday"
    with pytest.raises(ValidationError) as exc:
        venue.full_clean()
    assert {"session_time_zone", "trading_days"} <= set(exc.value.message_dict)


@pytest.mark.django_db
def test_configure_venue_sets_and_clears_the_schedule_audited(venue, capsys):
    call_command(
        "configure_venue",
        "SIM",
        "--session-start=09:30",
        "--session-end=16:00",
        "--time-zone=America/New_York",
        "--trading-days=Mon-Fri",
        "--reset-on-disconnect",
    )
    venue.refresh_from_db()
    assert (venue.session_start, venue.session_end, venue.session_time_zone) == (
        dt.time(9, 30),
        dt.time(16),
        "America/New_York",
    )
    assert venue.reset_on_disconnect and not venue.reset_on_logout
    assert "session 09:30-16:00 America/New_York" in capsys.readouterr().out
    change = AuditEvent.objects.filter(action="venue.changed", object_id="SIM").latest("id")
    assert "session_start" in str(change.details)
    call_command("configure_venue", "SIM", "--always-open")
    venue.refresh_from_db()
    assert venue.session_start is None and venue.session_end is None
    with pytest.raises(CommandError, match="must be a time"):
        call_command("configure_venue", "SIM", "--session-start=9h30")
    with pytest.raises(CommandError, match="Invalid venue settings"):
        call_command("configure_venue", "SIM", "--time-zone=Nowhere/Land")


# ------------------------------------------------------------------- the router
def hosted_down(venue: Venue, **values) -> VenueSession:
    """A session a worker has hosted that is now down (not connected)."""
    values.setdefault("unavailable_since", dt.datetime.now(UTC) - dt.timedelta(seconds=5))
    return VenueSession.objects.create(venue=venue, status="disconnected", **values)


def hosted_up(venue: Venue) -> VenueSession:
    return VenueSession.objects.create(
        venue=venue, status="connected", holder="h", lease_expires_at=dt.datetime.now(UTC) + dt.timedelta(seconds=30)
    )


def open_now(venue: Venue, is_open: bool = True) -> Venue:
    """Give ``venue`` an every-day schedule open (or closed) at this moment (UTC)."""
    now = dt.datetime.now(UTC)
    if is_open:
        start, end = (now - dt.timedelta(hours=1)).time(), (now + dt.timedelta(hours=1)).time()
    else:
        start, end = (now + dt.timedelta(hours=1)).time(), (now + dt.timedelta(hours=2)).time()
    Venue.objects.filter(pk=venue.pk).update(
        session_start=start.replace(microsecond=0),
        session_end=end.replace(microsecond=0),
        session_time_zone="UTC",
        trading_days="Mon-Sun",
    )
    return Venue.objects.get(pk=venue.pk)


@pytest.mark.django_db
def test_an_order_for_a_venue_whose_session_is_down_waits_in_the_outbox(submit, venue):
    hosted_down(venue)
    order = submit()
    assert order.status == "pending_new" and order.venue == venue
    assert OutboundMessage.objects.get(order_id=order.pk).state == "pending"


@pytest.mark.django_db
def test_the_router_prefers_a_venue_whose_session_is_up(submit, venue):
    backup = Venue.objects.create(code="BACKUP", sender_comp_id="OMS", target_comp_id="BK", priority=200)
    hosted_down(venue)
    hosted_up(backup)
    order = submit()
    assert order.venue == backup and order.status == "pending_new"


@pytest.mark.django_db
def test_a_closed_venue_refuses_orders_with_its_hours(submit, venue):
    open_now(venue, is_open=False)
    order = submit()
    assert order.status == "rejected"
    assert order.reject_reason.startswith("venue SIM closed (session ")
    assert "opens " in order.reject_reason
    assert not OutboundMessage.objects.filter(order_id=order.pk).exists()


@pytest.mark.django_db
def test_an_open_venue_takes_orders_inside_its_hours(submit, venue):
    open_now(venue, is_open=True)
    assert submit().status == "pending_new"


@pytest.mark.django_db
def test_a_session_stopped_until_an_operator_acts_refuses_at_once(submit, venue):
    hosted_down(venue, fatal=True)
    order = submit()
    assert order.status == "rejected"
    assert order.reject_reason.startswith("venue SIM unavailable since ")
    assert "an operator must clear" in order.reject_reason


@pytest.mark.django_db
def test_a_trader_chosen_venue_that_is_closed_is_refused(submit, venue):
    open_now(venue, is_open=False)
    order = submit(venue="SIM")
    assert order.status == "rejected" and "closed" in order.reject_reason


@pytest.mark.django_db
def test_never_hosted_venues_still_take_orders_that_wait_for_the_first_logon(venue):
    assert selectors.venue_choose(asset_class="EQUITY", symbol="AAPL", currency="USD") == venue


# ------------------------------------------------------- waiting, then rejected
def age_outbox(order: Order, seconds: float) -> None:
    OutboundMessage.objects.filter(order_id=order.pk).update(
        created_at=dt.datetime.now(UTC) - dt.timedelta(seconds=seconds)
    )


@pytest.mark.django_db
def test_an_order_that_waited_too_long_for_a_down_session_is_rejected_naming_the_venue(submit, venue, settings):
    settings.OMS_ROUTE_WAIT_SECONDS = 60
    since = dt.datetime(2026, 12, 7, 14, 0, 5, tzinfo=UTC)
    hosted_down(venue, unavailable_since=since)
    waiting, fresh = submit(), submit()
    age_outbox(waiting, 61)
    age_outbox(fresh, 30)
    assert selectors.outbox_waiting_overdue_exists(wait_seconds=60)
    assert order_services.orders_waiting_expire() == [waiting.pk]
    waiting.refresh_from_db()
    fresh.refresh_from_db()
    assert waiting.status == "rejected"
    assert waiting.reject_reason == "venue SIM unavailable since 2026-12-07 14:00:05 UTC"
    assert OutboundMessage.objects.get(order_id=waiting.pk).state == "void"
    assert waiting.requests.get(kind="new").state == OrderRequest.State.WITHDRAWN
    event = AuditEvent.objects.filter(object_id=str(waiting.pk), action="order.rejected").latest("id")
    assert event.details["reason"] == waiting.reject_reason
    assert fresh.status == "pending_new"
    assert order_services.orders_waiting_expire() == []  # idempotent


@pytest.mark.django_db
def test_a_waiting_order_is_kept_while_its_session_is_up_or_once_it_was_sent(submit, venue):
    session = hosted_up(venue)
    queued = submit()
    age_outbox(queued, 120)
    assert order_services.orders_waiting_expire() == []  # logged on: the backlog is draining
    session.status, session.lease_expires_at = "disconnected", None
    session.save()
    OutboundMessage.objects.filter(order_id=queued.pk).update(state="sent", msg_seq_num=2)
    assert order_services.orders_waiting_expire() == []  # the venue has it now
    queued.refresh_from_db()
    assert queued.status == "pending_new"


# ------------------------------------------------------------------ end of day
def closed_yesterday(venue: Venue) -> Venue:
    """A schedule whose last session ended an hour ago (every day, UTC)."""
    now = dt.datetime.now(UTC)
    Venue.objects.filter(pk=venue.pk).update(
        session_start=(now - dt.timedelta(hours=3)).time().replace(microsecond=0),
        session_end=(now - dt.timedelta(hours=1)).time().replace(microsecond=0),
        session_time_zone="UTC",
        trading_days="Mon-Sun",
    )
    return Venue.objects.get(pk=venue.pk)


def acknowledged(order: Order) -> Order:
    OutboundMessage.objects.filter(order_id=order.pk).update(state="sent", msg_seq_num=2)
    apply(order, ExecType="0", OrdStatus="0", CumQty=0, LeavesQty=order.quantity, AvgPx=0)
    return order


def backdate(order: Order, hours: float) -> None:
    Order.objects.filter(pk=order.pk).update(created_at=dt.datetime.now(UTC) - dt.timedelta(hours=hours))


@pytest.mark.django_db
def test_end_of_day_closes_day_orders_done_for_day_once(submit, venue):
    day = acknowledged(submit())
    gtc = acknowledged(submit(time_in_force="GTC"))
    today = acknowledged(submit())
    backdate(day, 2)
    backdate(gtc, 2)
    closed_yesterday(venue)
    result = order_services.end_of_day()
    assert result.day_orders == {"SIM": [day.pk]}
    day.refresh_from_db()
    assert day.status == "done_for_day"
    event = AuditEvent.objects.get(object_id=str(day.pk), action="order.closed_end_of_day")
    assert "end of day at venue SIM" in event.details["reason"]
    gtc.refresh_from_db()
    today.refresh_from_db()
    assert gtc.status == "open" and today.status == "open"  # entered after the day ended
    assert order_services.end_of_day().closed == 0  # twice changes nothing more
    assert AuditEvent.objects.filter(action="order.closed_end_of_day").count() == 1


@pytest.mark.django_db
def test_gtd_orders_past_their_expiry_expire_at_any_time(submit, venue):
    expire_at = dt.datetime.now(UTC) + dt.timedelta(hours=1)
    gtd = acknowledged(submit(time_in_force="GTD", expire_at=expire_at))
    assert order_services.end_of_day().gtd_orders == []
    Order.objects.filter(pk=gtd.pk).update(expire_at=dt.datetime.now(UTC) - dt.timedelta(seconds=1))
    assert order_services.end_of_day().gtd_orders == [gtd.pk]
    gtd.refresh_from_db()
    assert gtd.status == "expired"
    assert AuditEvent.objects.filter(object_id=str(gtd.pk), action="order.expired_gtd").count() == 1


@pytest.mark.django_db
def test_the_end_of_day_command_closes_a_venue_day_now_and_says_what_it_did(submit, venue, capsys):
    order = acknowledged(submit())
    call_command("end_of_day")
    assert "SIM: skipped, no session end configured" in capsys.readouterr().out
    call_command("end_of_day", "--venue", "SIM", "--now")
    out = capsys.readouterr().out
    assert f"SIM: 1 DAY order(s) done for day: #{order.pk}" in out
    order.refresh_from_db()
    assert order.status == "done_for_day"
    call_command("end_of_day", "--venue", "SIM", "--now")
    assert "SIM: 0 DAY order(s) done for day" in capsys.readouterr().out
    with pytest.raises(CommandError, match="name it with --venue"):
        call_command("end_of_day", "--now")
    with pytest.raises(CommandError, match="Unknown venue 'NOPE'"):
        call_command("end_of_day", "--venue", "NOPE")


# ------------------------------------------------------------- live: the hosting
@pytest.fixture
def acceptor():
    venue = ScriptedVenue().start()
    yield venue
    venue.stop()


@live
def test_outside_its_schedule_a_venue_gets_no_logon_attempt(eager, acceptor, hosts):
    sim = open_now(venue_at(acceptor.port, "Scripted venue"), is_open=False)
    hosts()
    wait_for(lambda: VenueSession.objects.filter(venue=sim, holder__gt="").exists(), what="the lease")
    time.sleep(1.5)
    assert acceptor.connections == 0
    assert VenueSession.objects.get(venue=sim).status == "disconnected"


@live
def test_the_first_logon_of_a_session_resets_both_sequence_numbers(eager, acceptor, hosts):
    sim = open_now(venue_at(acceptor.port, "Scripted venue"))
    VenueSession.objects.create(venue=sim, next_sender_seq=40, next_target_seq=30)
    acceptor.store.sender_seq = 30  # the venue will reset on our ResetSeqNumFlag
    hosts()
    wait_for(lambda: VenueSession.objects.get(venue=sim).status == "connected", what="logon")
    row = VenueSession.objects.get(venue=sim)
    assert row.session_started_at == sim.schedule.current_start(dt.datetime.now(UTC))
    assert row.sender_epoch == 2 and row.target_epoch == 2
    logon = FixMessageLog.objects.filter(venue=sim, direction="out", msg_type="A").latest("id")
    assert "\x01141=Y\x01" in logon.raw and "\x0134=1\x01" in logon.raw
    # A reconnect within the same session continues the numbers.
    services.session_action_request(venue=sim, action="reconnect", actor="ops", reason="test")
    wait_for(lambda: acceptor.logons == 2, what="the second logon")
    wait_for(lambda: VenueSession.objects.get(venue=sim).status == "connected", what="logged on again")
    logon = FixMessageLog.objects.filter(venue=sim, direction="out", msg_type="A").latest("id")
    assert "\x01141=Y\x01" not in logon.raw
    assert VenueSession.objects.get(venue=sim).sender_epoch == 2


@live
def test_orders_submitted_while_the_session_is_down_go_out_when_it_logs_on(eager, acceptor, hosts, submit, venue):
    Venue.objects.filter(pk=venue.pk).update(host="127.0.0.1", port=acceptor.port)
    sim = Venue.objects.get(pk=venue.pk)
    hosted_down(sim)  # its worker died: no standby yet
    waiting = [submit() for _ in range(3)]
    assert all(order.status == "pending_new" and order.venue_id == sim.pk for order in waiting)
    hosts()  # a worker comes back
    wait_for(lambda: len(acceptor.app_messages("D")) == 3, what="the waiting orders sent")
    for order in waiting:
        wait_for(lambda o=order: Order.objects.get(pk=o.pk).status != "pending_new", what="acknowledged")
    assert not Order.objects.filter(status="rejected").exists()


# ------------------------------------------------------------ the firm's trading day
@pytest.mark.django_db
def test_every_connection_tells_the_database_the_firms_time_zone():
    with connection.cursor() as cursor:
        cursor.execute("SHOW oms.firm_time_zone")
        assert cursor.fetchone()[0] == settings.OMS_FIRM_TIME_ZONE


@pytest.mark.django_db
def test_daily_exposure_rolls_at_midnight_in_the_firms_time_zone(submit, settings):
    zone = "Pacific/Kiritimati"  # UTC+14: its date differs from UTC's for 14 hours a day
    settings.OMS_FIRM_TIME_ZONE = zone
    with connection.cursor() as cursor:
        cursor.execute("SET oms.firm_time_zone = %s", [zone])  # undone with the test's transaction
    order = submit()
    row = AccountExposure.objects.get(account=order.account, security=order.security)
    assert row.trade_date == order.created_at.astimezone(ZoneInfo(zone)).date()
    assert trading_day(order.created_at) == row.trade_date
    assert trading_day(dt.datetime(2026, 12, 7, 10, 0, tzinfo=UTC)) == dt.date(2026, 12, 8)
