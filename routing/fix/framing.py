"""FIX message framing and checksum validation.

simplefix splits fields but does not verify BodyLength (9) or CheckSum (10), and it
slows sharply on one huge buffer. The framer cuts the byte stream into complete
messages itself, verifies both, and hands simplefix one message at a time. Garbled
frames are dropped (FIX session rule: no Reject, no sequence number consumed) and the
stream resynchronises on the next BeginString.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import simplefix
from simplefix.data import RAW_DATA_TAGS, RAW_LEN_TAGS

logger = logging.getLogger(__name__)

SOH = b"\x01"
BEGIN = b"8=FIX"
MAX_BEGIN_STRING = 32  # "8=FIXT.1.1" and the like; longer is garbage
MAX_BODY_LENGTH_FIELD = 12


@dataclass(frozen=True)
class Frame:
    raw: bytes
    message: simplefix.FixMessage | None  # None when the frame was garbled
    error: str = ""


def checksum(data: bytes) -> str:
    return f"{sum(data) % 256:03d}"


class Framer:
    """Feed it what each ``recv`` returns; iterate the complete frames it yields."""

    def __init__(self, max_body: int = 1_000_000) -> None:
        self.buffer = b""
        self.max_body = max_body

    def feed(self, data: bytes) -> list[Frame]:
        # Walk the buffer with an offset and cut it once at the end: slicing after every
        # message would copy the rest of a large read once per message.
        buffer = self.buffer + data if self.buffer else data
        frames: list[Frame] = []
        pos = 0
        while True:
            frame, pos = self._next(buffer, pos)
            if frame is None:
                break
            frames.append(frame)
        self.buffer = buffer[pos:]
        return frames

    def _next(self, buf: bytes, pos: int) -> tuple[Frame | None, int]:
        """The next frame from ``pos`` and where to continue; (None, where to keep the
        buffer from) when more data is needed."""
        start = buf.find(BEGIN, pos)
        if start < 0:
            # Keep a tail that may be the start of "8=FIX" split across reads.
            return None, max(pos, len(buf) - (len(BEGIN) - 1))
        first_soh = buf.find(SOH, start)
        if first_soh < 0:
            if len(buf) - start > MAX_BEGIN_STRING:
                return Frame(buf[start:], None, "BeginString (8) not terminated"), start + 1
            return None, start
        length_start = first_soh + 1
        if len(buf) < length_start + 2:
            return None, start
        if buf[length_start : length_start + 2] != b"9=":
            return Frame(buf[start : length_start + 2], None, "BodyLength (9) does not follow BeginString"), start + 1
        length_end = buf.find(SOH, length_start)
        if length_end < 0:
            if len(buf) - length_start > MAX_BODY_LENGTH_FIELD:
                return Frame(buf[start:], None, "BodyLength (9) not terminated"), start + 1
            return None, start
        length_text = buf[length_start + 2 : length_end]
        if not length_text.isdigit() or int(length_text) > self.max_body:
            return Frame(buf[start:length_end], None, f"bad BodyLength {length_text!r}"), start + 1
        body_start = length_end + 1
        body_end = body_start + int(length_text)
        trailer_end = body_end + 7  # "10=ddd\x01"
        if len(buf) < trailer_end:
            # Not all here yet, unless the message already ended with a valid trailer
            # before the length it claims: a BodyLength too large would otherwise hold
            # back every message behind it until enough bytes arrive.
            early_end = _early_trailer_end(buf, start, body_start)
            if early_end is not None:
                return Frame(buf[start:early_end], None, "BodyLength (9) larger than the message"), early_end
            return None, start
        raw = buf[start:trailer_end]
        trailer = buf[body_end:trailer_end]
        if not (trailer.startswith(b"10=") and trailer.endswith(SOH) and buf[body_end - 1 : body_end] == SOH):
            # A BodyLength too small (or too large, with the next message behind it):
            # resynchronise on the next BeginString.
            return Frame(raw, None, "BodyLength (9) does not match the message"), start + 1
        computed = checksum(buf[start:body_end])
        if trailer[3:6] != computed.encode():
            return Frame(raw, None, f"bad CheckSum {trailer[3:6]!r}, computed {computed}"), trailer_end
        message = _fields_split(raw)
        if message is None:  # anything unusual: simplefix's parser decides
            # Empty values pass here and are rejected by the session (SessionRejectReason 4).
            parser = simplefix.FixParser(allow_empty_values=True)
            parser.append_buffer(raw)
            try:
                message = parser.get_message()
            except Exception as exc:  # simplefix raises its own errors for bad tags
                return Frame(raw, None, f"unparseable: {exc}"), trailer_end
            if message is None:
                return Frame(raw, None, "unparseable"), trailer_end
        return Frame(raw, message), trailer_end


# Length tags of raw data fields (their values may hold SOH) and the data tags.
_RAW_TAGS = frozenset(RAW_LEN_TAGS) | frozenset(RAW_DATA_TAGS)


def _fields_split(raw: bytes) -> simplefix.FixMessage | None:
    """The message simplefix's parser would make of a checked frame, by splitting on
    SOH (simplefix walks the bytes one by one in Python, the larger part of receiving
    a message). None, leaving it to simplefix, for anything but plain ``tag=value``
    fields ending with the CheckSum: raw data fields, a tag that is not plain digits,
    a CheckSum (10) before the end."""
    parts = raw.split(SOH)
    parts.pop()  # the frame ends with SOH: an empty last part
    pairs = []
    for part in parts:
        tag, sep, value = part.partition(b"=")
        if not sep or not tag.isdigit():
            return None
        number = int(tag)
        if number in _RAW_TAGS or (number == 10 and len(pairs) != len(parts) - 1):
            return None
        pairs.append((str(number).encode(), value))
    message = simplefix.FixMessage()
    message.pairs = pairs
    for tag, value in pairs:  # as simplefix's append_pair: the last occurrence counts
        if tag == b"8":
            message.begin_string = value
        elif tag == b"35":
            message.message_type = value
    return message


def _early_trailer_end(buf: bytes, start: int, body_start: int) -> int | None:
    """End of a "10=ddd" trailer found before the claimed end whose CheckSum matches
    everything before it: the message really ended there."""
    at = buf.find(b"\x0110=", body_start - 1)
    while at >= 0 and at + 8 <= len(buf):
        trailer = buf[at + 1 : at + 8]
        if trailer[6:7] == SOH and trailer[3:6] == checksum(buf[start : at + 1]).encode():
            return at + 8
        at = buf.find(b"\x0110=", at + 1)
    return None
