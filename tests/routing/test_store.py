"""``DbStore`` on PostgreSQL: the inbox written per batch (``accept_inbound_batch``),
one fenced transaction that stores the messages and advances the expected number."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing import services
from routing.fix.session import InboundRecord, MemoryStore
from routing.models import InboundMessage, VenueSession
from routing.services import LeaseLost
from routing.store import DbStore

pytestmark = pytest.mark.postgres


def report(seq: int, *, poss_dup: bool = False) -> InboundRecord:
    fields = [(8, "FIX.4.4"), (35, "8"), (34, str(seq)), (17, f"E{seq}"), (150, "F"), (32, "100"), (31, "175.25")]
    if poss_dup:
        fields.append((43, "Y"))
    return InboundRecord(seq, "8", fields, f"raw {seq}".encode())


def statements(queries: CaptureQueriesContext) -> list[str]:
    """The SQL of the captured statements, without the savepoints that stand for the
    transaction inside the test's own."""
    return [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]


def stored(venue) -> list[tuple[int, int, bool]]:
    return list(
        InboundMessage.objects.filter(venue=venue)
        .order_by("epoch", "msg_seq_num")
        .values_list("epoch", "msg_seq_num", "poss_dup")
    )


@pytest.fixture
def store(venue) -> DbStore:
    services.venue_session_ensure(venue_id=venue.pk)
    token = services.session_lease_acquire(venue_id=venue.pk, holder="h", ttl=6)
    return DbStore(venue_id=venue.pk, holder="h", token=token, lease_ttl=6)


@pytest.mark.django_db
def test_a_batch_is_one_transaction_of_two_statements_whatever_its_size(venue, store, django_assert_max_num_queries):
    batch = [report(seq) for seq in range(1, 301)]
    with django_assert_max_num_queries(4), CaptureQueriesContext(connection) as queries:
        store.accept_inbound_batch(batch)
    sql = statements(queries)
    assert len(sql) == 2
    assert sql[0].startswith('UPDATE "routing_venuesession"') and '"next_target_seq" = 301' in sql[0]
    assert sql[1].startswith('INSERT INTO "routing_inboundmessage"')
    assert sum("SAVEPOINT" in q["sql"] and "RELEASE" not in q["sql"] for q in queries.captured_queries) == 1

    assert stored(venue) == [(1, seq, False) for seq in range(1, 301)]
    row = VenueSession.objects.get(venue=venue)
    assert (row.next_target_seq, row.target_epoch) == (301, 1) and row.last_message_at is not None
    assert store.next_target_seq() == 301
    first = InboundMessage.objects.get(venue=venue, msg_seq_num=1)
    assert first.raw == "raw 1" and first.fields[3] == [17, "E1"] and first.received_at.tzinfo is not None


@pytest.mark.django_db
def test_a_batch_can_advance_past_admin_numbers_after_its_last_message(venue, store):
    store.accept_inbound_batch([report(1), report(2, poss_dup=True)], next_target_seq=5)
    assert stored(venue) == [(1, 1, False), (1, 2, True)]
    assert VenueSession.objects.get(venue=venue).next_target_seq == 5
    assert DbStore(venue_id=venue.pk, holder="h", token=store.token).next_target_seq() == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    "batch, next_target_seq",
    [([], None), ([report(2), report(1)], None), ([report(1), report(1)], None), ([report(1), report(2)], 2)],
    ids=["empty", "descending", "repeated", "target-not-past-the-last"],
)
def test_a_malformed_batch_is_refused_before_anything_is_written(venue, store, batch, next_target_seq):
    with pytest.raises(ValueError):
        store.accept_inbound_batch(batch, next_target_seq=next_target_seq)
    assert stored(venue) == []
    assert VenueSession.objects.get(venue=venue).next_target_seq == 1 and store.next_target_seq() == 1


@pytest.mark.django_db
def test_a_batch_by_a_worker_that_lost_the_lease_raises_and_stores_nothing(venue, store):
    store.accept_inbound_batch([report(1)])
    VenueSession.objects.filter(venue=venue).update(lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert services.session_lease_acquire(venue_id=venue.pk, holder="other", ttl=6) == store.token + 1

    with pytest.raises(LeaseLost):
        store.accept_inbound_batch([report(2), report(3)])
    assert stored(venue) == [(1, 1, False)]
    assert VenueSession.objects.get(venue=venue).next_target_seq == 2 and store.next_target_seq() == 2


@pytest.mark.django_db
def test_a_failing_insert_rolls_back_the_sequence_advance(venue, store, monkeypatch):
    store.accept_inbound_batch([report(1)])

    def broken(*args, **kwargs):
        raise RuntimeError("database gone mid-transaction")

    monkeypatch.setattr(InboundMessage.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        store.accept_inbound_batch([report(2), report(3)])
    monkeypatch.undo()

    assert stored(venue) == [(1, 1, False)]
    assert VenueSession.objects.get(venue=venue).next_target_seq == 2 and store.next_target_seq() == 2
    store.accept_inbound_batch([report(2), report(3)])  # the same numbers go in afterwards
    assert stored(venue) == [(1, 1, False), (1, 2, False), (1, 3, False)]


@pytest.mark.django_db
def test_a_batch_after_a_reset_goes_into_the_new_generation(venue, store):
    store.accept_inbound_batch([report(1), report(2)])
    store.reset()
    store.accept_inbound_batch([report(1, poss_dup=True)])
    assert stored(venue) == [(1, 1, False), (1, 2, False), (2, 1, True)]
    assert store.next_target_seq() == 2 and store.target_epoch == 2


def test_the_memory_store_takes_a_batch_message_by_message():
    class Recording(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[int] = []

        def accept_inbound(self, seq, msg_type, fields, raw):
            super().accept_inbound(seq, msg_type, fields, raw)
            self.seen.append(seq)

    memory = Recording()
    memory.accept_inbound_batch([report(1), report(2)], next_target_seq=4)
    assert memory.seen == [1, 2] and [m[0] for m in memory.inbound] == [1, 2]
    assert memory.next_target_seq() == 4
    with pytest.raises(ValueError):
        memory.accept_inbound_batch([report(5), report(4)])
    assert memory.seen == [1, 2] and memory.next_target_seq() == 4
