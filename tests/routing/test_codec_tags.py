"""Reading received tags (routing.fix.codec): what execution_report_apply and the inbox
rely on to turn a stored or given message into numbers, prices and times."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from oms_site.errors import InvalidInput
from routing.fix import codec


def test_tags_from_message_takes_numbers_text_and_bytes():
    assert codec.tags_from_message({"35": "8", 150: "F", "17": b"X1", 32: 100}) == {
        35: "8",
        150: "F",
        17: "X1",
        32: "100",
    }


def test_tags_from_message_refuses_a_key_that_is_not_a_tag_number():
    with pytest.raises(InvalidInput) as raised:
        codec.tags_from_message({"ExecType": "F"})
    assert raised.value.details == {"tag": ["ExecType"]}


def test_tags_from_fields_keeps_the_first_of_a_repeated_tag():
    assert codec.tags_from_fields([[35, "8"], ["58", "first"], [58, "second"], (14, 100)]) == {
        35: "8",
        58: "first",
        14: "100",
    }


@pytest.mark.parametrize(("value", "expected"), [("100", 100), ("100.0", 100), ("", None), (None, None)])
def test_tag_int_reads_whole_quantities(value, expected):
    tags = {} if value is None else {32: value}
    assert codec.tag_int(tags, 32) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("1.5", "must be a whole quantity"), ("ten", "is not a number"), ("Infinity", "is not a number")],
)
def test_tag_int_refuses_what_is_not_a_whole_number(value, message):
    with pytest.raises(InvalidInput, match=message) as raised:
        codec.tag_int({32: value}, 32)
    assert raised.value.details == {"32": [value]}


def test_tag_decimal_reads_prices_exactly():
    assert codec.tag_decimal({31: "101.125"}, 31) == Decimal("101.125")
    assert codec.tag_decimal({31: ""}, 31) is None
    assert codec.tag_decimal({}, 31) is None


@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity"])
def test_tag_decimal_refuses_what_is_not_a_finite_number(value):
    with pytest.raises(InvalidInput, match="is not a number"):
        codec.tag_decimal({31: value}, 31)


def test_tag_time_reads_utc_timestamps_with_and_without_fractions():
    assert codec.tag_time({60: "20261207-14:30:05.123456"}, 60) == dt.datetime(
        2026, 12, 7, 14, 30, 5, 123456, tzinfo=dt.UTC
    )
    assert codec.tag_time({60: "20261207-14:30:05"}, 60) == dt.datetime(2026, 12, 7, 14, 30, 5, tzinfo=dt.UTC)
    assert codec.tag_time({60: "yesterday"}, 60) is None
    assert codec.tag_time({}, 60) is None
