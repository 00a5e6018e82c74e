"""The framer's fast split gives exactly the message simplefix's parser gives, and
leaves anything unusual (raw data fields, odd tags) to simplefix."""

from __future__ import annotations

import pytest
import simplefix

from routing.fix import framing
from routing.fix.framing import Framer, checksum


def frame(body: bytes, begin: bytes = b"8=FIX.4.4") -> bytes:
    head = begin + b"\x019=" + str(len(body)).encode() + b"\x01" + body
    return head + b"10=" + checksum(head).encode() + b"\x01"


def simplefix_message(raw: bytes) -> simplefix.FixMessage:
    parser = simplefix.FixParser(allow_empty_values=True)
    parser.append_buffer(raw)
    return parser.get_message()


BODIES = [
    b"35=8\x0134=2\x0149=SIM\x0156=OMS\x0152=20261207-10:00:00.000\x0137=V1\x0111=C1\x0117=E1\x01150=F\x0132=100\x01",
    b"35=0\x0134=7\x0149=SIM\x0156=OMS\x0152=20261207-10:00:00.000\x01",
    b"35=8\x0134=3\x0158=\x01",  # an empty value (the session rejects it)
    b"035=8\x01034=4\x0155=A=B\x01",  # leading zeros in tags; '=' inside a value
    b"35=8\x0135=9\x0134=5\x0158=x\x0158=y\x01",  # repeated tags: the last MsgType counts
]


@pytest.mark.parametrize("body", BODIES)
def test_split_equals_simplefix(body):
    raw = frame(body)
    [got] = Framer().feed(raw)
    expected = simplefix_message(raw)
    assert got.message is not None
    assert got.message.pairs == expected.pairs
    assert got.message.begin_string == expected.begin_string
    assert got.message.message_type == expected.message_type
    assert got.message.header_index == expected.header_index


@pytest.mark.parametrize(
    "body",
    [
        b"35=8\x0134=2\x0195=3\x0196=a\x01b\x0158=x\x01",  # RawDataLength / RawData holding an SOH
        b"35=8\x01 34=2\x01",  # a tag with a space: not plain digits
        b"35=8\x0110=000\x0158=after\x01",  # a CheckSum before the end
    ],
)
def test_unusual_messages_left_to_simplefix(body):
    raw = frame(body)
    assert framing._fields_split(raw) is None
    [got] = Framer().feed(raw)
    try:
        expected = simplefix_message(raw)
    except Exception:
        assert got.message is None and got.error.startswith("unparseable")
        return
    assert (got.message.pairs if got.message else None) == (expected.pairs if expected else None)


def test_raw_data_with_soh_parsed_by_simplefix():
    raw = frame(b"35=8\x0134=2\x0195=3\x0196=a\x01b\x0158=x\x01")
    [got] = Framer().feed(raw)
    assert got.message.get(96) == b"a\x01b"
    assert got.message.get(58) == b"x"
