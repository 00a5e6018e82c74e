"""The reference data a check reads (settings, kill switches, restricted and watch
lists) is held per process by version (``compliance.references``): a change is seen
by the next check whichever way it was written and whichever connection wrote it, a
rolled-back change is never seen, and a warm check reads none of those tables."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from compliance.models import KillSwitch, RestrictedEntry, RuleSetting, WatchEntry
from compliance.references import references_current

from .conftest import now, rule_set

pytestmark = pytest.mark.postgres

TABLES = ("compliance_rulesetting", "compliance_killswitch", "compliance_restrictedentry", "compliance_watchentry")


def blocked_by(what_if) -> list[str]:
    return sorted(r.rule for r in what_if().results if r.outcome == "block")


@pytest.mark.django_db
def test_a_change_is_seen_by_the_next_check_and_a_rolled_back_one_never(what_if, aapl):
    assert blocked_by(what_if) == []
    with pytest.raises(RuntimeError), transaction.atomic():
        RestrictedEntry.objects.create(security=aapl, reason="MNPI", effective_from=now() - dt.timedelta(minutes=1))
        assert blocked_by(what_if) == ["restricted_list"]  # its own transaction sees it
        raise RuntimeError("roll back")
    assert blocked_by(what_if) == []

    RestrictedEntry.objects.create(security=aapl, reason="MNPI", effective_from=now() - dt.timedelta(minutes=1))
    assert blocked_by(what_if) == ["restricted_list"]
    RestrictedEntry.objects.update(effective_to=now() - dt.timedelta(seconds=1))  # a bulk update, no save()
    assert blocked_by(what_if) == []


@pytest.mark.django_db
def test_settings_kill_switches_and_lists_written_any_way_are_seen(what_if, aapl, account):
    rule_set("max_order_quantity", threshold=10)
    assert blocked_by(what_if) == ["max_order_quantity"]
    RuleSetting.objects.filter(rule="max_order_quantity").update(enabled=False)
    assert blocked_by(what_if) == []

    switch = KillSwitch.objects.create(scope="account", target=account.code, reason="drill")
    assert blocked_by(what_if) == ["kill_switch"]
    KillSwitch.objects.filter(pk=switch.pk).update(released_at=now())
    assert blocked_by(what_if) == []

    WatchEntry.objects.create(issuer=aapl.issuer.lower(), reason="research", effective_from=now())
    warned = [r for r in what_if().results if r.rule == "watch_list"]
    assert [(r.outcome, r.internal) for r in warned] == [("warn", True)]  # issuer matched case-insensitively
    WatchEntry.objects.all().delete()
    assert [r.outcome for r in what_if().results if r.rule == "watch_list"] == ["pass"]


@pytest.mark.django_db
def test_an_entry_that_starts_later_comes_in_force_without_a_change(what_if, aapl):
    # The copy holds entries that are not in force yet; time alone brings them in.
    starts = now() + dt.timedelta(seconds=1)
    RestrictedEntry.objects.create(security=aapl, reason="deal", effective_from=starts)
    assert blocked_by(what_if) == []
    time.sleep(max((starts - now()).total_seconds(), 0) + 0.05)
    assert blocked_by(what_if) == ["restricted_list"]


@pytest.mark.django_db
def test_a_warm_check_reads_none_of_the_reference_tables(what_if):
    what_if()  # loads this version's copy
    with CaptureQueriesContext(connection) as queries:
        what_if()
    sql = [q["sql"] for q in queries.captured_queries]
    assert [s for s in sql if any(f'"{t}"' in s for t in TABLES)] == []
    assert sum("compliance_reference_version" in s for s in sql) == 1


@pytest.mark.django_db
def test_every_write_to_the_tables_moves_the_version(aapl):
    def version() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version FROM compliance_reference_version")
            return cursor.fetchone()[0]

    seen = [version()]
    rule_set("max_order_quantity", threshold=10)
    seen.append(version())
    KillSwitch.objects.create(scope="symbol", target="AAPL", reason="drill")
    seen.append(version())
    RestrictedEntry.objects.create(security=aapl, reason="x", effective_from=now())
    seen.append(version())
    WatchEntry.objects.create(security=aapl, reason="x", effective_from=now())
    seen.append(version())
    RestrictedEntry.objects.all().delete()
    seen.append(version())
    assert seen == sorted(set(seen)), seen  # strictly increasing: each write a new version


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_by_another_connection_is_seen_by_the_next_check(what_if, account):
    assert blocked_by(what_if) == []

    def latch():
        try:
            KillSwitch.objects.create(scope="firm", target="", reason="another desk's drill")
        finally:
            connection.close()

    thread = threading.Thread(target=latch)
    thread.start()
    thread.join()
    assert blocked_by(what_if) == ["kill_switch"]


@pytest.mark.django_db
def test_the_version_is_read_once_per_shared_cache():
    cache: dict = {}
    with CaptureQueriesContext(connection) as queries:
        first = references_current(cache)
        second = references_current(cache)
    assert first is second is not None
    assert sum("compliance_reference_version" in q["sql"] for q in queries.captured_queries) == 1
