"""Execution reports from a venue socket to committed order state, the way production runs.

    .venv/bin/python bench/fill_flood.py [--orders 1000] [--fills 4] [--cancels 50]

On a fresh PostgreSQL database (created for the run, dropped after it), with Redis as
the broker (a queue of the run's own), this starts what ``bin/run`` starts: a plain
``celery -A oms_site worker`` (prefork, 2 processes) that hosts the FIX session as a
bootstep and applies the inbox with ``orders.tasks.inbox_apply``, and gunicorn. The
venue is a raw FIX 4.4 acceptor in this process (our ``FixSession`` as acceptor on a
memory store, on 127.0.0.1 and a free port) that the worker logs on to.

1. ``--cancels`` + ``--orders`` orders are submitted through ``order_submit`` here,
   routed to the acceptor (limits raised, the trading-intent rules switched off at firm
   scope: the orders look alike on purpose). The acceptor collects the NewOrderSingles
   the worker sends, and acknowledges the ``--cancels`` orders only.
2. The flood: for every one of the ``--orders`` orders an ack (ExecType 0) and
   ``--fills`` partial fills (ExecType F), in rounds (every order's ack, then every
   order's first fill, ...) as a venue working many orders would send them, all built
   up front and written in 256 KiB ``sendall`` chunks as fast as the socket takes them.
   Reports/s = reports / (first byte written -> every order ``filled`` in the database,
   polled with a COUNT every 50 ms).
3. While the flood is applied, a thread cancels the ``--cancels`` acknowledged orders
   over HTTP (``POST /api/v1/orders/{id}/cancel/``, token auth) at ``--cancel-rate``
   a second and records each request's latency; another samples the newest audit event
   against the sealed head of the chain every 0.5 s, and the main loop samples
   ``pg_stat_activity`` with each COUNT (where the connections spend the flood).
4. Where the time went, from the inbox rows (when each report was stored by the session
   thread and applied by a task), the worker's task log and ``pg_stat_database``.
5. The worker and gunicorn are stopped, then pgbench TPC-B (``-c 8 -j 2``, scale 10)
   runs on a scratch database of the same server, and every figure is printed beside it.

Everything it starts (worker, gunicorn, acceptor, databases, the Redis queue) is stopped
or removed on the way out, Ctrl-C and failures included; every wait is bounded.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import io
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pgbench import pgbench_tps  # noqa: E402 (bench/ is on the path: these run as scripts)

PY = sys.executable
PG = ["-h", "127.0.0.1", "-U", "postgres"]
REDIS_URL = "redis://127.0.0.1:6379/0"
VENUE = "FLOOD"
SEND_CHUNK = 262144
POLL = 0.05
SYMBOLS = {"AAPL": "175.50", "MSFT": "415.20", "NVDA": "121.30", "JPM": "205.15"}
TASK_DONE = re.compile(r"Task orders\.tasks\.inbox_apply\[[^\]]+\] succeeded in ([0-9.]+)s: (\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


# --------------------------------------------------------------------- the venue
class _Transport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class FloodVenue:
    """A FIX 4.4 acceptor on 127.0.0.1: our ``FixSession`` (acceptor role, memory store)
    answers the Logon, heartbeats and test requests; it records every NewOrderSingle
    and cancel request and sends only what the bench tells it to."""

    def __init__(self, *, comp_id: str, target_comp_id: str) -> None:
        from routing.fix.session import MemoryStore, Role, SessionConfig

        self.config = SessionConfig(
            begin_string="FIX.4.4",
            sender_comp_id=comp_id,
            target_comp_id=target_comp_id,
            heartbeat_interval=30,
            role=Role.ACCEPTOR,
            accepts=frozenset("DFGH"),
        )
        self.store_class = MemoryStore
        self.lock = threading.RLock()
        self.session = None
        self.sock: socket.socket | None = None
        self.orders: dict[str, dict[int, str]] = {}  # ClOrdID -> NewOrderSingle tags
        self.cancel_requests = 0
        self.logons = 0
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="flood-venue", daemon=True)

    def start(self) -> FloodVenue:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self._server.close()
        except OSError:
            pass
        with self.lock:
            if self.sock is not None:
                try:
                    self.sock.close()
                except OSError:
                    pass
        self._thread.join(5)

    @property
    def logged_on(self) -> bool:
        return self.session is not None and self.session.is_active

    def _serve(self) -> None:
        from routing.fix.session import FixSession

        while not self._stop.is_set():
            try:
                if not select.select([self._server], [], [], 0.1)[0]:
                    continue
                conn, _ = self._server.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.sock = conn
                self.session = FixSession(config=self.config, store=self.store_class(), app=self)
                self.session.connection_made(_Transport(conn), time.monotonic())
            session = self.session
            while not self._stop.is_set() and session.transport is not None:
                try:
                    if select.select([conn], [], [], 0.05)[0]:
                        data = conn.recv(65536)
                        with self.lock:
                            if not data:
                                session.connection_lost("closed by the OMS")
                                break
                            session.data_received(data, time.monotonic())
                    with self.lock:
                        session.tick(time.monotonic())
                except (OSError, ValueError):
                    with self.lock:
                        if session.transport is not None:
                            session.connection_lost("socket error")
                    break
            conn.close()

    # FixSession's Application API
    def on_logon(self, session) -> None:
        self.logons += 1

    def on_logout(self, session, reason) -> None: ...
    def on_reject(self, session, fields) -> None: ...
    def on_fatal(self, session, reason) -> None: ...

    def on_app_message(self, session, seq, msg_type, fields) -> None:
        tags = dict(fields)
        if msg_type == "D":
            self.orders.setdefault(tags[11], tags)
        elif msg_type == "F":
            self.cancel_requests += 1

    # What the bench sends
    def send_reports(self, bodies: list[list[tuple[int, str]]]) -> None:
        with self.lock:
            for body in bodies:
                self.session.send_app("8", body, time.monotonic())

    def flood(self, bodies: list[list[tuple[int, str]]]) -> tuple[float, float, int]:
        """Stamp every report (the session's numbers, kept for resends), then write them
        in large chunks; the session is held meanwhile so nothing (a heartbeat) can slip
        in between with a later number. Returns (first write, last write, bytes)."""
        with self.lock:
            wire = b"".join(self.session.prepare_app("8", body)[1] for body in bodies)
            view = memoryview(wire)
            first = time.perf_counter()
            for offset in range(0, len(wire), SEND_CHUNK):
                self.sock.sendall(view[offset : offset + SEND_CHUNK])
            last = time.perf_counter()
            self.session.timers.last_sent = time.monotonic()
        return first, last, len(wire)


def report(order_tags: dict[int, str], *, exec_id: str, exec_type: str, cum: int, last: int, price: str):
    quantity = int(order_tags[38])
    leaves = quantity - cum
    status = "0" if exec_type == "0" else ("2" if leaves == 0 else "1")
    return [
        (37, f"V-{order_tags[11]}"),
        (11, order_tags[11]),
        (17, exec_id),
        (150, exec_type),
        (39, status),
        (55, order_tags[55]),
        (54, order_tags[54]),
        (38, str(quantity)),
        (32, str(last)),
        (31, price if last else "0"),
        (151, str(leaves)),
        (14, str(cum)),
        (6, price if cum else "0"),
        (60, time.strftime("%Y%m%d-%H:%M:%S.000", time.gmtime())),
    ]


# ---------------------------------------------------------------- the samplers
class Sampler(threading.Thread):
    """Every 0.5 s: the newest audit event against the sealed head of the chain."""

    def __init__(self) -> None:
        super().__init__(name="audit-sampler", daemon=True)
        self.samples: list[tuple[float, int, int, float]] = []  # t, newest id, unsealed, lag s
        self.stop_event = threading.Event()

    def run(self) -> None:
        from django.db import connection

        try:
            with connection.cursor() as cursor:
                while not self.stop_event.is_set():
                    cursor.execute(
                        """
                        SELECT e.id, e.occurred_at, s.event_id, se.occurred_at,
                               (SELECT count(*) FROM audit_auditevent WHERE id > coalesce(s.event_id, 0))
                        FROM (SELECT id, occurred_at FROM audit_auditevent ORDER BY id DESC LIMIT 1) e
                        LEFT JOIN (SELECT event_id FROM audit_auditseal ORDER BY seq DESC LIMIT 1) s ON true
                        LEFT JOIN audit_auditevent se ON se.id = s.event_id
                        """
                    )
                    row = cursor.fetchone()
                    if row is not None:
                        newest_id, newest_at, sealed_id, sealed_at, unsealed = row
                        lag = 0.0 if unsealed == 0 or sealed_at is None else (newest_at - sealed_at).total_seconds()
                        self.samples.append((time.perf_counter(), newest_id, unsealed, lag))
                    self.stop_event.wait(0.5)
        finally:
            connection.close()


class Canceller(threading.Thread):
    """Cancels the given orders over HTTP at ``rate`` a second, recording latencies."""

    def __init__(self, *, port: int, token: str, order_ids: list[int], rate: float, flood_done: threading.Event):
        super().__init__(name="canceller", daemon=True)
        self.port, self.token, self.order_ids, self.rate = port, token, order_ids, rate
        self.flood_done = flood_done
        self.results: list[tuple[int, float, bool]] = []  # status, seconds, sent during the flood
        self.start_event = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        self.start_event.wait(600)
        began = time.perf_counter()
        for i, order_id in enumerate(self.order_ids):
            delay = began + i / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            during = not self.flood_done.is_set()
            started = time.perf_counter()
            try:
                conn.request("POST", f"/api/v1/orders/{order_id}/cancel/", body=b"{}", headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                status = 0
            self.results.append((status, time.perf_counter() - started, during))
        conn.close()


ACTIVITY = """
SELECT application_name, state, coalesce(wait_event_type, ''), left(regexp_replace(query, '\\s+', ' ', 'g'), 70)
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def classify(query: str) -> str:
    """What a worker connection was doing, from its current (or last) statement."""
    q = query.lower()
    if ("routing_inboundmessage" in q and q.startswith("insert")) or "routing_fixmessagelog" in q:
        return "session: store inbox/log"
    if "routing_venuesession" in q or "routing_outboundmessage" in q:
        return "session: lease/outbox"
    if "audit_auditseal" in q or "pg_snapshot" in q:
        return "sealer"
    return "task/other"


# ------------------------------------------------------------------ processes
class Processes:
    """The subprocesses of the run, each in its own process group, stopped on exit."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            process = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append((name, process))
        return process

    def stop(self, name: str | None = None) -> None:
        for label, process in self.started:
            if (name is None or label == name) and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for label, process in self.started:
            if name is None or label == name:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)

    def check_alive(self) -> None:
        for label, process in self.started:
            if process.poll() is not None:
                raise SystemExit(f"{label} exited with {process.returncode}")


def drop_redis_queue(queue: str) -> None:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
        for key in client.scan_iter(match=f"*{queue}*", count=1000):
            client.delete(key)  # the queue, its exchange's bindings
        # Bindings of the run's queue and of its worker's remote-control queue.
        for key in client.scan_iter(match="_kombu.binding.*", count=1000):
            members = [m for m in client.smembers(key) if queue.encode() in m]
            if members:
                client.srem(key, *members)
    except Exception as exc:  # cleanup must not mask the run's own error
        print(f"(could not remove Redis queue {queue}: {exc})")


# ------------------------------------------------------------------------ run
def run(args, tmp: Path, procs: Processes) -> None:
    db = args.db
    queue = f"bench-flood-{os.getpid()}"
    base_url = f"postgres://postgres@127.0.0.1:5432/{db}"
    secret = "bench-" + uuid.uuid4().hex
    common = {
        "DEBUG": "false",
        "SECRET_KEY": secret,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "OMS_VAR_DIR": str(tmp / "var"),
    }
    os.environ.update(common)
    os.environ["DATABASE_URL"] = f"{base_url}?application_name=flood-bench"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "oms_site.settings"
    subprocess.run(["createdb", *PG, db], check=True)
    args.created_db = True

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    call_command("seed_demo", force=True, verbosity=0, stdout=io.StringIO())

    from compliance.models import RuleSetting
    from orders.models import Order
    from orders.services import inbox_apply, order_submit
    from routing.models import InboundMessage, VenueSession
    from routing.services import venue_save

    RuleSetting.objects.filter(
        scope="firm", rule__in=["duplicate_order", "wash_trade", "order_rate_trader", "order_rate_account"]
    ).update(enabled=False)
    RuleSetting.objects.filter(
        scope="firm", rule__in=["daily_notional_limit", "gross_notional_limit", "net_notional_limit"]
    ).update(threshold=10**15)
    RuleSetting.objects.filter(scope="firm", rule="position_limit").update(threshold=10**12)

    venue = FloodVenue(comp_id=VENUE, target_comp_id="OMS").start()
    args.venue = venue
    actor, via = "system:bench", "bench/fill_flood"
    # The demo venue points at 127.0.0.1:9878, where someone else's simulator may run.
    venue_save(code="SIM", values={"enabled": False}, actor=actor, via=via)
    venue_save(
        code=VENUE,
        values={
            "name": "fill_flood acceptor",
            "host": "127.0.0.1",
            "port": venue.port,
            "sender_comp_id": "OMS",
            "target_comp_id": VENUE,
            "enabled": True,
        },
        actor=actor,
        via=via,
    )
    trader = get_user_model().objects.get(username="trader1")
    token = Token.objects.get_or_create(user=trader)[0].key
    connection.close()

    worker_log, web_log = tmp / "worker.log", tmp / "gunicorn.log"
    # --profile-apply: the worker hosts the session and stores the inbox but consumes
    # another queue, so the inbox is left for this process to apply.
    consumed = f"{queue}-idle" if args.profile_apply else queue
    procs.start(
        "worker",
        [PY, "-m", "celery", "-A", "oms_site", "worker", "--concurrency=2", "--loglevel=INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h", "-Q", consumed],
        {**os.environ, **common, "DATABASE_URL": f"{base_url}?application_name=flood-worker", "LOG_LEVEL": "INFO"},
        worker_log,
    )  # fmt: skip
    web_port = free_port()
    procs.start(
        "gunicorn",
        [str(Path(PY).parent / "gunicorn"), "oms_site.wsgi:application", "--bind", f"127.0.0.1:{web_port}",
         "--workers", str(args.web_workers), "--log-level", "warning"],
        {**os.environ, **common, "DATABASE_URL": f"{base_url}?application_name=flood-web"},
        web_log,
    )  # fmt: skip
    args.worker_log = worker_log

    def logged_on():
        procs.check_alive()
        row = VenueSession.objects.filter(venue__code=VENUE).first()
        return venue.logged_on and row is not None and row.status == VenueSession.Status.CONNECTED

    started = time.perf_counter()
    wait_until(logged_on, 90, "the worker's FIX session to log on to the acceptor", 0.2)
    print(f"worker logged on to the acceptor on 127.0.0.1:{venue.port} after {time.perf_counter() - started:.1f}s")

    # ---- orders: the ones to cancel first, then the ones to fill
    symbols = list(SYMBOLS)
    quantity = 100 * args.fills
    order_ids: list[int] = []
    cl_ord_ids: list[str] = []
    started = time.perf_counter()
    total = args.cancels + args.orders
    for i in range(total):
        symbol = symbols[i % len(symbols)]
        order, _ = order_submit(
            user=trader,
            client_order_id=uuid.uuid4().hex,
            account="ACC-1" if i % 2 else "ACC-2",
            symbol=symbol,
            side="BUY",
            quantity=quantity,
            order_type="LIMIT",
            limit_price=Decimal(SYMBOLS[symbol]),
            venue=VENUE,
        )
        if order.status != "pending_new":
            raise SystemExit(f"order {i} is {order.status} ({order.reject_reason}): compliance or routing refused it")
        order_ids.append(order.pk)
        cl_ord_ids.append(order.cl_ord_id)
    submit_elapsed = time.perf_counter() - started
    print(f"order_submit (in process): {total} orders in {submit_elapsed:.1f}s = {total / submit_elapsed:.0f}/s")
    wait_until(lambda: all(c in venue.orders for c in cl_ord_ids), 120, "every NewOrderSingle at the acceptor")
    cancel_ids, flood_ids = order_ids[: args.cancels], order_ids[args.cancels :]
    flood_cl_ord_ids = cl_ord_ids[args.cancels :]

    # ---- the orders to cancel: acknowledged, never filled
    venue.send_reports(
        [
            report(venue.orders[c], exec_id=f"A-{c}", exec_type="0", cum=0, last=0, price="0")
            for c in cl_ord_ids[: args.cancels]
        ]
    )
    if args.profile_apply:
        wait_until(lambda: InboundMessage.objects.count() == args.cancels, 60, "the acks to be stored")
        inbox_apply(venue_code=VENUE)
    wait_until(
        lambda: Order.objects.filter(pk__in=cancel_ids, status="open").count() == len(cancel_ids),
        120,
        "the orders to cancel to be acknowledged",
    )
    wait_until(lambda: not InboundMessage.objects.filter(applied_at__isnull=True).exists(), 60, "an empty inbox")

    # ---- the web server, warmed (every worker imports its code and connects)
    wait_until(lambda: _answers(web_port), 60, "gunicorn")
    for _ in range(3 * args.web_workers):
        _get(web_port, token, "/api/v1/orders/?page_size=1")

    # ---- the flood, built up front
    bodies = []
    for c in flood_cl_ord_ids:
        bodies.append(report(venue.orders[c], exec_id=f"A-{c}", exec_type="0", cum=0, last=0, price="0"))
    for n in range(1, args.fills + 1):
        for c in flood_cl_ord_ids:
            tags = venue.orders[c]
            bodies.append(report(tags, exec_id=f"F{n}-{c}", exec_type="F", cum=100 * n, last=100, price=tags[44]))
    reports = len(bodies)

    from django.db import connection as conn

    cursor = conn.cursor()

    def db_stats():
        cursor.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return cursor.fetchone()

    args.inbox_before = InboundMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0
    if args.profile_apply:
        profile_stored_inbox(args, venue, bodies, procs)
        return
    flood_done = threading.Event()
    canceller = Canceller(
        port=web_port, token=token, order_ids=cancel_ids, rate=args.cancel_rate, flood_done=flood_done
    )
    canceller.start()
    sampler = Sampler()
    sampler.start()
    stats_before = db_stats()
    time.sleep(0.6)  # a first audit sample before the flood
    activity: collections.Counter = collections.Counter()
    samples = 0
    tasks_before = len(TASK_DONE.findall(worker_log.read_text(errors="replace")))
    canceller.start_event.set()
    first, last_write, wire_bytes = venue.flood(bodies)
    deadline = time.monotonic() + args.timeout
    filled = 0
    progress = []
    while True:
        cursor.execute("SELECT count(*) FROM orders_order WHERE status = 'filled'")
        filled = cursor.fetchone()[0]
        now = time.perf_counter()
        progress.append((now - first, filled))
        if filled >= len(flood_ids):
            break
        cursor.execute(ACTIVITY)
        samples += 1
        for app, state, wait, query in cursor.fetchall():
            role = app.removeprefix("flood-")
            if role == "worker" and state != "idle":
                role = f"worker {classify(query)}"
            activity[(role, state + (f" ({wait})" if wait and state == "active" else ""))] += 1
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {args.timeout:.0f}s: {filled}/{len(flood_ids)} orders filled")
        procs.check_alive()
        time.sleep(POLL)
    done = time.perf_counter()
    flood_done.set()
    stats_after = db_stats()
    elapsed = done - first
    rate = reports / elapsed

    canceller.join(max(10.0, args.cancels / args.cancel_rate + 30))
    # The sealer catching up after the flood.
    caught_up = None
    catch_deadline = time.monotonic() + 30
    while time.monotonic() < catch_deadline:
        if sampler.samples and sampler.samples[-1][0] > done and sampler.samples[-1][2] == 0:
            caught_up = sampler.samples[-1][0] - done
            break
        time.sleep(0.25)
    sampler.stop_event.set()
    sampler.join(5)

    # ---- where the time went, from the inbox rows
    cursor.execute(
        """
        SELECT min(received_at), max(received_at), min(applied_at), max(applied_at),
               count(DISTINCT applied_at),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received_at)),
               max(extract(epoch FROM applied_at - received_at))
        FROM routing_inboundmessage WHERE id > %s
        """,
        [args.inbox_before],
    )
    recv_first, recv_last, applied_first, applied_last, batches, lag_p50, lag_max = cursor.fetchone()
    cursor.execute(
        "SELECT count(*) FROM routing_inboundmessage WHERE id > %s AND applied_at IS NOT NULL", [args.inbox_before]
    )
    stored = cursor.fetchone()[0]
    cursor.execute("SELECT count(*) FROM orders_order WHERE id = ANY(%s) AND status = 'pending_cancel'", [cancel_ids])
    pending_cancel = cursor.fetchone()[0]
    cursor.close()
    conn.close()

    procs.stop()
    # Tasks of the flood (and its cancels), not those of the set-up.
    tasks = [(float(s), int(n)) for s, n in TASK_DONE.findall(worker_log.read_text(errors="replace"))][tasks_before:]

    tps = pgbench_tps(clients=8, jobs=2, seconds=args.pgbench_seconds, scale=10)

    # ---- the figures
    print(f"machine: {os.cpu_count()} cores; worker prefork -c 2; gunicorn {args.web_workers} sync workers")
    print(
        f"flood: {reports} reports ({len(flood_ids)} orders x ack + {args.fills} fills), {wire_bytes / 1e6:.2f} MB, "
        f"written in {(last_write - first) * 1000:.0f} ms"
    )
    print(f"every order filled {elapsed:.2f}s after the first report: {rate:,.0f} reports/s")
    first_filled = next((t for t, n in progress if n >= 1), None)
    if first_filled is not None:
        print(f"  first order seen filled at {first_filled:.2f}s")
    session_span = (recv_last - recv_first).total_seconds()
    print(
        f"  session thread stored {stored} messages from {0:.2f}s to {session_span:.2f}s "
        f"(first received_at to last): {stored / max(session_span, 1e-6):,.0f}/s"
    )
    apply_span = (applied_last - applied_first).total_seconds()
    print(
        f"  applied in {batches} batches, first committed {(applied_first - recv_first).total_seconds():.2f}s after "
        f"the first store, last {(applied_last - recv_first).total_seconds():.2f}s; "
        f"{stored / max(apply_span, 1e-6):,.0f}/s between first and last batch"
    )
    print(f"  stored -> applied per report: p50 {lag_p50:.2f}s, max {lag_max:.2f}s")
    if tasks:
        busy = sum(s for s, _ in tasks)
        print(
            f"  worker log: {len(tasks)} inbox_apply tasks, {sum(n for _, n in tasks)} messages, "
            f"{busy:.2f}s in tasks; longest {max(s for s, _ in tasks):.2f}s; "
            f"{sum(n for _, n in tasks) / max(busy, 1e-6):,.0f} messages per task-second"
        )
    commits = stats_after[0] - stats_before[0]
    print(
        f"  database during the flood: {commits} commits ({commits / elapsed:,.0f}/s), "
        f"{stats_after[1] - stats_before[1]} rollbacks, {stats_after[2] - stats_before[2]} rows inserted, "
        f"{stats_after[3] - stats_before[3]} updated"
    )
    if samples:
        print(f"  pg_stat_activity, {samples} samples every {POLL * 1000:.0f} ms (mean connections per state):")
        for (role, state), count in sorted(activity.items(), key=lambda kv: -kv[1]):
            if state != "idle":
                print(f"    {role:32} {state:32} {count / samples:5.2f}")

    ok = [(s, t, d) for s, t, d in canceller.results if s == 202]
    during = [t for s, t, d in canceller.results if d]
    latencies = sorted(t * 1000 for _, t, _ in canceller.results)
    if latencies:
        print(
            f"cancels: {len(canceller.results)} sent at {args.cancel_rate:g}/s, {len(ok)} answered 202, "
            f"{len(during)} sent while the flood was applied, {pending_cancel} orders pending_cancel, "
            f"{venue.cancel_requests} cancel requests at the acceptor"
        )
        print(
            f"  latency (all): p50 {statistics.median(latencies):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms, "
            f"max {latencies[-1]:.0f} ms"
        )
        if during:
            ordered = sorted(t * 1000 for t in during)
            print(
                f"  latency (during the flood): p50 {statistics.median(ordered):.0f} ms, "
                f"p99 {percentile(ordered, 0.99):.0f} ms, max {ordered[-1]:.0f} ms  (target: p99 < 250 ms)"
            )
    in_flood = [s for s in sampler.samples if first <= s[0] <= done]
    if in_flood:
        print(
            f"audit sealing during the flood ({len(in_flood)} samples): sealed head behind the newest event by "
            f"max {max(s[3] for s in in_flood):.2f}s, at most {max(s[2] for s in in_flood)} events unsealed "
            f"(target: < 5 s); "
            + (f"all sealed {caught_up:.1f}s after the flood" if caught_up is not None else "not all sealed 30 s after")
        )
    print(f"pgbench TPC-B (-c 8 -j 2, scale 10, same server, same run): {tps:,.0f} tps")
    print(f"ratio reports/s : pgbench tps = {rate / tps:.2f}  (target >= 0.5)")


def profile_stored_inbox(args, venue: FloodVenue, bodies: list, procs: Processes) -> None:
    """--profile-apply: the flood stored by the worker's session, then applied here."""
    from _apply_profile import inbox_apply_profiled

    from routing.models import InboundMessage

    first, last_write, wire_bytes = venue.flood(bodies)
    wait_until(
        lambda: procs.check_alive() or InboundMessage.objects.filter(id__gt=args.inbox_before).count() == len(bodies),
        args.timeout,
        "the flood to be stored",
        POLL,
    )
    stored = time.perf_counter() - first
    print(f"flood: {len(bodies)} reports, {wire_bytes / 1e6:.2f} MB, written in {(last_write - first) * 1000:.0f} ms")
    print(f"stored by the worker's session thread within {stored:.2f}s = {len(bodies) / stored:,.0f}/s")
    procs.stop()  # nothing else touches the database while it is applied
    taken, elapsed, breakdown = inbox_apply_profiled(venue_code=VENUE, cprofile=args.profile_apply == "cprofile")
    print(breakdown, end="")
    from orders.models import Order

    filled = Order.objects.filter(status="filled").count()
    print(f"{filled}/{args.orders} orders filled")


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/api/schema/")
        conn.getresponse().read()
        conn.close()
        return True
    except OSError:
        return False


def _get(port: int, token: str, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
    json.loads(body)


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C does


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--fills", type=int, default=4)
    parser.add_argument("--cancels", type=int, default=50)
    parser.add_argument("--cancel-rate", type=float, default=10.0, help="cancel requests a second")
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300, help="seconds the flood may take")
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    parser.add_argument("--db", default=f"oms_bench_flood_{os.getpid()}")
    parser.add_argument(
        "--profile-apply",
        choices=["phases", "cprofile"],
        help="instead of the worker, apply the stored flood in this process and show where the time goes",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker's and gunicorn's logs")
    args = parser.parse_args()
    args.created_db, args.venue, args.worker_log, args.inbox_before = False, None, None, 0

    tmp = Path(tempfile.mkdtemp(prefix="fill_flood-"))
    procs = Processes()
    signal.signal(signal.SIGTERM, _interrupted)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows in a log as it happens
    failed = True
    try:
        run(args, tmp, procs)
        failed = False
    finally:
        procs.stop()
        if args.venue is not None:
            args.venue.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        drop_redis_queue(f"bench-flood-{os.getpid()}")
        if args.created_db:
            subprocess.run(["dropdb", *PG, "--if-exists", "--force", args.db], capture_output=True)
        if failed and args.worker_log is not None and args.worker_log.exists():
            print("--- worker log (last 40 lines) ---", file=sys.stderr)
            print("\n".join(args.worker_log.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
        if args.keep_logs or failed:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
