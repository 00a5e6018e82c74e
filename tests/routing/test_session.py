"""FIX 4.4 Vol. 2 session rules, proven over real TCP on localhost.

Our ``FixSession`` runs as initiator on a socket (``InitiatorDriver``); the
counterparty is a scripted raw socket server (``ScriptedPeer``) that misbehaves on
purpose. The framer has plain unit tests at the end.
"""

from __future__ import annotations

import time

import pytest
import simplefix

from routing.fix.framing import Framer
from routing.fix.session import MemoryStore

from .fix_peer import (
    OUR_ID,
    PEER_ID,
    InitiatorDriver,
    ScriptedPeer,
    build_message,
    execution_report,
    frame_bytes,
    make_config,
    parse_fields,
    sending_time,
    wait_until,
    wrong_checksum,
)


@pytest.fixture
def peer():
    scripted = ScriptedPeer()
    yield scripted
    scripted.close()


@pytest.fixture
def connect(peer):
    drivers: list[InitiatorDriver] = []

    def _connect(store: MemoryStore | None = None, **config) -> InitiatorDriver:
        driver = InitiatorDriver(make_config(**config), peer.port, store)
        drivers.append(driver)
        return driver

    yield _connect
    for driver in drivers:
        driver.stop()
        # Whatever the counterparty did, the session never raised.
        assert driver.errors == []


@pytest.fixture
def logged_on(peer, connect):
    """A factory: connect, log on (the peer's Logon is its seq 1), wait until active."""

    def _logged_on(*, heartbeat: int = 30, store: MemoryStore | None = None, **config) -> InitiatorDriver:
        driver = connect(store, heartbeat_interval=heartbeat, **config)
        peer.logon(heartbeat=heartbeat)
        wait_until(lambda: driver.session.is_active, message="logon")
        return driver

    return _logged_on


def wait_messages(driver: InitiatorDriver, count: int) -> None:
    wait_until(lambda: len(driver.app.messages) >= count, message=f"{count} application messages")


# ------------------------------------------------------------------------- 1. logon
def test_logon_carries_heartbeat_interval_and_activates_the_session(peer, connect):
    driver = connect(heartbeat_interval=2)
    peer.accept()
    logon = peer.expect("A")
    assert (logon[49], logon[56], logon.seq) == (OUR_ID, PEER_ID, 1)
    assert logon[98] == "0" and logon[108] == "2"
    assert logon.get(141) is None
    assert not driver.session.is_active

    peer.send("A", [(98, "0"), (108, "2")])
    wait_until(lambda: driver.session.is_active, message="active")
    assert driver.app.logons == 1
    assert driver.store.next_target_seq() == 2
    assert driver.store.next_sender_seq() == 2


def test_logon_continues_persisted_sequence_numbers(peer, connect):
    store = MemoryStore()
    store.sender_seq, store.target_seq = 41, 17
    driver = connect(store)
    peer.accept()
    assert peer.expect("A").seq == 41
    peer.send("A", [(98, "0"), (108, "30")], seq=17)
    wait_until(lambda: driver.session.is_active, message="active")
    assert (store.next_sender_seq(), store.next_target_seq()) == (42, 18)


def test_logon_with_reset_seq_num_flag_resets_both_sides_to_one(peer, connect):
    store = MemoryStore()
    store.sender_seq, store.target_seq = 41, 17
    driver = connect(store, reset_on_logon=True)
    peer.accept()
    logon = peer.expect("A")
    assert logon[141] == "Y" and logon.seq == 1
    peer.send("A", [(98, "0"), (108, "30"), (141, "Y")], seq=1)
    wait_until(lambda: driver.session.is_active, message="active")
    assert driver.app.logons == 1
    assert (store.next_sender_seq(), store.next_target_seq()) == (2, 2)


def test_logon_answer_with_a_gap_is_accepted_then_resend_requested(peer, connect):
    driver = connect()
    peer.accept()
    peer.expect("A")
    peer.next_seq = 4  # 1-3 lost
    peer.send("A", [(98, "0"), (108, "30")])
    request = peer.expect("2")
    assert (request[7], request[16]) == ("1", "0")
    wait_until(lambda: driver.app.logons == 1, message="on_logon called")
    assert driver.session.is_active
    peer.send("4", [(123, "Y"), (36, "4")], seq=1, poss_dup=True)
    peer.send("8", execution_report("E5"))  # seq 5
    wait_messages(driver, 1)
    assert driver.app.messages[0][0] == 5
    assert driver.store.next_target_seq() == 6


# -------------------------------------------------------- 2. heartbeats, test requests
def test_heartbeat_after_heartbeat_interval_of_send_silence(peer, logged_on):
    started = time.monotonic()  # before our Logon is sent
    logged_on(heartbeat=1)
    heartbeat = peer.expect("0", skip_heartbeats=False)
    assert time.monotonic() - started >= 0.95
    assert heartbeat.get(112) is None
    assert heartbeat.seq == 2


def test_test_request_after_receive_silence_then_disconnect_when_unanswered(peer, logged_on):
    driver = logged_on(heartbeat=1)
    test_request = peer.expect("1")
    assert test_request[112]
    before = peer.expect_disconnect()
    assert all(m.type == "0" for m in before)  # only heartbeats, no second TestRequest
    wait_until(lambda: driver.app.logouts, message="on_logout")
    assert driver.app.fatals == []  # a reconnect may help: not fatal
    assert not driver.session.is_active


def test_heartbeat_echoing_test_req_id_clears_the_test_request(peer, logged_on):
    driver = logged_on(heartbeat=1)
    test_request = peer.expect("1")
    peer.send("0", [(112, test_request[112])])
    # Well past the point where an unanswered TestRequest disconnects, the session is
    # up; our regular heartbeats keep it alive from here.
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        message = peer.next_message(0.3)
        assert message is None or message.type == "0", message.fields
        peer.send("0")
    assert driver.session.is_active and not driver.disconnected
    assert driver.session.timers.test_request_id is None


def test_test_request_is_answered_with_heartbeat_carrying_its_id(peer, logged_on):
    driver = logged_on()
    peer.send("1", [(112, "PING-7")])
    heartbeat = peer.expect("0", skip_heartbeats=False)
    assert heartbeat[112] == "PING-7"
    assert driver.store.next_target_seq() == 3


# ----------------------------------------------------------- 3. gaps, ResendRequest
def test_gap_sends_one_resend_request_and_queued_messages_follow_in_order(peer, logged_on):
    driver = logged_on()
    peer.send("8", execution_report("E2"))  # seq 2
    wait_messages(driver, 1)

    e3 = peer.build("8", execution_report("E3"))
    e4 = peer.build("8", execution_report("E4"))
    e5 = peer.send("8", execution_report("E5"))  # 3 and 4 lost on the way
    request = peer.expect("2")
    assert (request[7], request[16]) == ("3", "0")
    peer.send("8", execution_report("E6"))
    peer.send("8", execution_report("E7"))
    peer.expect_silence(0.5)  # no second ResendRequest while one is outstanding
    assert driver.app.exec_ids() == ["E2"]  # 5, 6, 7 wait for the gap

    # The resend (everything from 3, EndSeqNo 0), duplicates of queued ones included.
    for raw, seq in ((e3, 3), (e4, 4), (e5, 5)):
        body = [f for f in parse_fields(raw) if f[0] not in (8, 9, 10, 35, 49, 56, 34, 52)]
        peer.send("8", body, seq=seq, poss_dup=True)
    peer.send("8", execution_report("E6"), seq=6, poss_dup=True)
    peer.send("8", execution_report("E8"))  # seq 8, new
    wait_messages(driver, 7)
    peer.expect_silence(0.3)
    assert [seq for seq, _, _ in driver.app.messages] == [2, 3, 4, 5, 6, 7, 8]
    assert driver.app.exec_ids() == ["E2", "E3", "E4", "E5", "E6", "E7", "E8"]
    assert driver.store.next_target_seq() == 9
    assert driver.session.queued == {}


def test_a_resend_that_never_fills_the_gap_is_requested_again(peer, logged_on):
    driver = logged_on()
    driver.session.resend_timeout = 1.0
    peer.next_seq = 4
    peer.send("8", execution_report("E4"))  # 2 and 3 lost
    assert peer.expect("2")[7] == "2"
    # The counterparty's resend never arrives: after the timeout we ask again.
    started = time.monotonic()
    again = peer.expect("2")
    assert time.monotonic() - started >= 0.9
    assert (again[7], again[16]) == ("2", "0")
    peer.send("4", [(123, "Y"), (36, "4")], seq=2, poss_dup=True)
    wait_messages(driver, 1)
    assert driver.app.exec_ids() == ["E4"]


def test_gap_after_the_gap_is_filled_gets_a_new_resend_request(peer, logged_on):
    driver = logged_on()
    peer.next_seq = 4
    peer.send("8", execution_report("E4"))
    assert peer.expect("2")[7] == "2"
    peer.send("4", [(123, "Y"), (36, "4")], seq=2, poss_dup=True)
    wait_messages(driver, 1)
    peer.next_seq = 7
    peer.send("8", execution_report("E7"))
    assert peer.expect("2")[7] == "5"


def test_resend_request_past_a_gap_is_answered_at_once(peer, logged_on):
    driver = logged_on()
    seq, _ = driver.call(driver.session.send_app, "D", [(11, "C-1"), (55, "ACME")])
    peer.expect("D")
    peer.next_seq = 3  # 2 lost
    peer.send("2", [(7, "2"), (16, "0")])
    resent = peer.expect("D")
    assert resent.seq == seq and resent[43] == "Y"
    request = peer.expect("2")
    assert (request[7], request[16]) == ("2", "0")
    peer.send("4", [(123, "Y"), (36, "4")], seq=2, poss_dup=True)
    peer.send("8", execution_report("E4"))
    wait_messages(driver, 1)
    peer.expect_silence(0.3)  # the queued ResendRequest is not answered twice
    assert driver.store.next_target_seq() == 5


# ------------------------------------------------------- 4. answering ResendRequest
def test_resend_replays_application_messages_and_gap_fills_admin_ones(peer, logged_on):
    driver = logged_on()  # our seq 1: Logon
    sent = {}

    def send_order(cl_ord_id):
        seq, _ = driver.call(driver.session.send_app, "D", [(11, cl_ord_id), (55, "ACME"), (54, "1")])
        sent[seq] = peer.expect("D")

    def make_us_heartbeat():
        peer.send("1", [(112, "T")])
        peer.expect("0", skip_heartbeats=False)

    send_order("C-2")  # 2
    send_order("C-3")  # 3
    make_us_heartbeat()  # 4
    send_order("C-5")  # 5
    make_us_heartbeat()  # 6
    make_us_heartbeat()  # 7
    assert sorted(sent) == [2, 3, 5]

    peer.send("2", [(7, "1"), (16, "0")])
    replay = [peer.next_message() for _ in range(6)]
    assert [(m.type, m.seq) for m in replay] == [("4", 1), ("D", 2), ("D", 3), ("4", 4), ("D", 5), ("4", 6)]
    for message in replay:
        assert message[43] == "Y"
        assert message[49] == OUR_ID and message[56] == PEER_ID
    gap_fills = [m for m in replay if m.type == "4"]
    assert [(m[123], m[36]) for m in gap_fills] == [("Y", "2"), ("Y", "5"), ("Y", "8")]
    for message in replay:
        if message.type == "D":
            original = sent[message.seq]
            assert message[122] == original[52]
            assert body_of(message) == body_of(original)
    peer.expect_silence(0.3)

    # Resending does not consume sequence numbers.
    seq, _ = driver.call(driver.session.send_app, "D", [(11, "C-8"), (55, "ACME")])
    assert seq == 8 and peer.expect("D").seq == 8


def test_resend_of_a_bounded_range(peer, logged_on):
    driver = logged_on()
    for cl_ord_id in ("C-2", "C-3", "C-4"):
        driver.call(driver.session.send_app, "D", [(11, cl_ord_id), (55, "ACME")])
        peer.expect("D")
    peer.send("2", [(7, "3"), (16, "3")])
    resent = peer.expect("D")
    assert (resent.seq, resent[11], resent[43]) == (3, "C-3", "Y")
    peer.expect_silence(0.3)


# ---------------------------------------------------------------- 5. SequenceReset
def test_sequence_reset_gap_fill_advances_the_expected_number(peer, logged_on):
    driver = logged_on()
    peer.send("4", [(123, "Y"), (36, "5")], seq=2, poss_dup=True)
    peer.next_seq = 5
    peer.send("8", execution_report("E5"))
    wait_messages(driver, 1)
    peer.expect_silence(0.3)  # no ResendRequest, no Reject
    assert driver.app.messages[0][0] == 5
    assert driver.store.next_target_seq() == 6


@pytest.mark.parametrize("gap_fill_flag", [None, "N"])
def test_sequence_reset_reset_mode_sets_the_number_regardless_of_msg_seq_num(peer, logged_on, gap_fill_flag):
    driver = logged_on()
    body = [(36, "20")] if gap_fill_flag is None else [(123, gap_fill_flag), (36, "20")]
    peer.send("4", body, seq=999)  # MsgSeqNum ignored in Reset mode
    peer.next_seq = 20
    peer.send("8", execution_report("E20"))
    wait_messages(driver, 1)
    peer.expect_silence(0.3)
    assert driver.app.messages[0][0] == 20
    assert driver.store.next_target_seq() == 21


def test_sequence_reset_lowering_the_number_is_rejected(peer, logged_on):
    driver = logged_on()
    peer.send("8", execution_report("E2"))
    peer.send("8", execution_report("E3"))
    wait_messages(driver, 2)
    peer.send("4", [(36, "2")], seq=4)
    reject = peer.expect("3")
    assert (reject[45], reject[371], reject[372], reject[373]) == ("4", "36", "4", "5")
    assert driver.store.next_target_seq() == 4  # unchanged
    peer.send("8", execution_report("E4"), seq=4)
    wait_messages(driver, 3)
    assert driver.session.is_active


def test_gap_fill_lowering_the_number_is_rejected(peer, logged_on):
    driver = logged_on()
    peer.send("4", [(123, "Y"), (36, "1")], seq=2, poss_dup=True)
    reject = peer.expect("3")
    assert (reject[45], reject[371], reject[373]) == ("2", "36", "5")
    peer.send("8", execution_report("E3"), seq=3)
    wait_messages(driver, 1)
    assert driver.store.next_target_seq() == 4


# ------------------------------------------------------------ 6. MsgSeqNum too low
def test_msg_seq_num_too_low_without_poss_dup_is_fatal(peer, logged_on):
    driver = logged_on()
    peer.send("8", execution_report("E2"))
    peer.send("8", execution_report("E3"))
    wait_messages(driver, 2)
    peer.send("8", execution_report("E2-again"), seq=2)
    logout = peer.expect("5")
    assert logout[58] == "MsgSeqNum too low, expecting 4 but received 2"
    peer.expect_disconnect()
    wait_until(lambda: driver.app.fatals, message="on_fatal")
    assert driver.app.fatals == ["MsgSeqNum too low, expecting 4 but received 2"]
    assert driver.app.exec_ids() == ["E2", "E3"]
    assert not driver.session.is_active


# --------------------------------------------------------------- 7. PossDup ignored
def test_poss_dup_of_an_already_seen_number_is_ignored_silently(peer, logged_on):
    driver = logged_on()
    original = peer.send("8", execution_report("E2"))
    wait_messages(driver, 1)
    peer.send("8", execution_report("E2"), seq=2, poss_dup=True, orig_sending_time=field_of(original, 52))
    peer.send("8", execution_report("E3"))
    wait_messages(driver, 2)
    peer.expect_silence(0.3)
    assert driver.app.exec_ids() == ["E2", "E3"]
    assert driver.store.next_target_seq() == 4


# ------------------------------------------------------------------- 8. garbled
def _bad_checksum(peer):
    return wrong_checksum(peer.build("8", execution_report("BAD"), seq=2))


def _short_body_length(peer):
    body = peer.raw_body("8", execution_report("BAD"), seq=2)
    return frame_bytes(body, body_length=len(body) - 5)


def _long_body_length(peer):
    # Claims far more than follows: must not hold back the good message behind it.
    body = peer.raw_body("8", execution_report("BAD"), seq=2)
    return frame_bytes(body, body_length=len(body) + 900)


def _slightly_long_body_length(peer):
    body = peer.raw_body("8", execution_report("BAD"), seq=2)
    return frame_bytes(body, body_length=len(body) + 3)


def _non_numeric_body_length(peer):
    body = peer.raw_body("8", execution_report("BAD"), seq=2)
    return b"8=FIX.4.4\x019=abc\x01" + body + b"10=000\x01"


def _junk(peer):
    return b"\x00\xffjunk=1\x01 not FIX at all \r\n8=FI"


def _missing_body_length(peer):
    body = peer.raw_body("8", execution_report("BAD"), seq=2)
    return b"8=FIX.4.4\x01" + body + b"10=000\x01"


@pytest.mark.parametrize(
    "garbled",
    [
        _bad_checksum,
        _short_body_length,
        _long_body_length,
        _slightly_long_body_length,
        _non_numeric_body_length,
        _missing_body_length,
        _junk,
    ],
)
def test_garbled_message_is_dropped_without_consuming_a_sequence_number(peer, logged_on, garbled):
    driver = logged_on()
    peer.send_raw(garbled(peer))
    peer.send("8", execution_report("GOOD"), seq=2)
    wait_messages(driver, 1)
    peer.expect_silence(0.5)  # no Reject, no ResendRequest
    assert [(seq, msg_type) for seq, msg_type, _ in driver.app.messages] == [(2, "8")]
    assert driver.app.exec_ids() == ["GOOD"]
    assert driver.store.next_target_seq() == 3


def test_garbled_message_in_the_same_read_as_good_ones(peer, logged_on):
    driver = logged_on()
    peer.send_raw(
        peer.build("8", execution_report("E2"))
        + wrong_checksum(peer.build("8", execution_report("BAD"), seq=3))
        + b"garbage"
        + peer.build("8", execution_report("E3"))
    )
    wait_messages(driver, 2)
    peer.expect_silence(0.3)
    assert driver.app.exec_ids() == ["E2", "E3"]


# ------------------------------------------------------------------- 9. rejects
@pytest.mark.parametrize(
    ("msg_type", "body", "reason", "ref_tag"),
    [
        ("8", execution_report("X", t17=None), "1", "17"),  # ExecID missing
        ("8", execution_report("X", t150="Z"), "5", "150"),  # ExecType out of range
        ("8", execution_report("X", t54="Z"), "5", "54"),  # Side out of range
        ("8", execution_report("X", t14="abc"), "6", "14"),  # CumQty not a Qty
        ("8", execution_report("X", t6="1.2.3"), "6", "6"),  # AvgPx not a Price
        ("8", execution_report("X", t58=""), "4", "58"),  # Text empty
        ("ZZ", [(11, "C-1")], "11", "35"),  # no such MsgType
    ],
    ids=["missing-ExecID", "bad-ExecType", "bad-Side", "bad-CumQty", "bad-AvgPx", "empty-Text", "unknown-MsgType"],
)
def test_invalid_message_gets_a_session_reject_and_consumes_its_number(
    peer, logged_on, msg_type, body, reason, ref_tag
):
    driver = logged_on()
    peer.send(msg_type, body)  # seq 2
    reject = peer.expect("3")
    assert reject[45] == "2"
    assert reject[371] == ref_tag
    assert reject[372] == msg_type
    assert reject[373] == reason
    assert reject[58]
    peer.send("8", execution_report("E3"))  # seq 3: no gap, no ResendRequest
    wait_messages(driver, 1)
    peer.expect_silence(0.3)
    assert driver.app.exec_ids() == ["E3"]
    assert driver.store.next_target_seq() == 4


def test_empty_value_in_an_admin_message_gets_a_reject(peer, logged_on):
    driver = logged_on()
    body = peer.raw_body("1", [(112, "")])
    peer.send_raw(frame_bytes(body))
    reject = peer.expect("3", skip_heartbeats=False)
    assert (reject[45], reject[371], reject[372], reject[373]) == ("2", "112", "1", "4")
    assert driver.store.next_target_seq() == 3


def test_test_request_without_test_req_id_gets_a_reject(peer, logged_on):
    driver = logged_on()
    peer.send("1")
    reject = peer.expect("3", skip_heartbeats=False)
    assert (reject[45], reject[371], reject[373]) == ("2", "112", "1")
    assert driver.store.next_target_seq() == 3


def test_poss_dup_without_orig_sending_time_is_rejected(peer, logged_on):
    driver = logged_on()
    raw = peer.raw_body("8", [(43, "Y"), *execution_report("E2")])
    peer.send_raw(frame_bytes(raw))
    reject = peer.expect("3")
    assert (reject[45], reject[371], reject[373]) == ("2", "122", "1")
    assert driver.app.messages == []
    assert driver.store.next_target_seq() == 3


def test_missing_sending_time_is_rejected(peer, logged_on):
    driver = logged_on()
    peer.send_raw(frame_bytes(peer.raw_body("8", execution_report("E2"), header=False)))
    reject = peer.expect("3")
    assert (reject[45], reject[371], reject[373]) == ("2", "52", "1")
    assert driver.app.messages == []
    assert driver.store.next_target_seq() == 3


def test_unsupported_application_message_gets_a_business_message_reject(peer, logged_on):
    driver = logged_on()
    peer.send("R", [(131, "Q-1"), (146, "1"), (55, "ACME")])  # QuoteRequest, seq 2
    reject = peer.expect("j")
    assert (reject[45], reject[372], reject[380]) == ("2", "R", "3")
    peer.send("8", execution_report("E3"))
    wait_messages(driver, 1)
    assert driver.store.next_target_seq() == 4


def test_reject_of_our_message_is_reported_to_the_application(peer, logged_on):
    driver = logged_on()
    peer.send("3", [(45, "1"), (373, "5"), (58, "whatever")])
    wait_until(lambda: driver.app.rejects, message="on_reject")
    assert dict(driver.app.rejects[0])[373] == "5"
    assert driver.session.is_active


# ------------------------------------------------------------------- 10. logout
def test_counterparty_logout_is_answered_then_disconnect(peer, logged_on):
    driver = logged_on()
    peer.send("5", [(58, "end of day")])
    before = peer.expect_disconnect()
    assert [m.type for m in before] == ["5"]
    wait_until(lambda: driver.app.logouts, message="on_logout")
    assert driver.app.fatals == []
    assert not driver.session.is_active


def test_our_logout_waits_for_the_counterparty_logout(peer, logged_on):
    driver = logged_on()
    driver.call(driver.session.logout, "bye")
    assert peer.expect("5")[58] == "bye"
    peer.expect_silence(0.5)
    assert not driver.disconnected  # still waiting for their Logout
    peer.send("5")
    assert peer.expect_disconnect() == []
    wait_until(lambda: driver.app.logouts, message="on_logout")


def test_our_logout_times_out_and_disconnects(peer, logged_on):
    driver = logged_on(logout_timeout=1.0)
    driver.call(driver.session.logout, "bye")
    started = time.monotonic()
    peer.expect("5")
    peer.expect_disconnect()
    assert time.monotonic() - started >= 0.8
    wait_until(lambda: driver.app.logouts, message="on_logout")


# ------------------------------------------------------ 11. identity, first message
@pytest.mark.parametrize(
    ("sender", "target", "wrong_tag"), [("INTRUDER", OUR_ID, "49"), (PEER_ID, "SOMEONE-ELSE", "56")]
)
def test_wrong_comp_id_gets_reject_logout_and_disconnect(peer, logged_on, sender, target, wrong_tag):
    driver = logged_on()
    peer.send("8", execution_report("E2"), sender=sender, target=target)
    before = peer.expect_disconnect()
    assert [m.type for m in before] == ["3", "5"]
    reject, logout = before
    assert (reject[45], reject[371], reject[372], reject[373]) == ("2", wrong_tag, "8", "9")
    assert logout[58]
    assert driver.app.messages == []


def test_wrong_begin_string_gets_logout_and_disconnect(peer, logged_on):
    driver = logged_on()
    peer.send("8", execution_report("E2"), begin_string="FIX.4.2")
    before = peer.expect_disconnect()
    assert [m.type for m in before] == ["5"]
    assert "BeginString" in before[0][58]
    assert driver.app.messages == []


def test_message_without_msg_seq_num_gets_logout_and_disconnect(peer, logged_on):
    driver = logged_on()
    body = b"35=8\x0149=BROKER\x0156=OMS\x0152=" + sending_time().encode() + b"\x01"
    body += b"".join(f"{tag}={value}".encode() + b"\x01" for tag, value in execution_report("E2"))
    peer.send_raw(frame_bytes(body))
    before = peer.expect_disconnect()
    assert [m.type for m in before] == ["5"]
    assert "MsgSeqNum" in before[0][58]
    assert driver.app.messages == []


def test_first_message_not_a_logon_disconnects(peer, connect):
    driver = connect()
    peer.accept()
    peer.expect("A")
    peer.send("0")
    before = peer.expect_disconnect()
    assert [m.type for m in before] == ["5"]
    assert before[0][58] == "First message not a Logon"
    assert driver.app.logons == 0
    assert not driver.session.is_active


def test_logon_refused_with_logout_disconnects(peer, connect):
    driver = connect()
    peer.accept()
    peer.expect("A")
    peer.send("5", [(58, "unknown CompID")])
    assert peer.expect_disconnect() == []
    wait_until(lambda: driver.app.logouts, message="on_logout")
    assert "unknown CompID" in driver.app.logouts[0]


def test_logon_timeout_disconnects(peer, connect):
    driver = connect(logon_timeout=1.0)
    peer.accept()
    peer.expect("A")
    peer.expect_disconnect()
    assert driver.app.logons == 0


# ------------------------------------------------------------------- 12. bursts
def test_burst_of_2000_execution_reports_over_tcp(peer, logged_on):
    driver = logged_on()
    padding = "x" * 380  # about 500 bytes a message, 1 MB in all
    burst = b"".join(peer.build("8", execution_report(f"E{n}", t58=padding)) for n in range(2, 2002))
    assert len(burst) > 1_000_000
    peer.send_raw(burst)
    wait_until(lambda: len(driver.app.messages) == 2000, timeout=60, message="2000 execution reports")
    assert [seq for seq, _, _ in driver.app.messages] == list(range(2, 2002))
    assert driver.store.next_target_seq() == 2002


# ------------------------------------------------------------------ 13. FIX 4.2
def test_fix42_session_requires_exec_trans_type():
    peer = ScriptedPeer(begin_string="FIX.4.2")
    try:
        driver = InitiatorDriver(make_config(begin_string="FIX.4.2"), peer.port)
        try:
            assert peer.logon()[8] == "FIX.4.2"
            wait_until(lambda: driver.session.is_active, message="logon")
            peer.send("8", execution_report("E2", begin_string="FIX.4.2", t150="2", t39="2", t32="100", t31="9.5"))
            wait_messages(driver, 1)
            assert dict(driver.app.messages[0][2])[20] == "0"
            peer.send("8", execution_report("E3", begin_string="FIX.4.2", t20=None))
            reject = peer.expect("3")
            assert reject[8] == "FIX.4.2"
            assert (reject[45], reject[371], reject[373]) == ("3", "20", "1")
            assert driver.app.exec_ids() == ["E2"]
        finally:
            driver.stop()
            assert driver.errors == []
    finally:
        peer.close()


def test_fix44_does_not_require_exec_trans_type(peer, logged_on):
    driver = logged_on()
    peer.send("8", execution_report("E2"))
    wait_messages(driver, 1)
    peer.expect_silence(0.2)


# --------------------------------------------------------------- framer units
def _report(seq: int, padding: str = "") -> bytes:
    body = execution_report(f"E{seq}", t58=padding) if padding else execution_report(f"E{seq}")
    return build_message("8", body, seq=seq)


def _seqs(frames) -> list[int]:
    assert all(frame.message is not None for frame in frames), [f.error for f in frames if f.message is None]
    return [int(frame.message.get(34)) for frame in frames]


def test_framer_byte_by_byte():
    data = _report(1) + _report(2)
    framer = Framer()
    frames = []
    for index in range(len(data)):
        frames += framer.feed(data[index : index + 1])
    assert _seqs(frames) == [1, 2]
    assert frames[0].raw + frames[1].raw == data
    assert framer.buffer == b""


def test_framer_many_messages_in_one_read():
    data = b"".join(_report(seq) for seq in range(1, 51))
    assert _seqs(Framer().feed(data)) == list(range(1, 51))


def test_framer_burst_of_2000_reports_in_recv_sized_chunks():
    data = b"".join(_report(seq, padding="y" * 380) for seq in range(1, 2001))
    assert len(data) > 1_000_000
    framer = Framer()
    frames = []
    for offset in range(0, len(data), 65536):
        frames += framer.feed(data[offset : offset + 65536])
    assert _seqs(frames) == list(range(1, 2001))
    assert framer.buffer == b""


def test_framer_drops_garbled_frames_and_resynchronises():
    good1, good2 = _report(1), _report(2)
    frames = Framer().feed(b"junk" + good1 + wrong_checksum(_report(2)) + b"\x01\x01" + good2)
    assert [(f.message is not None) for f in frames] == [True, False, True]
    assert "CheckSum" in frames[1].error


def test_framer_keeps_a_split_begin_string():
    framer = Framer()
    report = _report(1)
    assert framer.feed(b"noise" + report[:3]) == []
    assert _seqs(framer.feed(report[3:])) == [1]


def test_framer_accepts_empty_values_for_the_session_to_reject():
    body = b"35=8\x0149=A\x0156=B\x0134=1\x0152=" + sending_time().encode() + b"\x0158=\x01"
    frames = Framer().feed(frame_bytes(body))
    assert frames[0].message is not None
    assert frames[0].message.get(58) == b""


# ------------------------------------------------------------------------ helpers
def field_of(raw: bytes, tag: int) -> str:
    return dict(parse_fields(raw))[tag]


def body_of(message) -> list[tuple[int, str]]:
    header = {8, 9, 10, 34, 35, 43, 49, 52, 56, 122}
    return [(t, v) for t, v in message.fields if t not in header]


def test_heartbeat_interval_zero_sends_no_heartbeats_or_test_requests():
    """FIX allows HeartBtInt 0: no heartbeats, no test requests, no disconnect."""
    from routing.fix.session import FixSession, MemoryStore, Role, SessionConfig

    written: list[bytes] = []

    class Transport:
        def write(self, data: bytes) -> None:
            written.append(data)

        def close(self) -> None:
            written.append(b"CLOSED")

    class App:
        def on_logon(self, session): ...
        def on_logout(self, session, reason): ...
        def on_app_message(self, session, seq, msg_type, fields): ...
        def on_reject(self, session, fields): ...
        def on_fatal(self, session, reason): ...

    config = SessionConfig("FIX.4.4", "SIM", "OMS", 30, role=Role.ACCEPTOR, accepts=frozenset("DFGH"))
    session = FixSession(config, MemoryStore(), App())
    session.connection_made(Transport(), 0.0)
    logon = simplefix.FixMessage()
    for tag, value in (
        (8, "FIX.4.4"),
        (35, "A"),
        (49, "OMS"),
        (56, "SIM"),
        (34, "1"),
        (52, "20261125-01:00:00.000"),
        (98, "0"),
        (108, "0"),
    ):
        logon.append_pair(tag, value)
    session.data_received(logon.encode(), 0.1)
    assert session.is_active and len(written) == 1 and b"\x0135=A\x01" in written[0]
    for now in (0.5, 1.0, 1.6, 2.2, 60.0):
        session.tick(now)
    assert len(written) == 1 and session.is_active


def test_no_writes_after_the_connection_is_lost():
    from routing.fix.session import FixSession, MemoryStore, SessionConfig

    written: list[bytes] = []

    class Transport:
        def write(self, data: bytes) -> None:
            written.append(data)

        def close(self) -> None: ...

    class App:
        def on_logon(self, session): ...
        def on_logout(self, session, reason): ...
        def on_app_message(self, session, seq, msg_type, fields): ...
        def on_reject(self, session, fields): ...
        def on_fatal(self, session, reason): ...

    store = MemoryStore()
    session = FixSession(SessionConfig("FIX.4.4", "OMS", "SIM", 30), store, App())
    session.connection_made(Transport(), 0.0)
    session.connection_lost("EOF")
    session.tick(100.0)
    assert len(written) == 1  # the Logon only
    assert store.next_sender_seq() == 2
