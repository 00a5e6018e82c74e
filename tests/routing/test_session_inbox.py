"""The inbox stored per received chunk (DESIGN §4.3): what one ``data_received`` is
handed is processed message by message with the sequence state FIX requires, and its
application messages are stored with the expected number in one transaction.

Our ``FixSession`` (initiator) on a ``DbStore`` is fed hand-built chunks directly, so
each test decides exactly what one ``recv`` returned."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing import services
from routing.fix.session import INBOUND_BATCH_MAX, FixSession, State
from routing.models import InboundMessage, VenueSession
from routing.services import LeaseLost
from routing.store import DbStore

from .fix_peer import RecordingApp, build_message, execution_report, make_config, parse_fields, wrong_checksum

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


class Wire:
    """The transport: what the session wrote, each with the inbox as it stood then."""

    def __init__(self) -> None:
        self.written: list[tuple[dict[int, str], list[int]]] = []
        self.closed = False

    def write(self, raw: bytes) -> None:
        stored = list(InboundMessage.objects.order_by("msg_seq_num").values_list("msg_seq_num", flat=True))
        self.written.append((dict(parse_fields(raw)), stored))

    def close(self) -> None:
        self.closed = True

    def sent(self, msg_type: str) -> list[tuple[dict[int, str], list[int]]]:
        return [(fields, stored) for fields, stored in self.written if fields[35] == msg_type]


class Venue:
    """The counterparty's side of the wire: numbers its messages."""

    def __init__(self) -> None:
        self.next_seq = 2  # its Logon was 1

    def message(self, msg_type: str, body=(), *, seq: int | None = None, **options) -> bytes:
        if seq is None:
            seq, self.next_seq = self.next_seq, self.next_seq + 1
        return build_message(msg_type, list(body), seq=seq, **options)

    def report(self, exec_id: str, **options) -> bytes:
        return self.message("8", execution_report(exec_id), **options)


@pytest.fixture
def store(venue) -> DbStore:
    services.venue_session_ensure(venue_id=venue.pk)
    token = services.session_lease_acquire(venue_id=venue.pk, holder="h", ttl=60)
    return DbStore(venue_id=venue.pk, holder="h", token=token, lease_ttl=60)


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def session(store, wire):
    """Logged on: our Logon was our 1, the venue's answer its 1."""
    fix = FixSession(config=make_config(), store=store, app=RecordingApp())
    fix.connection_made(wire, 0.0)
    fix.data_received(build_message("A", [(98, "0"), (108, "30")], seq=1), 0.1)
    assert fix.is_active and store.next_target_seq() == 2
    wire.written.clear()
    return fix


def inbox(venue) -> list[int]:
    return list(
        InboundMessage.objects.filter(venue=venue).order_by("msg_seq_num").values_list("msg_seq_num", flat=True)
    )


def target_seq(venue) -> int:
    return VenueSession.objects.get(venue=venue).next_target_seq


def delivered(session: FixSession) -> list[int]:
    return [seq for seq, _, _ in session.app.messages]


def inbox_statements(queries: CaptureQueriesContext) -> tuple[int, int]:
    """(inbox inserts, session-row updates) among the captured statements."""
    sql = [q["sql"] for q in queries.captured_queries]
    return (
        sum(s.startswith('INSERT INTO "routing_inboundmessage"') for s in sql),
        sum(s.startswith('UPDATE "routing_venuesession"') for s in sql),
    )


def test_a_chunk_of_reports_is_stored_in_one_transaction_that_advances_the_number(
    venue, session, django_assert_max_num_queries
):
    peer = Venue()
    chunk = b"".join(peer.report(f"E{n}") for n in range(100))
    with django_assert_max_num_queries(4), CaptureQueriesContext(connection) as queries:
        session.data_received(chunk, 1.0)
    # The transaction (a savepoint inside the test's), its two statements, its release.
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["SAVEPOINT", "UPDATE", "INSERT", "RELEASE"]
    assert inbox_statements(queries) == (1, 1)
    assert inbox(venue) == list(range(2, 102))
    assert target_seq(venue) == 102 and session.next_target_seq() == 102
    assert delivered(session) == list(range(2, 102))
    assert session.app.exec_ids() == [f"E{n}" for n in range(100)]


def test_admin_messages_between_reports_consume_their_numbers_in_the_same_transaction(venue, session, wire):
    peer = Venue()
    chunk = b"".join(
        [
            peer.report("E2"),
            peer.message("0"),  # 3: heartbeat
            peer.report("E4"),
            peer.message("4", [(123, "Y"), (36, "7")], poss_dup=True),  # 5: gap fill over 5, 6
            peer.report("E7", seq=7),
            peer.message("0", seq=8),
        ]
    )
    with CaptureQueriesContext(connection) as queries:
        session.data_received(chunk, 1.0)
    assert inbox_statements(queries) == (1, 1)
    assert inbox(venue) == [2, 4, 7]
    assert target_seq(venue) == 9
    assert delivered(session) == [2, 4, 7]
    assert wire.written == []  # nothing to answer


def test_an_answer_inside_a_chunk_is_sent_after_what_came_before_it_is_stored(venue, session, wire):
    peer = Venue()
    chunk = peer.report("E2") + peer.message("1", [(112, "T-1")]) + peer.report("E4")
    with CaptureQueriesContext(connection) as queries:
        session.data_received(chunk, 1.0)
    [(heartbeat, stored_then)] = wire.sent("0")
    assert heartbeat[112] == "T-1" and stored_then == [2]
    # Before the answer (the TestRequest's number with it), and the chunk's end; the
    # answer's own update is the store of our outbound message.
    assert inbox_statements(queries) == (2, 3)
    assert inbox(venue) == [2, 4] and target_seq(venue) == 5 and delivered(session) == [2, 4]


def test_a_gap_in_the_middle_stores_what_came_before_it_then_asks_for_a_resend(venue, session, wire):
    peer = Venue()
    first = peer.report("E2") + peer.report("E3")
    peer.next_seq = 6  # 4 and 5 lost
    session.data_received(first + peer.report("E6") + peer.report("E7"), 1.0)

    [(request, stored_then)] = wire.sent("2")
    assert (request[7], request[16]) == ("4", "0")
    assert stored_then == [2, 3]  # stored before we asked
    assert inbox(venue) == [2, 3] and target_seq(venue) == 4
    assert delivered(session) == [2, 3]
    assert sorted(session.queued) == [6, 7]

    # The resend fills the gap; the queued messages follow in order, in the same chunk.
    resend = peer.report("E4", seq=4, poss_dup=True) + peer.report("E5", seq=5, poss_dup=True)
    with CaptureQueriesContext(connection) as queries:
        session.data_received(resend, 2.0)
    assert inbox_statements(queries) == (1, 1)
    assert inbox(venue) == [2, 3, 4, 5, 6, 7] and target_seq(venue) == 8
    assert delivered(session) == [2, 3, 4, 5, 6, 7]
    assert session.queued == {} and session.resend_requested_to == 0
    assert len(wire.sent("2")) == 1


def test_a_poss_dup_duplicate_inside_a_chunk_is_ignored(venue, session, wire):
    peer = Venue()
    chunk = (
        peer.report("E2")
        + peer.report("E3")
        + peer.report("E2", seq=2, poss_dup=True)
        + peer.report("E3", seq=3, poss_dup=True)
        + peer.report("E4")
    )
    session.data_received(chunk, 1.0)
    assert inbox(venue) == [2, 3, 4] and target_seq(venue) == 5
    assert session.app.exec_ids() == ["E2", "E3", "E4"]
    assert session.is_active and wire.written == []


def test_a_too_low_number_without_poss_dup_is_fatal_after_storing_what_came_before(venue, session, wire):
    peer = Venue()
    chunk = peer.report("E2") + peer.report("E3") + peer.report("again", seq=3) + peer.report("E4", seq=4)
    session.data_received(chunk, 1.0)
    [(logout, stored_then)] = wire.sent("5")
    assert "MsgSeqNum too low" in logout[58] and stored_then == [2, 3]
    assert session.app.fatals and session.state is State.DISCONNECTED and session.transport is None
    assert inbox(venue) == [2, 3] and target_seq(venue) == 4
    assert delivered(session) == [2, 3]


@pytest.mark.parametrize("gap_fill_flag", [None, "N"])
def test_a_sequence_reset_inside_a_chunk_stores_what_came_before_it_first(venue, session, gap_fill_flag):
    peer = Venue()
    reset = [(36, "10")] + ([(123, gap_fill_flag)] if gap_fill_flag else [])
    chunk = peer.report("E2") + peer.report("E3") + peer.message("4", reset, seq=99) + peer.report("E10", seq=10)
    with CaptureQueriesContext(connection) as queries:
        session.data_received(chunk, 1.0)
    # Before the reset, and the chunk's end.
    assert inbox_statements(queries) == (2, 3)
    assert inbox(venue) == [2, 3, 10] and target_seq(venue) == 11
    assert set(InboundMessage.objects.values_list("epoch", flat=True)) == {1}
    assert delivered(session) == [2, 3, 10]


def test_garbled_and_invalid_messages_inside_a_chunk(venue, session, wire):
    peer = Venue()
    chunk = (
        peer.report("E2")
        + wrong_checksum(peer.report("garbled", seq=3))  # dropped: 3 not consumed
        + peer.report("E3", seq=3)
        + peer.message("8", execution_report("no exec id", t17=None), seq=4)  # session Reject, consumed
        + peer.report("E5", seq=5)
    )
    session.data_received(chunk, 1.0)
    [(reject, _)] = wire.sent("3")
    assert reject[45] == "4"
    assert inbox(venue) == [2, 3, 5] and target_seq(venue) == 6
    assert session.app.exec_ids() == ["E2", "E3", "E5"]


def test_a_logout_inside_a_chunk_is_answered_after_the_reports_before_it_are_stored(venue, session, wire):
    peer = Venue()
    chunk = peer.report("E2") + peer.report("E3") + peer.message("5") + peer.report("after logout")
    session.data_received(chunk, 1.0)
    [(logout, stored_then)] = wire.sent("5")
    assert stored_then == [2, 3]
    assert session.transport is None and session.app.logouts == ["logout requested by counterparty"]
    assert inbox(venue) == [2, 3] and target_seq(venue) == 5  # the Logout's number is consumed


def test_a_reject_of_our_message_reaches_the_application_with_the_store_current(venue, session):
    peer = Venue()
    seen: list[tuple[list[int], int]] = []
    session.app.on_reject = lambda fix, fields: seen.append((inbox(venue), target_seq(venue)))
    session.data_received(peer.report("E2") + peer.message("3", [(45, "1"), (58, "no")]) + peer.report("E4"), 1.0)
    assert seen == [([2], 4)]  # the report before it stored, the Reject's own number consumed
    assert inbox(venue) == [2, 4] and target_seq(venue) == 5


def test_a_failing_flush_stores_nothing_and_leaves_the_number_unchanged(venue, session, monkeypatch):
    peer = Venue()
    session.data_received(peer.report("E2"), 1.0)

    def broken(*args, **kwargs):
        raise RuntimeError("crash while storing")

    monkeypatch.setattr(InboundMessage.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        session.data_received(peer.report("E3") + peer.message("0") + peer.report("E5"), 2.0)
    assert inbox(venue) == [2] and target_seq(venue) == 3
    assert session.next_target_seq() == 3 and session.store.next_target_seq() == 3
    assert delivered(session) == [2]  # nothing unstored reached the application


def test_a_worker_that_lost_the_lease_stores_nothing_of_the_chunk(venue, session):
    peer = Venue()
    VenueSession.objects.filter(venue=venue).update(lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert services.session_lease_acquire(venue_id=venue.pk, holder="other", ttl=6)
    with pytest.raises(LeaseLost):
        session.data_received(peer.report("E2") + peer.report("E3"), 1.0)
    assert inbox(venue) == [] and target_seq(venue) == 2
    assert delivered(session) == []


def test_a_long_chunk_is_stored_in_bounded_slices_each_with_its_own_advance(venue, session):
    peer = Venue()
    count = 2 * INBOUND_BATCH_MAX + 7
    chunk = b"".join(peer.report(f"E{n}") for n in range(count))
    with CaptureQueriesContext(connection) as queries:
        session.data_received(chunk, 1.0)
    assert inbox_statements(queries) == (3, 3)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "routing_venuesession"')]
    for sql, target in zip(updates, [2 + INBOUND_BATCH_MAX, 2 + 2 * INBOUND_BATCH_MAX, 2 + count], strict=True):
        assert f'"next_target_seq" = {target}' in sql
    assert inbox(venue) == list(range(2, 2 + count)) and target_seq(venue) == 2 + count
    assert delivered(session) == list(range(2, 2 + count))
