"""Review of FIX session hosting under races and faults: a broker that hangs, a
database error while a session is torn down. Real TCP on localhost, real threads,
commits for real (``transaction=True``)."""

from __future__ import annotations

import os
import select
import socket
import threading
import time

import pytest
from django.db import OperationalError

from oms_site.celery import app as celery_app
from routing import services
from routing.fix.session import FixSession
from routing.models import InboundMessage, Venue, VenueSession

from .fix_acceptor import ScriptedVenue, _Transport
from .test_hosting import (  # noqa: F401 (fixtures)
    acceptor,
    connected,
    order_status,
    post_order,
    session_row,
    sim,
    wait_for,
)

pytestmark = pytest.mark.postgres
live = pytest.mark.django_db(transaction=True)


class SilentServer:
    """Accepts TCP connections and never answers: a hung Redis, or a broker behind a
    network partition (kombu's Redis transport has no socket timeout by default)."""

    def __init__(self) -> None:
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)  # read nothing, answer nothing

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._server.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def hung_broker(hosts):  # noqa: F811 (after ``hosts``: torn down before the hosts stop)
    server = SilentServer()
    conf = celery_app.conf
    saved = (conf.broker_url, conf.task_always_eager, celery_app._pool, celery_app.amqp._producer_pool)
    conf.broker_url = f"redis://127.0.0.1:{server.port}/0"
    conf.task_always_eager = False
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    yield server
    server.stop()
    conf.broker_url, conf.task_always_eager, celery_app._pool, celery_app.amqp._producer_pool = saved


@live
def test_a_hung_broker_does_not_stall_the_fix_session(acceptor, sim, hosts, hung_broker, api, account, aapl):  # noqa: F811
    host = hosts(holder_id="broker-hung")
    wait_for(lambda: connected(sim), what="logon")  # the logon enqueues the reconciliation
    token = session_row(sim).fencing_token

    order = post_order(api, account, aapl)
    # The order still goes out and its reports are still stored, though no task can be
    # enqueued: the session thread never waits on the broker.
    wait_for(lambda: len(acceptor.app_messages("D")) == 1, timeout=5, what="the NewOrderSingle sent")
    assert acceptor.app_messages("D")[0][2][11] == order.cl_ord_id
    time.sleep(8)  # past the lease TTL: the holder kept renewing, nobody took over
    row = session_row(sim)
    assert (row.holder, row.fencing_token, row.status) == (host.holder_id, token, VenueSession.Status.CONNECTED)
    assert host.runner("SIM").is_logged_on
    second = post_order(api, account, aapl)
    wait_for(lambda: len(acceptor.app_messages("D")) == 2, timeout=5, what="the next NewOrderSingle sent")
    assert acceptor.app_messages("D")[1][2][11] == second.cl_ord_id
    assert acceptor.connections == 1


@live
def test_a_database_error_while_tearing_a_session_down_does_not_kill_its_thread(
    eager,  # noqa: F811
    acceptor,  # noqa: F811
    sim,  # noqa: F811
    hosts,  # noqa: F811
    monkeypatch,
):
    # Nobody replaces a dead runner during this test: its own thread must survive.
    host = hosts(holder_id="db-blip", discover_every=60)
    wait_for(lambda: connected(sim), what="logon")
    runner = host.runner("SIM")

    # A database blip: the lease renewal fails, and so does the status write while the
    # session is torn down.
    real_renew, real_status = services.session_lease_renew, services.session_status_set
    failures = {"renew": 1, "status": 1}

    def renew(**kwargs):
        if failures["renew"]:
            failures["renew"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return real_renew(**kwargs)

    def status_set(**kwargs):
        if failures["status"] and kwargs["status"] == VenueSession.Status.DISCONNECTED:
            failures["status"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return real_status(**kwargs)

    monkeypatch.setattr(services, "session_lease_renew", renew)
    monkeypatch.setattr(services, "session_status_set", status_set)
    wait_for(lambda: not failures["renew"] and not failures["status"], timeout=5, what="the blip")

    # The same runner gives the lease back and logs on again once the database is back.
    wait_for(lambda: acceptor.logons == 2 and connected(sim), timeout=10, what="the session back up")
    assert runner.is_alive() and host.runner("SIM") is runner
    assert session_row(sim).holder == host.holder_id


class PollingVenue(ScriptedVenue):
    """The scripted venue, waiting on its connection with poll(2): it works with any
    file descriptor number."""

    def _run_connection(self, conn: socket.socket) -> None:
        with self.lock:
            self.session = FixSession(config=self.config, store=self.store, app=self)
            self.session.connection_made(_Transport(conn), time.monotonic())
        session = self.session
        poller = select.poll()
        poller.register(conn, select.POLLIN)
        while not self._stop.is_set() and session.transport is not None:
            try:
                if poller.poll(50):
                    data = conn.recv(65536)
                    with self.lock:
                        if not data:
                            session.connection_lost("closed by the OMS")
                            break
                        session.data_received(data, time.monotonic())
                with self.lock:
                    session.tick(time.monotonic())
            except OSError:
                with self.lock:
                    if session.transport is not None:
                        session.connection_lost("socket error")
                break
        conn.close()


@live
def test_a_session_works_on_a_socket_numbered_above_1023(eager, hosts, api, account, aapl):  # noqa: F811
    # A busy worker process (prefork pipes, database and broker connections, many
    # venues) has file descriptors past select(2)'s limit of 1024.
    venue_side = PollingVenue().start()
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        sim = Venue.objects.create(
            code="SIM", host="127.0.0.1", port=venue_side.port, sender_comp_id="OMS", target_comp_id="SIM"
        )
        host = hosts(holder_id="many-fds")
        # Orders route only to a logged-on venue once a worker has contended for it.
        wait_for(lambda: connected(sim), what="logon")
        order = post_order(api, account, aapl)
        wait_for(lambda: order_status(order) == "filled", what="the fill applied")
        assert host.runner("SIM").sock.fileno() > 1023
        assert venue_side.connections == 1 and not session_row(sim).last_error
    finally:
        for fd in filler:
            os.close(fd)
        venue_side.stop()


@live
def test_a_fill_received_during_the_logout_handshake_is_applied_at_once(
    eager,  # noqa: F811
    acceptor,  # noqa: F811
    sim,  # noqa: F811
    hosts,  # noqa: F811
    api,
    account,
    aapl,
):
    acceptor.fill = False
    hosts(holder_id="logging-out")  # the inbox sweep runs once a minute
    wait_for(lambda: connected(sim), what="logon")
    order = post_order(api, account, aapl)
    wait_for(lambda: order_status(order) == "open", what="the ack")

    # The venue fills the order just before it answers our Logout.
    answer_logout = acceptor.session._on_logout

    def fill_then_answer(now):
        acceptor.execution(order.cl_ord_id, exec_type="F", ord_status="2", cum=100, last_px="175.50")
        answer_logout(now)

    acceptor.session._on_logout = fill_then_answer
    services.session_action_request(venue=sim, action="disconnect", actor="ops", reason="test")
    wait_for(lambda: InboundMessage.objects.filter(venue=sim, msg_type="8").count() == 2, what="the fill stored")
    wait_for(lambda: order_status(order) == "filled", timeout=5, what="the fill applied")


def test_a_forked_pool_child_closes_its_copies_of_the_venue_sockets():
    """Prefork pool children inherit the parent's venue sockets; the worker_process_init
    hook closes the child's copies and leaves the parent's connection up."""
    import os
    import socket

    from routing import hosting

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    hosting._VENUE_SOCKETS.add(client)
    accepted, _ = server.accept()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the pool child
        try:
            closed = hosting.close_inherited_venue_sockets()
            os.write(write_end, b"%d %d" % (closed, client.fileno()))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    closed, child_fileno = os.read(read_end, 100).split()
    assert int(closed) == 1 and int(child_fileno) == -1
    # The parent's connection is still up: data still flows both ways.
    client.sendall(b"ping")
    assert accepted.recv(4) == b"ping"
    for s in (client, accepted, server):
        s.close()
    hosting._VENUE_SOCKETS.discard(client)
