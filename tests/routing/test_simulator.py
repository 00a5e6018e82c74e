"""The venue simulator over real TCP, driven by our FixSession as the initiator.

Every ExecutionReport and OrderCancelReject the simulator sends must pass the same
inbound validation the OMS applies (checked for every client at teardown).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from routing.fix import codec
from routing.fix.session import MemoryStore

from .sim_client import Received, SimClient

REPO = Path(__file__).resolve().parents[2]


def _now() -> str:
    return codec.utc_timestamp(dt.datetime.now(dt.UTC))


def new_order(
    client: SimClient,
    cl_ord_id: str,
    *,
    qty: int = 1000,
    symbol: str = "IBM",
    side: str = "1",
    ord_type: str = "2",
    price: str | None = "10",
    account: str = "ACC1",
    time_in_force: str = "0",
) -> Received:
    fields = [(11, cl_ord_id), (1, account), (21, "1"), (55, symbol), (54, side), (38, str(qty)), (40, ord_type)]
    if price is not None:
        fields.append((44, price))
    fields += [(59, time_in_force), (60, _now())]
    client.send("D", fields)
    return client.expect(msg_type="8", t11=cl_ord_id)


def cancel(client: SimClient, cl_ord_id: str, orig: str, *, qty: int = 1000, symbol: str = "IBM") -> None:
    client.send("F", [(41, orig), (11, cl_ord_id), (1, "ACC1"), (55, symbol), (54, "1"), (60, _now()), (38, str(qty))])


def replace(client: SimClient, cl_ord_id: str, orig: str, *, qty: int, price: str = "10") -> None:
    client.send(
        "G",
        [
            (41, orig),
            (11, cl_ord_id),
            (1, "ACC1"),
            (21, "1"),
            (55, "IBM"),
            (54, "1"),
            (38, str(qty)),
            (40, "2"),
            (44, price),
            (59, "0"),
            (60, _now()),
        ],
    )


def quantities(report: Received) -> tuple[str, str, str, str, Decimal]:
    """(ExecType, OrdStatus, CumQty, LeavesQty, AvgPx)"""
    return report[150], report[39], report[14], report[151], Decimal(report[6])


# ---------------------------------------------------------------------------- orders
def test_logon_and_immediate_fill(make_sim, connect):
    sim = make_sim(fill_mode="immediate")
    client = connect(sim)
    assert client.session.is_active

    ack = new_order(client, "A1", qty=500, price="12.34")
    assert quantities(ack) == ("0", "0", "0", "500", Decimal(0))
    assert ack[37] != "NONE" and ack[1] == "ACC1" and ack[55] == "IBM" and ack[54] == "1"
    assert ack[38] == "500" and ack[40] == "2" and ack[44] == "12.34" and 60 in dict(ack.fields)
    fill = client.expect(msg_type="8", t11="A1", t150="F")
    assert quantities(fill) == ("F", "2", "500", "0", Decimal("12.34"))
    assert (fill[32], fill[31], fill[37]) == ("500", "12.34", ack[37])
    assert fill[17] != ack[17]
    order = sim.order(cl_ord_id="A1")
    assert order.order_id == ack[37] and order.cum_qty == 500 and order.status == "2"


def test_partial_fills_report_exact_cumulative_quantities(make_sim, connect):
    sim = make_sim(fill_mode="partial", fill_interval=0.2, partial_fill_parts=3)
    client = connect(sim)
    new_order(client, "P1", qty=100, price="10.01")
    reports = [client.expect(msg_type="8", t11="P1", t150="F") for _ in range(3)]
    assert [(r[32], r[14], r[151], r[39]) for r in reports] == [
        ("33", "33", "67", "1"),
        ("33", "66", "34", "1"),
        ("34", "100", "0", "2"),
    ]
    assert all(Decimal(r[6]) == Decimal("10.01") and r[31] == "10.01" for r in reports)
    assert len({r[17] for r in reports}) == 3
    time.sleep(0.5)
    assert client.unconsumed() == []


def test_market_order_fills_at_the_reference_price(make_sim, connect):
    sim = make_sim(fill_mode="immediate", reference_price=Decimal("42.125"))
    client = connect(sim)
    ack = new_order(client, "M1", qty=10, ord_type="1", price=None)
    assert 44 not in dict(ack.fields)
    fill = client.expect(msg_type="8", t11="M1", t150="F")
    assert fill[31] == "42.125" and Decimal(fill[6]) == Decimal("42.125")


def test_fill_mode_none_only_acknowledges(make_sim, connect):
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    ack = new_order(client, "N1")
    assert quantities(ack) == ("0", "0", "0", "1000", Decimal(0))
    time.sleep(0.6)
    assert client.unconsumed() == []
    assert sim.orders[ack[37]].leaves_qty == 1000


def test_rejected_symbol(make_sim, connect):
    sim = make_sim(fill_mode="immediate", reject_symbols=["aapl", "MSFT"])
    client = connect(sim)
    report = new_order(client, "R1", symbol="AAPL")
    assert quantities(report) == ("8", "8", "0", "0", Decimal(0))
    assert report[103] == "1" and "Unknown symbol" in report[58]
    time.sleep(0.4)
    assert client.unconsumed() == []
    assert sim.order(cl_ord_id="R1").rejected


def test_rest_symbol_is_acknowledged_and_left_working_while_others_fill(make_sim, connect):
    sim = make_sim(fill_mode="immediate", rest_symbols=["ibm"])
    client = connect(sim)
    resting = new_order(client, "REST1", symbol="IBM", qty=300)
    assert quantities(resting) == ("0", "0", "0", "300", Decimal(0))
    filled = new_order(client, "FILL1", symbol="AAPL", qty=100)
    assert filled[150] == "0"
    assert client.expect(msg_type="8", t11="FILL1", t150="F")[39] == "2"
    time.sleep(0.5)
    assert client.unconsumed() == []
    assert sim.order(cl_ord_id="REST1").leaves_qty == 300
    # It still trades when told to (as a person at the venue would fill it).
    sim.fill(resting[37], 100)
    assert client.expect(msg_type="8", t11="REST1", t150="F")[39] == "1"


def test_duplicate_clordid_is_rejected_with_the_existing_orders_status(make_sim, connect):
    """FIX F.1.a: the reject names the existing order and its OrdStatus."""
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    ack = new_order(client, "DUP1", qty=100)
    sim.fill(ack[37], 40)
    client.expect(msg_type="8", t150="F")
    reject = new_order(client, "DUP1", qty=999)
    assert (reject[150], reject[39], reject[103], reject[37]) == ("8", "1", "6", ack[37])
    assert (reject[38], reject[14], reject[151]) == ("100", "40", "60")
    assert len(sim.orders) == 1 and sim.order(cl_ord_id="DUP1").order_qty == 100


@pytest.mark.parametrize(
    "fill_mode, time_in_force, executed",
    [("none", "3", 0), ("partial", "3", 250), ("partial", "4", 1000), ("none", "4", 0)],
)
def test_ioc_and_fok_never_rest(make_sim, connect, fill_mode, time_in_force, executed):
    sim = make_sim(fill_mode=fill_mode, partial_fill_parts=4)
    client = connect(sim)
    new_order(client, "IOC1", qty=1000, time_in_force=time_in_force)
    if executed:
        fill = client.expect(msg_type="8", t150="F")
        assert (fill[32], fill[14]) == (str(executed), str(executed))
    if executed < 1000:
        canceled = client.expect(msg_type="8", t150="4")
        assert (canceled[39], canceled[14], canceled[151]) == ("4", str(executed), "0")
    time.sleep(0.5)
    assert client.unconsumed() == []


# --------------------------------------------------------------------------- cancels
def test_cancel_open_order(make_sim, connect):
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    ack = new_order(client, "C1")
    sim.fill(ack[37], 200, Decimal("10"))
    client.expect(msg_type="8", t150="F")
    cancel(client, "C2", "C1")
    pending = client.expect(msg_type="8", t150="6")
    assert (pending[11], pending[41], pending[39], pending[14], pending[151]) == ("C2", "C1", "6", "200", "800")
    canceled = client.expect(msg_type="8", t150="4")
    assert (canceled[11], canceled[41], canceled[37]) == ("C2", "C1", ack[37])
    assert quantities(canceled) == ("4", "4", "200", "0", Decimal(10))


def test_cancel_stops_timed_fills(make_sim, connect):
    sim = make_sim(fill_mode="partial", fill_interval=0.3)
    client = connect(sim)
    new_order(client, "CT1", qty=400)
    client.expect(msg_type="8", t150="F")  # 100 of 400
    cancel(client, "CT2", "CT1", qty=400)
    canceled = client.expect(msg_type="8", t150="4", timeout=15)
    time.sleep(1.0)
    assert [m for m in client.unconsumed() if m.get(150) == "F"] == []
    order = sim.order(cl_ord_id="CT1")
    assert order.canceled and canceled[14] == str(order.cum_qty) and canceled[151] == "0"


def test_cancel_of_unknown_order(make_sim, connect):
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    cancel(client, "U2", "NOPE")
    reject = client.expect(msg_type="9")
    assert (reject[37], reject[11], reject[41], reject[39], reject[434], reject[102]) == (
        "NONE",
        "U2",
        "NOPE",
        "8",
        "1",
        "1",
    )


def test_cancel_after_fill_is_too_late(make_sim, connect):
    sim = make_sim(fill_mode="immediate")
    client = connect(sim)
    ack = new_order(client, "L1")
    client.expect(msg_type="8", t150="F")
    cancel(client, "L2", "L1")
    reject = client.expect(msg_type="9")
    assert (reject[37], reject[39], reject[434], reject[102]) == (ack[37], "2", "1", "0")
    # ... and the same for an order already canceled.
    sim2 = make_sim(fill_mode="none")
    client2 = connect(sim2)
    new_order(client2, "L3")
    cancel(client2, "L4", "L3")
    client2.expect(msg_type="8", t150="4")
    cancel(client2, "L5", "L4")
    reject = client2.expect(msg_type="9")
    assert (reject[39], reject[102], reject[434]) == ("4", "0", "1")


def test_fill_during_pending_cancel_reports_pending_cancel(make_sim, connect):
    """FIX B.1.b row 6: Pending Cancel takes precedence over Partially Filled."""
    sim = make_sim(fill_mode="none", pending_delay=2.0)
    client = connect(sim)
    ack = new_order(client, "PC1")
    cancel(client, "PC2", "PC1")
    client.expect(msg_type="8", t150="6")
    sim.fill(ack[37], 300, Decimal("10"))
    fill = client.expect(msg_type="8", t150="F")
    assert (fill[11], fill[39], fill[38], fill[14], fill[151]) == ("PC1", "6", "1000", "300", "700")
    canceled = client.expect(msg_type="8", t150="4")
    assert quantities(canceled) == ("4", "4", "300", "0", Decimal(10))


def test_order_filled_while_cancel_pending_gets_cancel_reject(make_sim, connect):
    """FIX B.1.c: the fill reports Pending Cancel; the Cancel Reject then says Filled."""
    sim = make_sim(fill_mode="none", pending_delay=1.5)
    client = connect(sim)
    ack = new_order(client, "PF1")
    cancel(client, "PF2", "PF1")
    client.expect(msg_type="8", t150="6")
    sim.fill(ack[37], 1000)
    fill = client.expect(msg_type="8", t150="F")
    assert (fill[39], fill[14], fill[151]) == ("6", "1000", "0")
    reject = client.expect(msg_type="9")
    assert (reject[11], reject[41], reject[39], reject[102], reject[434]) == ("PF2", "PF1", "2", "0", "1")


# -------------------------------------------------------------------------- replaces
def test_replace_increase_then_fills_on_the_new_clordid(make_sim, connect):
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    ack = new_order(client, "R1", qty=1000, price="10")
    sim.fill(ack[37], 300)
    client.expect(msg_type="8", t150="F")
    replace(client, "R2", "R1", qty=1500, price="11")
    pending = client.expect(msg_type="8", t150="E")
    assert (pending[11], pending[41], pending[39], pending[38], pending[44]) == ("R2", "R1", "E", "1000", "10")
    assert (pending[14], pending[151]) == ("300", "700")
    replaced = client.expect(msg_type="8", t150="5")
    assert (replaced[11], replaced[41], replaced[38], replaced[44]) == ("R2", "R1", "1500", "11")
    assert quantities(replaced) == ("5", "1", "300", "1200", Decimal(10))
    sim.fill(ack[37], 1200)
    fill = client.expect(msg_type="8", t150="F")
    assert (fill[11], fill[31], fill[32]) == ("R2", "11", "1200")
    # AvgPx is the exact weighted average over both versions: (300*10 + 1200*11) / 1500.
    assert quantities(fill) == ("F", "2", "1500", "0", Decimal("10.8"))


def test_replace_keeps_timed_fills_going_on_the_new_quantity(make_sim, connect):
    sim = make_sim(fill_mode="partial", fill_interval=0.5, partial_fill_parts=4)
    client = connect(sim)
    new_order(client, "T1", qty=400)
    client.expect(msg_type="8", t150="F", t11="T1")
    replace(client, "T2", "T1", qty=800)
    client.expect(msg_type="8", t150="5", t11="T2")
    last = client.expect(msg_type="8", t150="F", t39="2", timeout=20)
    assert (last[11], last[38], last[14], last[151]) == ("T2", "800", "800", "0")
    fills = [m for m in client.messages if m.get(150) == "F"]
    assert sum(int(m[32]) for m in fills) == 800
    assert all(m[11] == "T2" for m in fills[fills.index(last) - 1 : fills.index(last) + 1])


def test_replace_below_cum_qty_fills_the_order_at_cum_qty(make_sim, connect):
    """FIX C.3.c: OrderQty becomes CumQty and the order is Filled."""
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    ack = new_order(client, "B1", qty=1000)
    sim.fill(ack[37], 800)
    client.expect(msg_type="8", t150="F")
    replace(client, "B2", "B1", qty=700)
    pending = client.expect(msg_type="8", t150="E")
    assert (pending[39], pending[38], pending[14], pending[151]) == ("E", "1000", "800", "200")
    replaced = client.expect(msg_type="8", t150="5")
    assert (replaced[11], replaced[41], replaced[38]) == ("B2", "B1", "800")
    assert quantities(replaced) == ("5", "2", "800", "0", Decimal(10))
    time.sleep(0.3)
    assert client.unconsumed() == []


def test_replace_of_unknown_or_done_order_is_rejected(make_sim, connect):
    sim = make_sim(fill_mode="immediate")
    client = connect(sim)
    replace(client, "X2", "X1", qty=10)
    reject = client.expect(msg_type="9")
    assert (reject[37], reject[39], reject[102], reject[434]) == ("NONE", "8", "1", "2")
    ack = new_order(client, "D1", qty=100)
    client.expect(msg_type="8", t150="F")
    replace(client, "D2", "D1", qty=100, price="9")  # a price change on a filled order (FIX C.2.a)
    reject = client.expect(msg_type="9")
    assert (reject[37], reject[39], reject[102], reject[434]) == (ack[37], "2", "0", "2")


def test_replace_increasing_a_filled_order_reopens_it(make_sim, connect):
    """FIX C.1.c: Filled -> Pending Replace -> Replace (Partially Filled) -> Filled."""
    sim = make_sim(fill_mode="immediate")
    client = connect(sim)
    new_order(client, "F1", qty=100)
    client.expect(msg_type="8", t150="F")
    replace(client, "F2", "F1", qty=150)
    pending = client.expect(msg_type="8", t150="E")
    assert (pending[39], pending[38], pending[14], pending[151]) == ("E", "100", "100", "0")
    replaced = client.expect(msg_type="8", t150="5")
    assert (replaced[39], replaced[38], replaced[14], replaced[151]) == ("1", "150", "100", "50")
    fill = client.expect(msg_type="8", t150="F", t11="F2")
    assert (fill[39], fill[32], fill[14], fill[151]) == ("2", "50", "150", "0")


def test_second_request_while_one_is_pending_is_rejected(make_sim, connect):
    sim = make_sim(fill_mode="none", pending_delay=1.5)
    client = connect(sim)
    new_order(client, "W1")
    replace(client, "W2", "W1", qty=2000)
    client.expect(msg_type="8", t150="E")
    cancel(client, "W3", "W1")
    reject = client.expect(msg_type="9")
    assert (reject[11], reject[39], reject[102], reject[434]) == ("W3", "E", "3", "1")
    replaced = client.expect(msg_type="8", t150="5")
    assert (replaced[11], replaced[38], replaced[39]) == ("W2", "2000", "0")


# ---------------------------------------------------------------------------- status
def test_order_status_request(make_sim, connect):
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    ack = new_order(client, "S1", qty=1000, price="20")
    sim.fill(ack[37], 250)
    client.expect(msg_type="8", t150="F")
    client.send("H", [(11, "S1"), (55, "IBM"), (54, "1"), (790, "REQ-1")])
    status = client.expect(msg_type="8", t150="I")
    assert (status[17], status[37], status[11], status[790]) == ("0", ack[37], "S1", "REQ-1")
    assert quantities(status) == ("I", "1", "250", "750", Decimal(20))

    client.send("H", [(11, "GHOST"), (55, "IBM"), (54, "1")])
    unknown = client.expect(msg_type="8", t150="I")
    assert (unknown[37], unknown[11], unknown[39], unknown[103], unknown[17]) == ("NONE", "GHOST", "8", "5", "0")


# ------------------------------------------------------------------------ unsolicited
def test_unsolicited_cancel_after_a_delay(make_sim, connect):
    sim = make_sim(fill_mode="none", unsolicited_cancel_after=0.5)
    client = connect(sim)
    ack = new_order(client, "UC1")
    canceled = client.expect(msg_type="8", t150="4")
    assert (canceled[37], canceled[11], canceled[378]) == (ack[37], "UC1", "8")
    assert quantities(canceled) == ("4", "4", "0", "0", Decimal(0))
    assert canceled[58]


def test_cancel_unsolicited_hook(make_sim, connect):
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    ack = new_order(client, "UH1")
    sim.fill(ack[37], 100)
    client.expect(msg_type="8", t150="F")
    sim.cancel_unsolicited(ack[37], text="Halted")
    canceled = client.expect(msg_type="8", t150="4")
    assert (canceled[378], canceled[58]) == ("99", "Halted")
    assert quantities(canceled) == ("4", "4", "100", "0", Decimal(10))
    with pytest.raises(ValueError):
        sim.cancel_unsolicited(ack[37])


def test_bust(make_sim, connect):
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    ack = new_order(client, "BU1", qty=500)
    first = sim.fill(ack[37], 100, Decimal("10"))
    sim.fill(ack[37], 300, Decimal("12"))
    assert Decimal(client.expect(msg_type="8", t150="F", t17=first)[6]) == Decimal(10)
    assert Decimal(client.expect(msg_type="8", t150="F")[6]) == Decimal("11.5")
    sim.bust(first)
    bust = client.expect(msg_type="8", t150="H")
    assert bust[19] == first and bust[17] != first
    assert quantities(bust) == ("H", "1", "300", "200", Decimal(12))
    with pytest.raises(ValueError):
        sim.bust(first)


def test_restate(make_sim, connect):
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    ack = new_order(client, "RS1", qty=1000)
    sim.restate(ack[37], 900)
    restated = client.expect(msg_type="8", t150="D")
    assert (restated[378], restated[38], restated[151], restated[39], restated[11]) == ("5", "900", "900", "0", "RS1")


# ---------------------------------------------------------------------------- session
def test_sequence_numbers_continue_across_a_reconnect(make_sim, connect):
    sim = make_sim(fill_mode="none")
    store = MemoryStore()
    client = connect(sim, store=store)
    ack = new_order(client, "Q1", qty=100)
    client.logout()
    assert not client.session.is_active
    sent_before = store.next_sender_seq()
    received_before = store.next_target_seq()
    assert received_before > 2

    # Executed while the OMS is away: sequenced, stored and resent after the Logon.
    sim.fill(ack[37], 40)
    client2 = connect(sim, store=store)
    fill = client2.expect(msg_type="8", t150="F", t11="Q1")
    assert (fill[14], fill[151]) == ("40", "60")
    assert fill.seq == received_before  # no reset: numbering continued
    assert store.next_sender_seq() > sent_before
    new_order(client2, "Q2", qty=10)
    assert sim.session_for().store.next_target_seq() == store.next_sender_seq()


def test_unknown_comp_id_is_refused_without_touching_the_real_session(make_sim, connect):
    sim = make_sim(fill_mode="none")
    client = connect(sim)
    new_order(client, "K1")
    next_out = sim.session_for().store.next_sender_seq()
    stranger = SimClient(sim.port, sender_comp_id="EVIL")
    with pytest.raises(AssertionError):
        stranger.connect(timeout=3)
    stranger.drop()
    assert sim.session_for().store.next_sender_seq() == next_out
    assert client.session.is_active


def test_a_bad_message_does_not_kill_the_server(make_sim, connect):
    sim = make_sim(fill_mode="immediate")
    with socket.create_connection(("127.0.0.1", sim.port)) as raw:
        raw.sendall(b"8=FIX.4.4\x019=5\x01garbage\x0110=000\x01")
        raw.settimeout(5)
        try:
            raw.recv(100)
        except TimeoutError:
            pass
    client = connect(sim)
    # A quantity that is not a whole number: rejected, and the session goes on.
    client.send("D", [(11, "Z1"), (55, "IBM"), (54, "1"), (38, "1.5"), (40, "1"), (60, _now())])
    reject = client.expect(msg_type="8", t11="Z1")
    assert (reject[150], reject[39], reject[103]) == ("8", "8", "13")
    new_order(client, "Z2", qty=5)
    assert client.expect(msg_type="8", t150="F", t11="Z2")[14] == "5"


# ---------------------------------------------------------------------------- command
@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "1", "--fill-mode", "sometimes"], "--fill-mode"),
        (["--port", "1", "--fill-interval", "0"], "--fill-interval"),
        (["--port", "1", "--reference-price", "abc"], "--reference-price"),
        (["--port", "1", "--reference-price", "-1"], "--reference-price"),
        (["--port", "70000"], "--port"),
        (["--port", "1", "--unsolicited-cancel-after", "-2"], "--unsolicited-cancel-after"),
    ],
)
def test_command_rejects_bad_options(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("run_venue_simulator", *args)


def test_command_runs_without_a_database_and_stops_on_sigterm(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_venue_simulator",
            "--port",
            str(port),
            "--fill-mode",
            "immediate",
            "--store-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        client = None
        while client is None:
            try:
                client = SimClient(port).connect(timeout=10)
            except (ConnectionRefusedError, AssertionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.3)
        new_order(client, "CMD1", qty=7)
        assert client.expect(msg_type="8", t150="F")[14] == "7"
        process.send_signal(signal.SIGTERM)
        client.logged_out.wait(10)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "listening on" in stdout and "stopped" in stdout
    assert "35=D|" in stderr and "35=8|" in stderr  # the readable message log
