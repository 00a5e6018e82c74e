"""FIX 4.4 allocations (issue 14): AllocationInstruction (35=J) built by the codec, the
simulator's AllocationInstructionAck (35=P) answers over real TCP, and a 35=P through
the OMS inbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from audit.models import AuditEvent
from orders.services import inbox, inbox_apply
from orders.services.allocations import ALLOCATION_ACK_UNMATCHED
from routing.fix import codec
from routing.fix.session import HEADER_TAGS, MemoryStore
from routing.models import InboundMessage, Venue

from .sim_client import Received, SimClient

NOW = dt.datetime(2026, 3, 2, 14, 30, 5, 123456, tzinfo=dt.UTC)


def instruction(
    alloc_id: str = "AL1",
    *,
    trans_type: str = "NEW",
    ref_alloc_id: str | None = None,
    symbol: str = "AAPL",
    side: str = "BUY",
    quantity: int = 1000,
    allocs: list[tuple[str, int]] | None = None,
    transact_time: dt.datetime = NOW,
) -> list[tuple[int, str]]:
    return codec.allocation_instruction(
        alloc_id=alloc_id,
        trans_type=trans_type,
        ref_alloc_id=ref_alloc_id,
        alloc_type="PRELIMINARY",
        side=side,
        symbol=symbol,
        quantity=quantity,
        avg_px=Decimal("187.2500"),
        trade_date=dt.date(2026, 3, 2),
        transact_time=transact_time,
        orders=[("OMS7-1", "V-O1")],
        allocs=allocs if allocs is not None else [("ACC-1", 600), ("ACC-2", 400)],
    )


# ------------------------------------------------------------------------- codec
def test_allocation_instruction_fields_in_fix_order():
    assert instruction() == [
        (70, "AL1"),
        (71, "0"),
        (626, "2"),
        (857, "1"),
        (73, "1"),
        (11, "OMS7-1"),
        (37, "V-O1"),
        (54, "1"),
        (55, "AAPL"),
        (53, "1000"),
        (6, "187.25"),
        (75, "20260302"),
        (60, "20260302-14:30:05.123"),
        (78, "2"),
        (79, "ACC-1"),
        (80, "600"),
        (79, "ACC-2"),
        (80, "400"),
    ]


def test_allocation_instruction_round_trips_through_the_session_encoding():
    body = instruction(
        "AL2", trans_type="REPLACE", ref_alloc_id="AL1", allocs=[("ACC-1", 500), ("ACC-2", 300), ("ACC-3", 200)]
    )
    session = SimClient(0).session
    raw = session.encode(codec.MSG_ALLOCATION_INSTRUCTION, body, 7)
    parsed = [(int(t), v) for t, v in (part.split("=", 1) for part in raw.decode().split("\x01") if part)]
    assert dict(parsed)[35] == "J"
    received = [(t, v) for t, v in parsed if t not in HEADER_TAGS and t not in (10,)]
    assert received == body
    assert (72, "AL1") in received and received.index((72, "AL1")) == received.index((626, "2")) + 1
    codec.validate_inbound("J", received, "FIX.4.4", frozenset({"J"}))
    assert codec.groups(received, 73, 11, (37,)) == [{11: "OMS7-1", 37: "V-O1"}]
    assert codec.groups(received, 78, 79, (80,)) == [
        {79: "ACC-1", 80: "500"},
        {79: "ACC-2", 80: "300"},
        {79: "ACC-3", 80: "200"},
    ]


def test_allocation_instruction_refuses_a_replace_without_its_reference():
    with pytest.raises(ValueError, match="RefAllocID"):
        instruction(trans_type="CANCEL")


@pytest.mark.parametrize(
    ("mutate", "reason", "tag"),
    [
        (lambda f: [(t, v) for t, v in f if t != 53], 1, 53),  # Quantity missing
        (lambda f: [(t, v) for t, v in f if t != 72] if (71, "1") in f else f, 1, 72),
        (lambda f: [(78, "3") if t == 78 else (t, v) for t, v in f], 16, 78),  # NumInGroup wrong
        (lambda f: [(80, "600") if (t, v) == (79, "ACC-2") else (t, v) for t, v in f], 15, 80),  # out of order
        (lambda f: [(71, "9") if t == 71 else (t, v) for t, v in f], 5, 71),
    ],
)
def test_an_invalid_allocation_instruction_fails_validation(mutate, reason, tag):
    fields = mutate(instruction(trans_type="REPLACE", ref_alloc_id="AL0"))
    with pytest.raises(codec.InvalidMessage) as raised:
        codec.validate_inbound("J", fields, "FIX.4.4", frozenset({"J"}))
    assert (raised.value.reason, raised.value.ref_tag) == (reason, tag)


def test_allocation_ack_is_validated_inbound():
    ack = codec.allocation_instruction_ack(
        alloc_id="AL1", status="1", transact_time=NOW, rej_code="8", text="AllocQty sums to 900"
    )
    assert ack == [(70, "AL1"), (60, "20260302-14:30:05.123"), (87, "1"), (88, "8"), (58, "AllocQty sums to 900")]
    codec.validate_inbound("P", ack, "FIX.4.4", frozenset({"8", "9", "j", "P"}))
    with pytest.raises(codec.InvalidMessage) as raised:
        codec.validate_inbound("P", [(70, "AL1"), (60, "20260302-14:30:05.123")], "FIX.4.4", frozenset({"P"}))
    assert raised.value.ref_tag == 87
    with pytest.raises(codec.InvalidMessage) as raised:
        codec.validate_inbound("P", [*ack[:2], (87, "9")], "FIX.4.4", frozenset({"P"}))
    assert (raised.value.reason, raised.value.ref_tag) == (5, 87)


def test_the_oms_session_accepts_allocation_acks():
    assert "P" in SimClient(0).config.accepts
    assert codec.MSG_TYPE_NAMES["J"] == "AllocationInstruction"
    assert codec.MSG_TYPE_NAMES["P"] == "AllocationInstructionAck"


# --------------------------------------------------------------------- simulator
def _valid_ack(message: Received) -> None:
    codec.validate_inbound("P", message.fields, "FIX.4.4", frozenset({"P"}))


def test_simulator_answers_received_then_accepted(make_sim, connect):
    sim = make_sim(fill_interval=0.3)
    client = connect(sim)
    client.send("J", instruction("AL1", transact_time=dt.datetime.now(dt.UTC)))
    received = client.expect(msg_type="P", t70="AL1")
    assert (received[87], received.get(88), received[75]) == ("3", None, "20260302")
    _valid_ack(received)
    assert sim.allocations == {"AL1": "received"}
    accepted = client.expect(msg_type="P", t70="AL1", t87="0")
    _valid_ack(accepted)
    assert received.seq < accepted.seq
    assert sim.allocations == {"AL1": "accepted"}
    assert [m.msg_type for m in client.messages] == ["P", "P"]
    assert sim.received[-1][0] == "J"


def test_simulator_rejects_allocations_not_summing_to_the_quantity(make_sim, connect):
    sim = make_sim()
    client = connect(sim)
    client.send("J", instruction("AL9", quantity=1000, allocs=[("ACC-1", 600), ("ACC-2", 300)]))
    reject = client.expect(msg_type="P", t70="AL9")
    _valid_ack(reject)
    assert (reject[87], reject[88]) == ("1", "8")
    assert reject[58] == "AllocQty sums to 900, not the Quantity 1000"
    assert sim.allocations == {"AL9": "rejected"}


def test_simulator_rejects_an_unknown_symbol(make_sim, connect):
    sim = make_sim(reject_symbols=["BADSYM"])
    client = connect(sim)
    client.send("J", instruction("AL3", symbol="BADSYM"))
    reject = client.expect(msg_type="P", t70="AL3")
    assert (reject[87], reject[88], reject[58]) == ("1", "7", "Unknown symbol BADSYM")
    assert sim.allocations == {"AL3": "rejected"}


def test_a_cancel_before_acceptance_is_accepted_and_the_original_never_is(make_sim, connect):
    sim = make_sim(fill_interval=0.5)
    client = connect(sim)
    client.send("J", instruction("AL1"))
    assert client.expect(msg_type="P", t70="AL1")[87] == "3"
    client.send("J", instruction("AL1-C", trans_type="CANCEL", ref_alloc_id="AL1"))
    assert client.expect(msg_type="P", t70="AL1-C")[87] == "0"
    # Redone: a new instruction is received and accepted.
    client.send("J", instruction("AL2", allocs=[("ACC-1", 500), ("ACC-2", 500)]))
    assert client.expect(msg_type="P", t70="AL2", t87="3")
    assert client.expect(msg_type="P", t70="AL2", t87="0")
    assert sim.allocations == {"AL1": "cancelled", "AL1-C": "accepted", "AL2": "accepted"}
    assert [(m[70], m[87]) for m in client.messages] == [("AL1", "3"), ("AL1-C", "0"), ("AL2", "3"), ("AL2", "0")]


def test_a_cancel_of_an_unknown_allocation_is_rejected(make_sim, connect):
    sim = make_sim()
    client = connect(sim)
    client.send("J", instruction("AL5-C", trans_type="CANCEL", ref_alloc_id="NOPE"))
    reject = client.expect(msg_type="P", t70="AL5-C")
    assert (reject[87], reject[88], reject[58]) == ("1", "7", "Unknown RefAllocID NOPE")


def test_allocation_acks_are_journaled_and_resendable_after_a_restart(make_sim, tmp_path):
    sim = make_sim(store_dir=tmp_path, fsync=False)
    client = SimClient(sim.port, store=MemoryStore()).connect()
    try:
        client.send("J", instruction("AL1"))
        client.expect(msg_type="P", t70="AL1", t87="0")
    finally:
        client.logout()
    sent = {msg_type for msg_type, _ in sim.session_for().store.outbound.values()}
    sim.stop()
    again = make_sim(store_dir=tmp_path, fsync=False)
    stored = [raw for msg_type, raw in again.session_for().store.outbound.values() if msg_type == "P"]
    assert "P" in sent
    assert len(stored) == 2 and all(b"\x0170=AL1\x01" in raw for raw in stored)


# -------------------------------------------------------------------- OMS inbox
@pytest.mark.django_db
@pytest.mark.parametrize("one_by_one", [False, True])
def test_an_allocation_ack_through_the_inbox_is_recorded_not_failed(one_by_one, monkeypatch):
    if one_by_one:  # the path taken after a batch failed: message by message

        def batch_failing(*args, **kwargs):
            raise RuntimeError("batch failed")

        monkeypatch.setattr(inbox, "_inbox_batch_apply", batch_failing)
    venue = Venue.objects.create(code="VALLOC", name="alloc", sender_comp_id="OMS", target_comp_id="SIM")
    body = codec.allocation_instruction_ack(alloc_id="AL1", status="3", transact_time=NOW)
    fields = [[35, "P"], [34, "1"], *[[t, v] for t, v in body]]
    message = InboundMessage.objects.create(
        venue=venue,
        epoch=1,
        msg_seq_num=1,
        msg_type="P",
        fields=fields,
        raw="".join(f"{t}={v}\x01" for t, v in fields),
    )
    assert inbox_apply(venue_code=venue.code) == 1
    message.refresh_from_db()
    assert message.applied_at is not None
    assert (message.outcome, message.error) == (ALLOCATION_ACK_UNMATCHED, "")
    event = AuditEvent.objects.get(action="fix.received", object_type="fix_session", object_id=venue.code)
    assert event.details["msg_type"] == "P" and event.details["outcome"] == ALLOCATION_ACK_UNMATCHED
