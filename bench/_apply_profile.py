"""Shared by the benchmarks: ``inbox_apply`` run in this process on a stored inbox, with
where its time goes: wall time and statements per phase (locking and loading a batch,
working out the reports in memory, the bulk writes, the audit insert, marking the inbox)
and, with ``cprofile``, the functions that take the most time.

The phases are measured by wrapping the functions that make them up for the call's
duration; nothing in the product changes."""

from __future__ import annotations

import collections
import cProfile
import io
import pstats
import time
from contextlib import ExitStack
from unittest import mock


def inbox_apply_profiled(*, venue_code: str, cprofile: bool = False, top: int = 25) -> tuple[int, float, str]:
    """Apply the venue's inbox here; returns (messages taken, seconds, the breakdown).

    Under cProfile the batches' time budget is lifted: the profiler's overhead would
    spend it on loading alone, and the batches would shrink to a message or two each
    (each still loading and locking every order of the 500 it read)."""
    from django.db import connection

    from orders.services import inbox as inbox_module
    from orders.services import report_batch
    from orders.services.execution_reports import ReportBatch
    from routing import services as routing_services

    statements = {"count": 0, "seconds": 0.0}
    phases: dict[str, list] = collections.defaultdict(lambda: [0, 0.0, 0, 0.0])  # calls, s, statements, db s

    def count(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements["count"] += 1
            statements["seconds"] += time.perf_counter() - started

    def timed(name, function):
        def wrapper(*args, **kwargs):
            n, db, started = statements["count"], statements["seconds"], time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                phase = phases[name]
                phase[0] += 1
                phase[1] += time.perf_counter() - started
                phase[2] += statements["count"] - n
                phase[3] += statements["seconds"] - db

        return wrapper

    wrapped = [
        (inbox_module, "_inbox_batch_apply", "batch (validate, lock+load, rules, writes)"),
        (inbox_module, "report_validate", "  report_validate (parse tags)"),
        (report_batch.BatchState, "_load", "  lock + load orders, requests, executions"),
        (ReportBatch, "apply", "  rules, in memory (per report)"),
        (ReportBatch, "event", "  fix.received event built (per report)"),
        (report_batch.BatchState, "flush", "  flush: bulk writes"),
        (report_batch, "audit_events_record", "    of which the audit insert"),
        (routing_services, "inbox_messages_mark_applied", "  inbox rows marked applied"),
    ]
    profiler = cProfile.Profile() if cprofile else None
    with ExitStack() as stack:
        for owner, attribute, name in wrapped:
            stack.enter_context(mock.patch.object(owner, attribute, timed(name, getattr(owner, attribute))))
        stack.enter_context(connection.execute_wrapper(count))
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        options = {"time_budget": 3600.0} if cprofile else {}
        taken = inbox_module.inbox_apply(venue_code=venue_code, **options)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started

    out = io.StringIO()
    note = " (under cProfile, no batch time budget: Python inflated)" if profiler is not None else ""
    out.write(
        f"inbox_apply in process{note}: {taken} messages in {elapsed:.2f}s = {taken / elapsed:,.0f}/s, "
        f"{statements['count']} statements ({statements['count'] / max(taken, 1):.2f} per message), "
        f"{statements['seconds']:.2f}s waiting on the database ({statements['seconds'] / elapsed:.0%})\n"
    )
    out.write(f"  {'phase':46} {'calls':>6} {'seconds':>8} {'share':>6} {'stmts':>6} {'db s':>6}\n")
    for _, _, name in wrapped:
        calls, seconds, count_, db = phases.get(name, (0, 0.0, 0, 0.0))
        out.write(f"  {name:46} {calls:6} {seconds:8.2f} {seconds / elapsed:6.0%} {count_:6} {db:6.2f}\n")
    if profiler is not None:
        stats = io.StringIO()
        pstats.Stats(profiler, stream=stats).sort_stats("tottime").print_stats(top)
        out.write(stats.getvalue())
    return taken, elapsed, out.getvalue()
