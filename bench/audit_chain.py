"""Audit trail throughput on PostgreSQL, against what the OMS needs.

    .venv/bin/python bench/audit_chain.py [--events 3000] [--threads 4] [--backlog 50000]

On a fresh database (default oms_bench_audit), with no sealer running:

(a) ``audit_event_record`` inserts/s, each event in its own transaction (the hot path:
    writers only insert), from one thread and from ``--threads`` threads;
(b) ``audit_seal`` throughput: events chained per second over a backlog of
    ``--backlog`` events (the inserts of (a) plus bulk-inserted filler);
(c) ``chain_verify`` events/s over the whole chain;
(d) ``audit_events_export`` (what export_audit streams) events/s.

Then one line compares with order flow: the OMS takes ~48 orders/s over HTTP
(bench/api_submit.py), each writing ~3 audit events.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _fresh_django import django_on_fresh_database  # noqa: E402 (bench/ is on the path: these run as scripts)

ORDERS_PER_SECOND = 48  # bench/api_submit.py over HTTP
EVENTS_PER_ORDER = 3


def _record(writer: int, n: int) -> None:
    from audit.services import audit_event_record_independent

    audit_event_record_independent(
        actor=f"bench{writer}",
        action="order.changed",
        object_type="order",
        object_id=f"{writer}-{n}",
        before={"status": "new", "quantity": 500, "limit_price": "175.50"},
        after={"status": "working", "quantity": 500, "limit_price": "175.50", "leaves_quantity": 500},
        details={"transition": "acknowledge", "venue": "SIM"},
    )


def bench_inserts(events: int, threads: int) -> tuple[float, float]:
    from django.db import connection

    started = time.perf_counter()
    for n in range(events):
        _record(0, n)
    single = events / (time.perf_counter() - started)

    per_thread = events // threads
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def worker(writer: int) -> None:
        try:
            connection.ensure_connection()
            barrier.wait()
            for n in range(per_thread):
                _record(writer, n)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=worker, args=(w + 1,)) for w in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    parallel = per_thread * threads / (time.perf_counter() - started)
    assert not errors, errors
    print(f"(a) audit_event_record, one transaction each: 1 thread {events} events = {single:,.0f}/s; ", end="")
    print(f"{threads} threads {per_thread * threads} events = {parallel:,.0f}/s")
    return single, parallel


def fill_backlog(backlog: int) -> int:
    """Bulk-insert filler until ``backlog`` events wait for their seal."""
    from django.db import transaction

    from audit.models import AuditEvent

    missing = backlog - AuditEvent.objects.count()
    now = dt.datetime.now(dt.UTC)
    while missing > 0:
        size = min(missing, 5000)
        with transaction.atomic():
            AuditEvent.objects.bulk_create(
                AuditEvent(
                    occurred_at=now,
                    actor="filler",
                    action="order.changed",
                    object_type="order",
                    object_id=str(i),
                    after={"status": "working", "quantity": 500, "limit_price": "175.50"},
                    details={"n": i},
                )
                for i in range(size)
            )
        missing -= size
    return AuditEvent.objects.count()


def bench_seal() -> float:
    from audit.services import audit_seal

    started = time.perf_counter()
    sealed = 0
    while count := audit_seal():
        sealed += count
    elapsed = time.perf_counter() - started
    rate = sealed / elapsed
    print(f"(b) audit_seal (batches of 5000): {sealed} events chained in {elapsed:.2f}s = {rate:,.0f}/s")
    return rate


def bench_verify() -> float:
    from audit.verify import chain_verify

    started = time.perf_counter()
    result = chain_verify()
    elapsed = time.perf_counter() - started
    assert result.ok and result.unsealed == 0, result.problems
    rate = result.checked / elapsed
    print(f"(c) chain_verify: {result.checked} events in {elapsed:.2f}s = {rate:,.0f}/s")
    return rate


def bench_export() -> float:
    from audit.selectors import audit_events_export

    started = time.perf_counter()
    count = sum(1 for row in audit_events_export() if row["hash"])
    elapsed = time.perf_counter() - started
    rate = count / elapsed
    print(f"(d) audit_events_export (keyset pages of 2000): {count} events in {elapsed:.2f}s = {rate:,.0f}/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000, help="inserts timed in (a), per run")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--backlog", type=int, default=50000, help="events waiting for (b)")
    parser.add_argument("--db", default="oms_bench_audit")
    args = parser.parse_args()

    django_on_fresh_database(args.db)
    single, parallel = bench_inserts(args.events, args.threads)
    total = fill_backlog(args.backlog)
    print(f"    backlog: {total} unsealed events")
    seal = bench_seal()
    verify = bench_verify()
    export = bench_export()
    needed = ORDERS_PER_SECOND * EVENTS_PER_ORDER
    print(
        f"order flow needs ~{needed} events/s ({ORDERS_PER_SECOND} orders/s x {EVENTS_PER_ORDER}): "
        f"inserts {single / needed:.0f}x (1 thread) / {parallel / needed:.0f}x ({args.threads} threads), "
        f"sealing {seal / needed:.0f}x, verify {verify / needed:.0f}x, export {export / needed:.0f}x that rate"
    )


if __name__ == "__main__":
    main()
