"""Inbound FIX throughput: the session layer alone, then store-and-apply on PostgreSQL.

    .venv/bin/python bench/fix_inbound.py [--reports 20000] [--orders 200] [--fills 5] [--pgbench-seconds 15]

1. Session layer in memory: N ExecutionReports, encoded by an acceptor FixSession, fed
   to an initiator FixSession (framing, checksum, validation, sequencing) in 64 KiB
   chunks, as recv() would hand them over. Prints reports/s.
2. On a fresh PostgreSQL database (default oms_bench_fix): ``--orders`` orders are
   submitted through ``order_submit``; for each, an ack and ``--fills`` partial fills
   are encoded by the venue's session and fed in 64 KiB chunks to our initiator
   session on a ``DbStore`` holding the venue's lease, as the hosting worker does: each
   chunk's reports are stored by ``accept_inbound_batch`` in one fenced transaction that
   also advances the expected sequence number. Then ``inbox_apply`` applies them all
   (row locks, ExecID de-duplication, state machine, average price, position, audit).
   Prints messages/s for each stage and checks the result (every order filled,
   quantities exact).
3. pgbench TPC-B (``-c 8 -j 2``, scale 10) on a scratch database of the same server, in
   the same run; the inbox store rate is printed as a ratio to its tps.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _fresh_django import django_on_fresh_database  # noqa: E402 (bench/ is on the path: these run as scripts)
from _pgbench import pgbench_tps  # noqa: E402

CHUNK = 65536  # what one recv() hands over at most (routing.hosting)


def session_pair(initiator_store=None):
    """Our initiator (on ``initiator_store``, a MemoryStore by default) logged on to a
    venue acceptor; returns them, the bytes the venue writes to us, and our app."""
    from routing.fix.session import FixSession, MemoryStore, Role, SessionConfig

    class App:
        def __init__(self):
            self.count = 0

        def on_logon(self, session): ...
        def on_logout(self, session, reason): ...
        def on_reject(self, session, fields): ...
        def on_fatal(self, session, reason): ...

        def on_app_message(self, session, seq, msg_type, fields):
            self.count += 1

    class Sink:
        def __init__(self):
            self.data = bytearray()

        def write(self, data):
            self.data += data

        def close(self): ...

    app = App()
    initiator = FixSession(SessionConfig("FIX.4.4", "OMS", "SIM", 30), initiator_store or MemoryStore(), app)
    acceptor = FixSession(
        SessionConfig("FIX.4.4", "SIM", "OMS", 30, role=Role.ACCEPTOR, accepts=frozenset("DFGH")), MemoryStore(), App()
    )
    to_acceptor, to_initiator = Sink(), Sink()
    acceptor.connection_made(to_initiator, 0)
    initiator.connection_made(to_acceptor, 0)
    acceptor.data_received(bytes(to_acceptor.data), 0)
    initiator.data_received(bytes(to_initiator.data), 0)
    to_initiator.data.clear()
    return initiator, acceptor, to_initiator, app


def bench_session(reports: int) -> None:
    initiator, acceptor, wire, app = session_pair()
    for i in range(reports):
        acceptor.send_app(
            "8",
            [
                (37, f"V{i}"),
                (11, f"C{i}"),
                (17, f"E{i}"),
                (150, "F"),
                (39, "1"),
                (55, "AAPL"),
                (54, "1"),
                (38, "1000"),
                (32, "100"),
                (31, "175.25"),
                (151, "900"),
                (14, "100"),
                (6, "175.25"),
                (60, "20261125-01:02:03.456"),
            ],
            0,
        )
    data = bytes(wire.data)
    started = time.perf_counter()
    for offset in range(0, len(data), CHUNK):
        initiator.data_received(data[offset : offset + CHUNK], 1)
    elapsed = time.perf_counter() - started
    assert app.count == reports, (app.count, reports)
    print(
        f"session layer (memory store): {reports} execution reports, {len(data) / 1e6:.1f} MB, "
        f"{elapsed:.2f}s = {reports / elapsed:,.0f} reports/s"
    )


def bench_database(db: str, orders: int, fills: int, *, profile: bool = False) -> tuple[float, float]:
    """Returns the inbox store and apply rates (messages/s)."""
    django_on_fresh_database(db)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    call_command("seed_demo", verbosity=0)
    from compliance.models import RuleSetting
    from orders.models import Order
    from orders.services import inbox_apply, order_submit
    from routing import services as routing_services
    from routing.models import InboundMessage, OutboundMessage, Venue, VenueSession
    from routing.store import DbStore

    # The orders are identical on purpose (this measures the inbound path, not
    # compliance): the trading-intent rules would hold them as duplicates.
    RuleSetting.objects.filter(
        scope="firm", rule__in=["duplicate_order", "wash_trade", "order_rate_trader", "order_rate_account"]
    ).update(enabled=False)
    trader = get_user_model().objects.get(username="trader1")
    venue = Venue.objects.get(code="SIM")
    created = []
    started = time.perf_counter()
    for _ in range(orders):
        order, _ = order_submit(
            user=trader,
            client_order_id=uuid.uuid4().hex,
            account="ACC-1",
            symbol="AAPL",
            side="BUY",
            quantity=100 * fills,
            order_type="LIMIT",
            limit_price=Decimal("175.50"),
        )
        created.append(order)
    submit_elapsed = time.perf_counter() - started
    OutboundMessage.objects.filter(venue=venue).update(state=OutboundMessage.State.SENT)

    routing_services.venue_session_ensure(venue_id=venue.pk)
    holder = f"bench-{uuid.uuid4().hex[:8]}"
    token = routing_services.session_lease_acquire(venue_id=venue.pk, holder=holder, ttl=600)
    store = DbStore(venue_id=venue.pk, holder=holder, token=token, lease_ttl=600)

    messages = []
    for order in created:
        base = [(37, f"V{order.pk}"), (11, order.cl_ord_id), (55, "AAPL"), (54, "1"), (38, str(order.quantity))]
        messages.append(
            base + [(17, f"A{order.pk}"), (150, "0"), (39, "0"), (151, str(order.quantity)), (14, "0"), (6, "0")]
        )
        for n in range(1, fills + 1):
            cum = 100 * n
            messages.append(
                base
                + [
                    (17, f"F{order.pk}-{n}"),
                    (150, "F"),
                    (39, "2" if n == fills else "1"),
                    (32, "100"),
                    (31, "175.50"),
                    (151, str(order.quantity - cum)),
                    (14, str(cum)),
                    (6, "175.50"),
                ]
            )
    initiator, venue_side, wire, app = session_pair(store)
    # The store's own share (its transactions), apart from framing and parsing.
    store_calls: list[tuple[int, float]] = []
    batch_store = store.accept_inbound_batch

    def timed_batch_store(messages, **options):
        started = time.perf_counter()
        batch_store(messages, **options)
        store_calls.append((len(messages), time.perf_counter() - started))

    store.accept_inbound_batch = timed_batch_store
    for fields in messages:
        venue_side.send_app("8", fields, 0)
    data = bytes(wire.data)
    chunks = (len(data) + CHUNK - 1) // CHUNK
    started = time.perf_counter()
    for offset in range(0, len(data), CHUNK):
        initiator.data_received(data[offset : offset + CHUNK], 1)
    store_elapsed = time.perf_counter() - started
    store.accept_inbound_batch = batch_store
    stored = InboundMessage.objects.filter(venue=venue).count()
    assert app.count == stored == len(messages), (app.count, stored, len(messages))
    assert store.next_target_seq() == VenueSession.objects.get(venue=venue).next_target_seq == len(messages) + 2

    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    statements = []

    def count(execute, sql, params, many, context):
        statements.append(1)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        applied = inbox_apply(venue_code="SIM")
    if profiler is not None:
        profiler.disable()
    apply_elapsed = time.perf_counter() - started
    filled = Order.objects.filter(pk__in=[o.pk for o in created], status="filled").count()
    assert applied == len(messages) and filled == orders, (applied, filled)

    print(
        f"order_submit (service, in process): {orders} orders in {submit_elapsed:.2f}s = {orders / submit_elapsed:,.0f}/s"
    )
    store_rate = len(messages) / store_elapsed
    print(
        f"inbox store (session on DbStore, one fenced transaction per {CHUNK // 1024} KiB chunk): "
        f"{len(messages)} messages in {chunks} chunks, {store_elapsed:.2f}s = {store_rate:,.0f}/s"
    )
    transactions_elapsed = sum(elapsed for _, elapsed in store_calls)
    print(
        f"  of which the store's transactions: {len(store_calls)}, "
        f"{len(messages) / len(store_calls):.0f} messages each, {transactions_elapsed:.2f}s "
        f"= {len(messages) / transactions_elapsed:,.0f} messages/s (the rest: framing, parsing, validation)"
    )
    print(
        f"inbox apply (set-based batches, one transaction each): {applied} messages in {apply_elapsed:.2f}s "
        f"= {applied / apply_elapsed:,.0f}/s, {len(statements)} statements "
        f"({len(statements) / applied:.2f} per message); {filled}/{orders} orders filled"
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return store_rate, applied / apply_elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=20000)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--fills", type=int, default=5)
    parser.add_argument("--db", default="oms_bench_fix")
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="cProfile the inbox apply")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms_site.settings")
    import django

    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.db}"
    django.setup()
    bench_session(args.reports)
    store_rate, apply_rate = bench_database(args.db, args.orders, args.fills, profile=args.profile)
    tps = pgbench_tps(clients=8, jobs=2, seconds=args.pgbench_seconds, scale=10)
    print(f"pgbench TPC-B (-c 8 -j 2, scale 10, same server, same run): {tps:,.0f} tps")
    print(f"ratio inbox store messages/s : pgbench tps = {store_rate / tps:.2f}")
    print(f"ratio inbox apply messages/s : pgbench tps = {apply_rate / tps:.2f}")


if __name__ == "__main__":
    main()
