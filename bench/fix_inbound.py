"""Inbound FIX throughput: the session layer alone, then store-and-apply on PostgreSQL.

    .venv/bin/python bench/fix_inbound.py [--reports 20000] [--orders 200] [--fills 5]

1. Session layer in memory: N ExecutionReports, encoded by an acceptor FixSession, fed
   to an initiator FixSession (framing, checksum, validation, sequencing) in 64 KiB
   chunks, as recv() would hand them over. Prints reports/s.
2. On a fresh PostgreSQL database (default oms_bench_fix): ``--orders`` orders are
   submitted through ``order_submit``; for each, an ack and ``--fills`` partial fills
   go through ``DbStore.accept_inbound`` (the inbox write that advances the sequence
   number, one transaction per message, fenced by the venue lease), then
   ``inbox_apply`` applies them all (row locks, ExecID de-duplication, state machine,
   average price, position, audit). Prints messages/s for each stage and checks the
   result (every order filled, quantities exact).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _fresh_django import django_on_fresh_database  # noqa: E402 (bench/ is on the path: these run as scripts)


def session_pair():
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
    initiator = FixSession(SessionConfig("FIX.4.4", "OMS", "SIM", 30), MemoryStore(), app)
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
    for offset in range(0, len(data), 65536):
        initiator.data_received(data[offset : offset + 65536], 1)
    elapsed = time.perf_counter() - started
    assert app.count == reports, (app.count, reports)
    print(
        f"session layer (memory store): {reports} execution reports, {len(data) / 1e6:.1f} MB, "
        f"{elapsed:.2f}s = {reports / elapsed:,.0f} reports/s"
    )


def bench_database(db: str, orders: int, fills: int) -> None:
    django_on_fresh_database(db)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("seed_demo", verbosity=0)
    from compliance.models import RuleSetting
    from orders.models import Order
    from orders.services import inbox_apply, order_submit
    from routing import services as routing_services
    from routing.models import OutboundMessage, Venue
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
    seq = store.next_target_seq()
    started = time.perf_counter()
    for fields in messages:
        store.accept_inbound(seq, "8", [(35, "8"), (34, str(seq)), *fields], b"")
        seq += 1
    store_elapsed = time.perf_counter() - started

    started = time.perf_counter()
    applied = inbox_apply(venue_code="SIM")
    apply_elapsed = time.perf_counter() - started
    filled = Order.objects.filter(pk__in=[o.pk for o in created], status="filled").count()
    assert applied == len(messages) and filled == orders, (applied, filled)

    print(
        f"order_submit (service, in process): {orders} orders in {submit_elapsed:.2f}s = {orders / submit_elapsed:,.0f}/s"
    )
    print(
        f"inbox store (DbStore.accept_inbound, one fenced transaction each): {len(messages)} messages "
        f"in {store_elapsed:.2f}s = {len(messages) / store_elapsed:,.0f}/s"
    )
    print(
        f"inbox apply (execution_report_apply under row locks, batches of 100): {applied} messages "
        f"in {apply_elapsed:.2f}s = {applied / apply_elapsed:,.0f}/s; {filled}/{orders} orders filled"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=20000)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--fills", type=int, default=5)
    parser.add_argument("--db", default="oms_bench_fix")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms_site.settings")
    import django

    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.db}"
    django.setup()
    bench_session(args.reports)
    bench_database(args.db, args.orders, args.fills)


if __name__ == "__main__":
    main()
