"""Concurrent writers and sealers on PostgreSQL leave one linear chain: every committed
event sealed exactly once, seqs 1..N without gaps, each link to the one before, no
rolled-back event, and two sealers at once never fork it."""

import random
import threading
import time

import pytest
from django.db import connection, transaction

from audit.models import AuditEvent, AuditSeal
from audit.services import audit_event_record, audit_seal
from audit.verify import chain_verify
from tests.helpers import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITERS = 8
EVENTS_PER_WRITER = 50


class Rollback(Exception):
    pass


def _event(writer: int, n: int, tag: str) -> AuditEvent:
    return audit_event_record(
        actor=f"writer{writer}", action="thing.changed", object_type=tag, object_id=f"{writer}-{n}", after={"n": n}
    )


def _writer(writer: int, more=lambda: False, deadline: float = 0.0) -> tuple[set[int], set[int]]:
    """50 events in transactions of 1 to 4, every fifth transaction rolled back; some
    transactions write a row (an event) first and sleep before the rest, so that
    transactions overlap and commit out of id order; then more while ``more()`` says so
    (until ``deadline``, monotonic). Returns (committed, rolled back)."""
    rng = random.Random(writer)
    committed: set[int] = set()
    rolled_back: set[int] = set()
    n = 0
    txn = 0
    while n < EVENTS_PER_WRITER or (more() and time.monotonic() < deadline):
        size = min(rng.randint(1, 4), max(EVENTS_PER_WRITER - n, 1))
        txn += 1
        doomed = txn % 5 == 0
        ids: list[int] = []
        try:
            with transaction.atomic():
                for _ in range(size):
                    ids.append(_event(writer, n, "doomed" if doomed else "kept").pk)
                    n += 1
                    if rng.random() < 0.3:
                        time.sleep(rng.random() / 200)
                if doomed:
                    raise Rollback
        except Rollback:
            rolled_back.update(ids)
        else:
            committed.update(ids)
    return committed, rolled_back


def _seal_until_done() -> None:
    while audit_seal():
        pass


def _assert_linear_chain(expected: set[int]) -> None:
    seals = list(AuditSeal.objects.order_by("seq").values_list("seq", "event_id", "prev_hash", "hash"))
    assert [s[0] for s in seals] == list(range(1, len(seals) + 1)), "seqs have gaps or repeats"
    assert [s[1] for s in seals] == sorted(s[1] for s in seals), "sealed out of id order"
    assert {s[1] for s in seals} == expected, "not every committed event has exactly one seal"
    assert len(seals) == len(expected)
    assert all(b[2] == a[3] for a, b in zip(seals, seals[1:], strict=False)), "a link does not follow its predecessor"
    verification = chain_verify()
    assert verification.ok, verification.problems
    assert verification.checked == len(expected) and verification.unsealed == 0


def test_concurrent_writers_and_a_sealer_leave_one_linear_chain():
    stop = threading.Event()
    seal_rounds: list[int] = []

    rounds_done: list[int] = []

    def sealer():
        rounds = 0
        while not stop.is_set():
            audit_seal(batch=37)  # small batches: many rounds interleave with the writers
            rounds += 1
            rounds_done.append(rounds)
        return rounds

    sealing = threading.Thread(target=lambda: (seal_rounds.append(sealer()), connection.close()))
    sealing.start()
    # On a loaded machine the writers could finish within one sealing round: they keep
    # writing until the sealer has run at least twice beside them.
    deadline = time.monotonic() + 60
    try:
        outcomes = run_together(
            [lambda w=w: _writer(w, more=lambda: len(rounds_done) < 2, deadline=deadline) for w in range(WRITERS)]
        )
    finally:
        stop.set()
        sealing.join(timeout=60)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, errors
    committed = set().union(*(o[0] for o in outcomes))
    rolled_back = set().union(*(o[1] for o in outcomes))
    assert rolled_back and committed and not committed & rolled_back
    assert seal_rounds and seal_rounds[0] > 1

    _seal_until_done()

    assert set(AuditEvent.objects.values_list("pk", flat=True)) == committed
    assert not AuditEvent.objects.filter(object_type="doomed").exists()
    _assert_linear_chain(committed)


def test_two_sealers_at_once_never_fork_the_chain():
    with transaction.atomic():
        for n in range(300):
            _event(0, n, "kept")
    expected = set(AuditEvent.objects.values_list("pk", flat=True))

    def sealer():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        total = 0
        for _ in range(20):
            total += audit_seal(batch=25)
        return pid, total

    outcomes = run_together([sealer, sealer])

    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, errors
    assert outcomes[0][0] != outcomes[1][0]  # two sessions
    _seal_until_done()
    assert sum(total for _, total in outcomes) <= len(expected)  # nobody sealed an event twice
    _assert_linear_chain(expected)


def test_sealers_that_start_together_share_the_work_under_the_lock():
    """Many sealing rounds racing while writers append: the seals written are exactly
    one chain, whichever session wrote each."""
    stop = threading.Event()

    def busy_sealer():
        total = 0
        while not stop.is_set():
            total += audit_seal(batch=10)
        return total

    def writers_then_stop():
        try:
            return _writer(1)
        finally:
            stop.set()

    outcomes = run_together([busy_sealer, busy_sealer, writers_then_stop])
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, errors
    committed, _ = outcomes[2]
    _seal_until_done()
    assert outcomes[0] + outcomes[1] <= len(committed)
    _assert_linear_chain(committed)
