"""Hosting FIX sessions in Celery workers (DESIGN §7).

A FIX session is not a Celery task (Celery redelivers long tasks): each worker process
runs a ``SessionHost`` beside its consumer (a bootstep, ``routing.worker``). The host
starts one thread per enabled venue; the thread contends for the venue's lease and,
while it holds it, connects, logs on and runs the session: reads the socket, ticks the
timers, drains the venue's outbox, renews the lease, and carries out operator requests.

Exactly one worker holds a venue: the lease lives on the session row (holder, fencing
token, expiry in database time). Every store write and every send is fenced by it, so
a holder that stalled past its lease can no longer stamp, store or send anything. A
dead holder's lease expires after ``OMS_FIX_LEASE_TTL`` seconds and a contender (they
poll every ``OMS_FIX_LEASE_POLL`` s) takes over: within TTL + poll + connect.

What arrives is stored in the inbox by the session, the application messages of each
received chunk in one transaction with the sequence number
(``DbStore.accept_inbound_batch``), and applied by the ``orders.tasks.inbox_apply``
task, enqueued by name after the commit: routing never imports orders.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
import uuid
import weakref

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from oms_site.celery import app as celery_app

from . import selectors, services
from .fix.framing import Frame, Framer
from .fix.session import FixSession, Role, SessionConfig
from .models import VenueSession
from .services import LeaseLost
from .store import DbStore

logger = logging.getLogger(__name__)

INBOX_APPLY_TASK = "orders.tasks.inbox_apply"
VENUE_RECONCILE_TASK = "orders.tasks.venue_reconcile"
END_OF_DAY_TASK = "orders.tasks.end_of_day"
ROUTE_WAIT_EXPIRE_TASK = "orders.tasks.route_wait_expire"
BACKOFF_MAX = 30.0
OUTBOX_BATCH = 200
CLEAN_ENDS = frozenset({"logout confirmed"})


# Every venue socket this process opened. A prefork pool child inherits them with the
# fork; it must close its copies (``close_inherited_venue_sockets``) or, should the
# parent die, the child would keep the venue's TCP connection open and the venue might
# refuse the next holder's logon.
_VENUE_SOCKETS: weakref.WeakSet[socket.socket] = weakref.WeakSet()


def close_inherited_venue_sockets() -> int:
    """In a forked child: close the child's copies of the parent's venue sockets (the
    parent's connections stay up: no shutdown, no Logout)."""
    closed = 0
    for sock in list(_VENUE_SOCKETS):
        try:
            sock.close()
            closed += 1
        except OSError:
            pass
    _VENUE_SOCKETS.clear()
    return closed


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def enqueue(task_name: str, **kwargs) -> None:
    """Enqueue a task by name (eager in tests when CELERY_TASK_ALWAYS_EAGER). A failure
    to enqueue loses nothing: the inbox sweep finds what was not applied."""
    try:
        celery_app.signature(task_name, kwargs=kwargs).apply_async()
    except Exception:
        logger.exception("could not enqueue %s %s", task_name, kwargs)


def inbox_sweep(submit=None) -> list[str]:
    """Enqueue applying for every venue with unapplied inbox messages (a worker that
    died between storing a message and enqueueing its task)."""
    codes = selectors.venue_codes_with_unapplied_inbox()
    for code in codes:
        (submit or enqueue)(INBOX_APPLY_TASK, venue_code=code)
    return codes


class _Dispatcher:
    """Enqueues the host's tasks from a thread of its own. Publishing can block for as
    long as the broker hangs (kombu's Redis transport has no socket timeout by
    default), and a FIX session must never wait on the broker: it would stop
    heartbeating, sending and renewing its lease while still holding the venue's
    connection. Requests for the same task and arguments coalesce while they wait;
    one never enqueued is found by the inbox sweep."""

    def __init__(self, name: str) -> None:
        self._pending: dict[tuple, tuple[str, dict]] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> _Dispatcher:
        self._thread.start()
        return self

    def submit(self, task_name: str, **kwargs) -> None:
        if celery_app.conf.task_always_eager:
            enqueue(task_name, **kwargs)  # runs the task here and now: no broker to wait on
            return
        with self._cond:
            if not self._stopped:
                self._pending.setdefault((task_name, tuple(sorted(kwargs.items()))), (task_name, kwargs))
                self._cond.notify()

    def stop(self, *, flush: bool, timeout: float) -> None:
        with self._cond:
            self._stopped = True
            if not flush:
                self._pending.clear()
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._stopped:
                        self._cond.wait()
                    if not self._pending:
                        return
                    task_name, kwargs = self._pending.pop(next(iter(self._pending)))
                close_old_connections()  # eager tasks (tests) use this thread's connection
                enqueue(task_name, **kwargs)
        finally:
            connection.close()


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Wait for the socket to be readable (data, EOF or error). poll(2), not select(2):
    a busy worker's descriptors go past select's limit of 1024."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(timeout * 1000))


class _Transport:
    """The socket as the FIX session sees it. PossDup resends and gap fills bypass the
    message store, so they are logged here."""

    def __init__(self, sock: socket.socket, runner: VenueRunner) -> None:
        self.sock = sock
        self.runner = runner

    def write(self, raw: bytes) -> None:
        if b"\x0143=Y\x01" in raw:
            self.runner.log_resend(raw)
        self.sock.sendall(raw)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class VenueRunner(threading.Thread):
    """One venue: contend for its lease, and while holding it run its session."""

    def __init__(self, host: SessionHost, venue_id: int, code: str) -> None:
        super().__init__(name=f"fix-{code}", daemon=True)
        self.host = host
        self.venue_id = venue_id
        self.code = code
        self.token: int | None = None
        self.session: FixSession | None = None
        self.store: DbStore | None = None
        self.sock: socket.socket | None = None
        self.backoff = 1.0
        self.next_attempt = 0.0
        self.blocked = ""  # why we do not connect: fatal, stopped, disabled
        self.retired = False
        self.venue = None  # the venue's settings as of the last poll (its schedule)
        self._reset_next_logon = False  # an operator reset: the next Logon asks the venue to reset too
        self._apply_due = False
        self._stop_event = threading.Event()
        self._release = True
        self._inbound_framer = Framer()

    # -------------------------------------------------------------------- control
    def stop(self, *, release: bool = True) -> None:
        """``release=False`` leaves like a crash: no Logout, lease left to expire."""
        self._release = release
        self._stop_event.set()

    @property
    def holds_lease(self) -> bool:
        return self.token is not None

    @property
    def is_logged_on(self) -> bool:
        return self.session is not None and self.session.is_active

    def run(self) -> None:
        try:
            while not self._stop_event.is_set() and not self.retired:
                close_old_connections()
                try:
                    token = services.session_lease_acquire(
                        venue_id=self.venue_id, holder=self.host.holder_id, ttl=self.host.lease_ttl
                    )
                except Exception:
                    logger.exception("FIX %s: lease acquisition failed", self.code)
                    token = None
                if token is None:
                    self._stop_event.wait(self.host.lease_poll)
                    continue
                self.token = token
                try:
                    self._hold()
                except LeaseLost as exc:
                    logger.warning("FIX %s: %s; stopping at once", self.code, exc)
                except Exception as exc:
                    logger.exception("FIX %s: session host error", self.code)
                    self._record_error(f"host error: {exc!r}")
                finally:
                    try:
                        self._close_socket()  # tells the session, which writes its status
                    except Exception:
                        # The database is why we got here, often: the thread must live on.
                        logger.exception("FIX %s: error closing the session", self.code)
                    if self._release or self.retired:
                        self._release_lease()
                    self.token = None
                    self.session = None
                    self.store = None
                if not self._stop_event.is_set():
                    self._stop_event.wait(self.host.lease_poll)
        finally:
            connection.close()

    # ------------------------------------------------------------- holding a lease
    def _hold(self) -> None:
        assert self.token is not None
        renew_every = self.host.lease_renew
        next_renew = time.monotonic() + renew_every
        next_poll = 0.0
        # The backoff carries over from an earlier hold that failed; a logon resets it.
        while not self._stop_event.is_set():
            now = time.monotonic()
            if now >= next_renew:
                services.session_lease_renew(
                    venue_id=self.venue_id, holder=self.host.holder_id, token=self.token, ttl=self.host.lease_ttl
                )
                next_renew = now + renew_every
            if now >= next_poll:
                self._poll_row()
                if self.retired:
                    return
                next_poll = now + self.host.lease_poll
            if self.sock is None:
                if self.blocked or now < self.next_attempt or not self._in_session():
                    self._stop_event.wait(0.1)
                    continue
                self._connect()
                continue
            if not self._in_session():
                self._end_session()
                continue
            self._pump(now)
        # A clean stop: log out politely while we still hold the lease.
        if self._release and self.session is not None and self.session.transport is not None:
            self._logout_and_wait("worker shutting down")

    def _poll_row(self) -> None:
        """Settings, operator requests and stop flags, once a second."""
        session_row = selectors.venue_session_get(venue_id=self.venue_id)
        venue = session_row.venue if session_row else None
        if venue is None or not venue.enabled:
            logger.info("FIX %s: venue disabled; logging out and releasing", self.code)
            if self.sock is not None:
                self._logout_and_wait("venue disabled")
            self.retired = True
            return
        self.venue = venue
        action = services.session_action_pending(venue_id=self.venue_id, holder=self.host.holder_id, token=self.token)
        if action is not None:
            self._carry_out(action)
            services.session_action_done(
                venue_id=self.venue_id, holder=self.host.holder_id, token=self.token, taken=action
            )
            session_row = selectors.venue_session_get(venue_id=self.venue_id)
        self.blocked = "fatal" if session_row.fatal else "stopped" if session_row.stopped else ""

    def _in_session(self) -> bool:
        """Inside the venue's session schedule (no schedule: always)."""
        return self.venue is None or self.venue.schedule.is_open(timezone.now())

    def _end_session(self) -> None:
        """The schedule's end: log out, and close the venue's day (its DAY orders)."""
        logger.info("FIX %s: end of session (%s); logging out", self.code, self.venue.schedule.describe())
        self._logout_and_wait("end of session")
        self.host.dispatcher.submit(END_OF_DAY_TASK, venue_code=self.code)

    def _carry_out(self, action: VenueSession) -> None:
        logger.info(
            "FIX %s: operator request %s by %s: %s",
            self.code,
            action.requested_action,
            action.requested_by,
            action.requested_reason,
        )
        if action.requested_action == VenueSession.Action.DISCONNECT:
            if self.sock is not None:
                self._logout_and_wait(f"disconnected by operator {action.requested_by}")
        elif action.requested_action == VenueSession.Action.RECONNECT:
            if self.sock is not None:
                self._logout_and_wait(f"reconnect requested by operator {action.requested_by}")
            self.backoff, self.next_attempt = 1.0, 0.0
        elif action.requested_action == VenueSession.Action.RESET_SEQUENCE:
            # Both sides start again at 1: never inside a running session.
            if self.sock is not None:
                self._logout_and_wait(f"sequence reset by operator {action.requested_by}")
            store = self.store or DbStore(
                venue_id=self.venue_id, holder=self.host.holder_id, token=self.token, lease_ttl=self.host.lease_ttl
            )
            store.reset()
            self._reset_next_logon = True
            self.backoff, self.next_attempt = 1.0, 0.0
        elif action.requested_action == VenueSession.Action.SET_SEQUENCE:
            store = self.store or DbStore(
                venue_id=self.venue_id, holder=self.host.holder_id, token=self.token, lease_ttl=self.host.lease_ttl
            )
            if action.requested_sender_seq:
                store.set_next_sender_seq(action.requested_sender_seq)
            if action.requested_target_seq:
                store.set_next_target_seq(action.requested_target_seq)
            self.backoff, self.next_attempt = 1.0, 0.0

    def _connect(self) -> None:
        row = selectors.venue_session_get(venue_id=self.venue_id)
        venue = row.venue
        # The first logon of a scheduled session starts the sequence numbers again, on
        # both sides (ResetSeqNumFlag=Y), as FIX engines do at the session start time.
        started = venue.schedule.current_start(timezone.now())
        new_session = started is not None and row.session_started_at != started
        self.next_attempt = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        try:
            sock = self.open_connection(venue.host, venue.port)
        except OSError as exc:
            logger.warning("FIX %s: connect to %s:%s failed: %s", self.code, venue.host, venue.port, exc)
            self._record_error(f"connect to {venue.host}:{venue.port} failed: {exc}")
            return
        sock.settimeout(5.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._inbound_framer = Framer()
        self.store = DbStore(
            venue_id=self.venue_id, holder=self.host.holder_id, token=self.token, lease_ttl=self.host.lease_ttl
        )
        self.session = FixSession(
            config=SessionConfig(
                begin_string=venue.fix_version,
                sender_comp_id=venue.sender_comp_id,
                target_comp_id=venue.target_comp_id,
                heartbeat_interval=venue.heartbeat_interval,
                role=Role.INITIATOR,
                reset_on_logon=venue.reset_on_logon or new_session or self._reset_next_logon,
            ),
            store=self.store,
            app=self,
        )
        services.session_status_set(
            venue_id=self.venue_id, holder=self.host.holder_id, token=self.token, status=VenueSession.Status.CONNECTING
        )
        logger.info("FIX %s: connected to %s:%s, logging on", self.code, venue.host, venue.port)
        self.session.connection_made(_Transport(sock, self), time.monotonic())
        self._reset_next_logon = False
        if new_session:
            logger.info("FIX %s: new session since %s: sequence numbers reset", self.code, started.isoformat())
            services.session_fenced_update(
                venue_id=self.venue_id, holder=self.host.holder_id, token=self.token, session_started_at=started
            )

    def open_connection(self, host: str, port: int) -> socket.socket:
        # Short enough that the lease is renewed in time even when the venue hangs.
        sock = socket.create_connection((host, port), timeout=min(2.0, self.host.lease_renew))
        _VENUE_SOCKETS.add(sock)
        return sock

    def _pump(self, now: float) -> None:
        """One turn: read what arrived, run the timers, send what is queued."""
        session, sock = self.session, self.sock
        try:
            if _readable(sock, self.host.select_timeout):
                data = sock.recv(65536)
                if not data:
                    session.transport = None
                    session.connection_lost("connection closed by the venue")
                else:
                    self._receive_chunk(data)
            if session.transport is not None:
                session.tick(time.monotonic())
            if session.is_active:
                self._drain_outbox()
        except LeaseLost:
            raise
        except OSError as exc:
            if session.transport is not None:
                session.transport = None
                session.connection_lost(f"socket error: {exc}")
        finally:
            self._apply_if_due()
        if session.transport is None:
            self._close_socket()

    def _drain_outbox(self) -> None:
        for message_id in selectors.outbox_pending_ids(venue_id=self.venue_id, limit=OUTBOX_BATCH):
            if not self.is_logged_on or self._stop_event.is_set():
                return
            try:
                raw = services.outbox_message_stamp(
                    venue_id=self.venue_id,
                    holder=self.host.holder_id,
                    token=self.token,
                    message_id=message_id,
                    prepare=self.session.prepare_app,
                )
            except Exception:
                self.store.reload()  # the stamp rolled back: so do the cached numbers
                raise
            if raw is not None:
                self.write_prepared(raw)

    def _apply_if_due(self) -> None:
        if self._apply_due:
            self._apply_due = False
            self.host.dispatcher.submit(INBOX_APPLY_TASK, venue_code=self.code)

    def write_prepared(self, raw: bytes) -> None:
        """After the commit: the only place an application message hits the socket."""
        self.session.write_prepared(raw, time.monotonic())

    def _logout_and_wait(self, text: str, wait: float = 2.0) -> None:
        session = self.session
        if session is None or session.transport is None:
            self._close_socket()
            return
        try:
            session.logout(text, time.monotonic())
            deadline = time.monotonic() + wait
            while session.transport is not None and time.monotonic() < deadline:
                if _readable(self.sock, 0.05):
                    data = self.sock.recv(65536)
                    if not data:
                        break
                    self._receive_chunk(data)
        except OSError:
            pass
        finally:
            # Reports that came in before the venue's Logout: no _pump turn follows.
            self._apply_if_due()
        if session.transport is not None:
            session.disconnect(text)
        self._close_socket()

    def _close_socket(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        if self.session is not None and self.session.transport is not None:
            self.session.transport = None
            self.session.connection_lost("socket closed")

    def _release_lease(self) -> None:
        if self.token is None:
            return
        try:
            services.session_lease_release(venue_id=self.venue_id, holder=self.host.holder_id, token=self.token)
        except Exception:
            logger.exception("FIX %s: could not release the lease (it will expire)", self.code)

    def _record_error(self, error: str) -> None:
        try:
            services.session_error_record(
                venue_id=self.venue_id, holder=self.host.holder_id, token=self.token, error=error
            )
        except Exception:
            logger.exception("FIX %s: could not record an error", self.code)

    # -------------------------------------------------------------- message logs
    def _receive_chunk(self, data: bytes) -> None:
        """What one recv returned: cut into frames and parsed once, logged raw, then
        handed to the session (which stores the chunk's application messages)."""
        frames = self._inbound_framer.feed(data)
        self._log_inbound(frames)
        self.session.frames_received(frames, time.monotonic())

    def _log_inbound(self, frames: list[Frame]) -> None:
        logged = []
        for frame in frames:
            seq = msg_type = None
            if frame.message is not None:
                seq_text = (frame.message.get(34) or b"").decode("latin-1")
                seq = int(seq_text) if seq_text.isdigit() else None
                msg_type = (frame.message.get(35) or b"").decode("latin-1")
            logged.append((seq, msg_type or "", frame.raw))
        if logged:
            services.fix_messages_log_inbound(
                venue_id=self.venue_id, epoch=self.store.target_epoch if self.store else 0, frames=logged
            )

    def log_resend(self, raw: bytes) -> None:
        seq = msg_type = None
        for part in raw.split(b"\x01"):
            if part.startswith(b"34="):
                seq = int(part[3:])
            elif part.startswith(b"35="):
                msg_type = part[3:].decode("latin-1")
        services.fix_message_log_resend(
            venue_id=self.venue_id,
            epoch=self.store.sender_epoch if self.store else 0,
            seq=seq,
            msg_type=msg_type or "",
            raw=raw,
        )

    # ------------------------------------------------- FixSession's Application API
    def on_logon(self, session: FixSession) -> None:
        logger.info("FIX %s: logged on (holder %s, token %s)", self.code, self.host.holder_id, self.token)
        self.backoff, self.next_attempt = 1.0, 0.0
        services.session_status_set(
            venue_id=self.venue_id,
            holder=self.host.holder_id,
            token=self.token,
            status=VenueSession.Status.CONNECTED,
            logon=True,
        )
        # Healthy again: the error shown on the session goes (it stays on the audit trail).
        services.session_error_clear(venue_id=self.venue_id, holder=self.host.holder_id, token=self.token)
        # Ask the venue for the status of everything still working there.
        self.host.dispatcher.submit(VENUE_RECONCILE_TASK, venue_code=self.code)

    def on_logout(self, session: FixSession, reason: str) -> None:
        logger.info("FIX %s: session ended: %s", self.code, reason)
        venue = self.venue
        if venue is not None and (venue.reset_on_disconnect or (venue.reset_on_logout and reason in CLEAN_ENDS)):
            try:
                session.store.reset()
                logger.info("FIX %s: sequence numbers reset after the session ended (venue setting)", self.code)
            except LeaseLost:
                logger.warning("FIX %s: lease lost; the sequence reset is left to the next holder", self.code)
        services.session_status_set(
            venue_id=self.venue_id,
            holder=self.host.holder_id,
            token=self.token,
            status=VenueSession.Status.DISCONNECTED,
            error=None if reason in CLEAN_ENDS else reason,
        )

    def on_app_message(self, session: FixSession, seq: int, msg_type: str, fields: list[tuple[int, str]]) -> None:
        # Already stored and committed with its chunk: one task per received chunk.
        self._apply_due = True

    def on_reject(self, session: FixSession, fields: list[tuple[int, str]]) -> None:
        services.session_reject_record(venue_id=self.venue_id, msg_type="3", fields=fields)

    def on_fatal(self, session: FixSession, reason: str) -> None:
        self.blocked = "fatal"
        services.session_fatal_mark(venue_id=self.venue_id, holder=self.host.holder_id, token=self.token, reason=reason)


class SessionHost:
    """Hosts the FIX sessions of all enabled venues in this process."""

    runner_class = VenueRunner

    def __init__(
        self,
        *,
        holder_id: str | None = None,
        lease_ttl: float | None = None,
        lease_renew: float | None = None,
        lease_poll: float | None = None,
        discover_every: float = 5.0,
        sweep_every: float | None = None,
        select_timeout: float = 0.05,
    ) -> None:
        self.holder_id = holder_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ttl = lease_ttl or _setting("OMS_FIX_LEASE_TTL", 6.0)
        self.lease_renew = lease_renew or _setting("OMS_FIX_LEASE_RENEW", 2.0)
        self.lease_poll = lease_poll or _setting("OMS_FIX_LEASE_POLL", 1.0)
        self.sweep_every = sweep_every or _setting("OMS_FIX_INBOX_SWEEP", 60.0)
        self.route_wait = _setting("OMS_ROUTE_WAIT_SECONDS", 60.0)
        self.end_of_day_every = _setting("OMS_END_OF_DAY_EVERY", 60.0)
        self.discover_every = discover_every
        self.select_timeout = select_timeout
        self.runners: dict[int, VenueRunner] = {}
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self.dispatcher = _Dispatcher(f"fix-enqueue-{self.holder_id}")

    def start(self) -> SessionHost:
        celery_app.loader.import_default_modules()  # register tasks so eager mode finds them
        self.dispatcher.start()
        self._thread = threading.Thread(target=self._run, name=f"fix-host-{self.holder_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, release: bool = True, timeout: float = 10.0) -> None:
        """``release=False`` simulates a crash: sockets dropped, leases left to expire."""
        self._stop_event.set()
        for runner in list(self.runners.values()):
            runner.stop(release=release)
        current = threading.current_thread()
        for runner in list(self.runners.values()):
            if runner is not current:
                runner.join(timeout)
        if self._thread is not None and self._thread is not current:
            self._thread.join(timeout)
        # A crash loses what was not enqueued yet (the sweep finds it); a clean stop
        # hands it over if the broker lets it.
        self.dispatcher.stop(flush=release, timeout=timeout)

    def runner(self, code: str) -> VenueRunner | None:
        return next((r for r in self.runners.values() if r.code == code), None)

    def _run(self) -> None:
        logger.info("FIX session host %s starting", self.holder_id)
        next_sweep = next_day_check = 0.0
        try:
            while not self._stop_event.is_set():
                close_old_connections()
                try:
                    self._discover()
                    if time.monotonic() >= next_sweep:
                        inbox_sweep(self.dispatcher.submit)
                        next_sweep = time.monotonic() + self.sweep_every
                    if selectors.outbox_waiting_overdue_exists(wait_seconds=self.route_wait):
                        self.dispatcher.submit(ROUTE_WAIT_EXPIRE_TASK)
                    if time.monotonic() >= next_day_check:
                        self.dispatcher.submit(END_OF_DAY_TASK)
                        next_day_check = time.monotonic() + self.end_of_day_every
                except Exception:
                    logger.exception("FIX session host %s: housekeeping failed", self.holder_id)
                self._stop_event.wait(self.discover_every)
        finally:
            connection.close()

    def _discover(self) -> None:
        for venue_id, code in selectors.venues_to_host():
            runner = self.runners.get(venue_id)
            if runner is None or not runner.is_alive():
                runner = self.runner_class(self, venue_id, code)
                self.runners[venue_id] = runner
                runner.start()
