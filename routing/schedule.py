"""A venue's trading session schedule, as FIX engines configure it (QuickFIX's
StartTime, EndTime, TimeZone and trading days): when the session may be logged on,
when a new session (and so new sequence numbers) begins, and when the day ends.

Pure functions of a ``Venue``'s schedule fields and an aware time; nothing here reads
the database.

- No start and no end: the session is always open and has no daily boundary.
- Start before end (09:30-16:00): open from start to end on each trading day.
- Start after end (17:00-16:00, an overnight session): opens at start on a trading day
  and ends at end on the next calendar day; the trading day is the day it opens.
- Start equal to end: open around the clock, with the session (and its sequence
  numbers) starting again at that time on each trading day.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAYS = "Mon,Tue,Wed,Thu,Fri"


def parse_days(text: str) -> frozenset[int]:
    """``"Mon,Tue,Fri"`` or ``"Mon-Fri"`` (case-insensitive, commas or spaces) as
    weekday numbers (Monday 0); ValueError naming what is not a day."""
    days: set[int] = set()
    for part in text.replace(" ", ",").split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        names = [name.strip().capitalize()[:3] for name in (first, last or first)]
        for name in names:
            if name not in DAY_NAMES:
                raise ValueError(f"{part!r} is not a day (use Mon, Tue, Wed, Thu, Fri, Sat, Sun or a range Mon-Fri)")
        start, end = DAY_NAMES.index(names[0]), DAY_NAMES.index(names[1])
        span = range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)]
        days.update(span)
    if not days:
        raise ValueError("at least one trading day is required")
    return frozenset(days)


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name``; ValueError when there is none of that name."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone (an IANA name such as America/New_York or UTC)") from None


@dataclass(frozen=True)
class Schedule:
    start: dt.time | None
    end: dt.time | None
    zone: zoneinfo.ZoneInfo
    days: frozenset[int]

    @classmethod
    def of(cls, venue) -> Schedule:
        return cls(
            start=venue.session_start,
            end=venue.session_end,
            zone=time_zone(venue.session_time_zone or "UTC"),
            days=parse_days(venue.trading_days or WEEKDAYS),
        )

    @property
    def always_open(self) -> bool:
        return self.start is None or self.end is None

    def _sessions_around(self, now: dt.datetime, back: int = 1) -> list[tuple[dt.datetime, dt.datetime]]:
        """(start, end) in UTC of the sessions opening on trading days from ``back``
        days before ``now``'s local date to one day after, in time order."""
        local = now.astimezone(self.zone).date()
        sessions = []
        for offset in range(-back, 2):
            day = local + dt.timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opens = dt.datetime.combine(day, self.start, tzinfo=self.zone)
            closes_on = day if self.end > self.start else day + dt.timedelta(days=1)
            closes = dt.datetime.combine(closes_on, self.end, tzinfo=self.zone)
            sessions.append((opens.astimezone(dt.UTC), closes.astimezone(dt.UTC)))
        return sessions

    def is_open(self, now: dt.datetime) -> bool:
        if self.always_open:
            return True
        return any(opens <= now < closes for opens, closes in self._sessions_around(now))

    def current_start(self, now: dt.datetime) -> dt.datetime | None:
        """When the session that is open at ``now`` began (its sequence numbers start
        there); None when closed or when the schedule has no boundary."""
        if self.always_open:
            return None
        for opens, closes in self._sessions_around(now):
            if opens <= now < closes:
                return opens
        return None

    def last_end(self, now: dt.datetime) -> dt.datetime | None:
        """The most recent session end at or before ``now`` (None without a schedule,
        or when none ended in the last week)."""
        if self.always_open:
            return None
        ended = [closes for _opens, closes in self._sessions_around(now, back=8) if closes <= now]
        return max(ended) if ended else None

    def next_open(self, now: dt.datetime) -> dt.datetime | None:
        """When the session opens next, looking a week ahead (None without a schedule)."""
        if self.always_open:
            return None
        for offset in range(0, 8):
            for opens, _closes in self._sessions_around(now + dt.timedelta(days=offset)):
                if opens > now:
                    return opens
        return None

    def describe(self) -> str:
        """For people: "09:30-16:00 America/New_York Mon,Tue,Wed,Thu,Fri"."""
        if self.always_open:
            return "always open"
        days = ",".join(DAY_NAMES[d] for d in sorted(self.days))
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone.key} {days}"
