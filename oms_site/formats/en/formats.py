"""English display formats, 24-hour and ISO dates: 2026-03-02 14:23:05 UTC, never
"March 2, 2026, 2:23 p.m.". Input formats stay the locale's."""

DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
