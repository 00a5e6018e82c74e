"""The reference data every check reads — rule settings, active kill switches, the
restricted and watch lists — held per process and read again only when it changes.

PostgreSQL keeps a version of this data (``compliance_reference_version``, migration
0004): a statement trigger on each of the four tables sets it from a sequence in the
transaction that writes them. A check reads the version (one small statement) and
uses the process's copy of that version, loading it if the process has another.

Why a version read in the check's own transaction is enough:
- every value comes from a sequence, so it names one state of the data only. A
  rolled-back change takes its version back with it, and its number is never seen
  again;
- the copy is loaded after the version was read, so it is never older than the
  version it is kept under (it may be newer, which is what reading the tables
  directly would have given);
- a change committed after the version was read is not seen, exactly as a direct
  read that happened before that commit would not see it (the kill switch's sweep
  waits for the accounts' locks, as before).

The embedded database (SQLite) has no such trigger: its checks read the tables
every time."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

from django.db import connection

from oms_site.prepared import RawRead, reads_together

from .models import KillSwitch, ListEntry, RestrictedEntry, RuleSetting, Scope, WatchEntry
from .selectors import kill_switches_active

# List entries that ended longer ago than this before the copy was loaded are left
# out of it: no check's clock is that far behind.
_ENDED_MARGIN = dt.timedelta(hours=1)


@dataclass
class _Entries:
    """One list's entries that are or may still come in force, by security and by
    issuer (upper case, as ``iexact`` compares)."""

    by_security: dict[int, list[ListEntry]] = field(default_factory=dict)
    by_issuer: dict[str, list[ListEntry]] = field(default_factory=dict)

    @classmethod
    def load(cls, model: type[ListEntry], since: dt.datetime) -> _Entries:
        entries = cls()
        rows = model.objects.filter(effective_to__isnull=True) | model.objects.filter(effective_to__gt=since)
        for entry in rows.select_related("security"):
            if entry.security_id is not None:
                entries.by_security.setdefault(entry.security_id, []).append(entry)
            if entry.issuer:
                entries.by_issuer.setdefault(entry.issuer.upper(), []).append(entry)
        return entries

    def first_in_force(self, *, security_id: int, issuer: str, now: dt.datetime) -> ListEntry | None:
        """The entry for the security or its issuer in force at ``now`` that started
        first (ties by id), as the rules' query orders them."""
        candidates = {e.pk: e for e in self.by_security.get(security_id, ())}
        if issuer:
            candidates.update((e.pk, e) for e in self.by_issuer.get(issuer.upper(), ()))
        in_force = [e for e in candidates.values() if e.in_force(now)]
        return min(in_force, key=lambda e: (e.effective_from, e.pk), default=None)


@dataclass
class References:
    settings: list[RuleSetting]
    kill_switches: list[KillSwitch]
    restricted: _Entries
    watch: _Entries

    @classmethod
    def load(cls) -> References:
        since = dt.datetime.now(dt.UTC) - _ENDED_MARGIN
        return cls(
            settings=list(RuleSetting.objects.order_by("id")),
            kill_switches=list(kill_switches_active().order_by("activated_at", "id")),
            restricted=_Entries.load(RestrictedEntry, since),
            watch=_Entries.load(WatchEntry, since),
        )

    def settings_applicable(
        self, *, account_id: int, security_id: int, issuer: str, trader_id: int | None
    ) -> list[RuleSetting]:
        """The settings of every scope that covers the order: the firm's, and those
        naming its account, security, issuer (case-insensitive) or trader."""
        issuer = issuer.upper()
        return [
            s
            for s in self.settings
            if s.scope == Scope.FIRM
            or (s.scope == Scope.ACCOUNT and s.account_id == account_id)
            or (s.scope == Scope.SECURITY and s.security_id == security_id)
            or (s.scope == Scope.ISSUER and issuer and s.issuer.upper() == issuer)
            or (s.scope == Scope.TRADER and trader_id is not None and s.trader_id == trader_id)
        ]


_lock = threading.Lock()
_held: tuple[int, References] | None = None


def references_current(cache: dict) -> References | None:
    """The reference data as of this transaction, once per shared ``cache`` (a check,
    or a basket's lines); None where the database keeps no version (read the tables)."""
    if "references" not in cache:
        read = reference_version_read()
        references_prime(cache, reads_together(read)[0] if read is not None else [])
    return cache["references"]


def reference_version_read() -> RawRead | None:
    """The statement ``references_current`` reads the version by, for a caller to send
    with its own reads in the same transaction (``references_prime`` takes its
    rows); None where the database keeps no version."""
    if connection.vendor != "postgresql":
        return None
    return RawRead("SELECT version FROM compliance_reference_version WHERE id = 1")


def references_prime(cache: dict, rows: list[tuple]) -> None:
    """Set ``cache``'s reference data from the rows of ``reference_version_read``,
    read in the caller's transaction."""
    cache["references"] = _references_of(rows[0][0]) if rows else None


def _references_of(version: int) -> References:
    global _held
    held = _held
    if held is not None and held[0] == version:
        return held[1]
    references = References.load()
    with _lock:
        _held = (version, references)
    return references
