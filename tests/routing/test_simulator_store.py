"""The venue simulator across restarts (its file store) and its fill prices.

An OMS-side session (our FixSession as the initiator, with its own store that outlives
the connections) talks to a simulator that is stopped and started again on the same
store directory, in process and, for ``kill -9``, as the management command.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from orders.models import Order, Security
from routing.fix.session import MemoryStore
from routing.fix.stores import InboundRecord
from routing.management.commands.run_venue_simulator import _reference_prices
from routing.models import Venue, VenueSession
from routing.simulator import SimulatorServer
from routing.simulator_prices import PriceBook
from routing.simulator_store import SimulatorStore, StoreError

from .conftest import wait_for
from .sim_client import Received, SimClient
from .test_simulator import _now, cancel, new_order, quantities, replace

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sims(tmp_path):
    """Start simulators on one store directory (``tmp_path``); each is stopped at the end."""
    started: list[SimulatorServer] = []

    def start(**options) -> SimulatorServer:
        options.setdefault("fill_interval", 0.2)
        options.setdefault("store_dir", tmp_path)
        server = SimulatorServer("127.0.0.1", 0, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        assert server.session_rejects == [], "the client session-rejected something the simulator sent"


def restart(server: SimulatorServer, start, **options) -> SimulatorServer:
    server.stop()
    return start(**options)


def logon_answers(client: SimClient) -> list[dict[int, str]]:
    return [dict(fields) for fields in client.raw_frames if dict(fields)[35] == "A"]


# ------------------------------------------------------------------- sequence numbers
def test_sequence_numbers_continue_across_a_restart(sims, connect):
    sim = sims(fill_mode="none")
    oms = MemoryStore()
    client = connect(sim, store=oms)
    new_order(client, "S1", qty=100)
    client.logout()
    ours, theirs = oms.next_sender_seq(), oms.next_target_seq()
    assert ours > 3 and theirs > 3

    sim = restart(sim, sims, fill_mode="none")
    store = sim.session_for().store
    assert (store.next_target_seq(), store.next_sender_seq()) == (ours, theirs)
    client = connect(sim, store=oms)  # logs on with its continued numbers, no reset
    assert [answer[34] for answer in logon_answers(client)] == [str(theirs)]
    assert all(answer.get(141) != "Y" for answer in logon_answers(client))
    ack = new_order(client, "S2", qty=10)
    assert ack.seq == theirs + 1 and ack[39] == "0"
    assert sim.session_for().store.next_target_seq() == oms.next_sender_seq()


def test_a_resend_request_after_a_restart_is_answered_from_the_journal(sims, connect):
    sim = sims(fill_mode="immediate")
    oms = MemoryStore()
    client = connect(sim, store=oms)
    ack = new_order(client, "R1", qty=300, price="12.5")
    fill = client.expect(msg_type="8", t11="R1", t150="F")
    client.drop()

    sim = restart(sim, sims, fill_mode="immediate")
    oms.set_next_target_seq(ack.seq)  # the OMS never got (or lost) the ack and the fill
    client = connect(sim, store=oms)
    again_ack = client.expect(msg_type="8", t11="R1", t150="0")
    again_fill = client.expect(msg_type="8", t11="R1", t150="F")
    assert (again_ack.seq, again_fill.seq) == (ack.seq, fill.seq)
    assert again_ack.fields == ack.fields and again_fill.fields == fill.fields  # the same content
    resent = [dict(f) for f in client.raw_frames if dict(f)[35] == "8"]
    assert len(resent) == 2 and all(r[43] == "Y" and 122 in r for r in resent)
    assert sim.orders[ack[37]].cum_qty == 300


# ---------------------------------------------------------------------- order book
def test_an_order_placed_before_the_restart_is_cancelled_after_it(sims, connect):
    sim = sims(fill_mode="none")
    oms = MemoryStore()
    client = connect(sim, store=oms)
    ack = new_order(client, "C1", qty=1000, price="20")
    sim.fill(ack[37], 300, Decimal("19.5"))
    client.expect(msg_type="8", t11="C1", t150="F")
    replace(client, "C2", "C1", qty=800, price="20")
    assert quantities(client.expect(msg_type="8", t11="C2", t150="5"))[:4] == ("5", "1", "300", "500")
    client.logout()

    sim = restart(sim, sims, fill_mode="none")
    order = sim.order(cl_ord_id="C2")
    assert (order.order_id, order.cum_qty, order.leaves_qty, order.order_qty) == (ack[37], 300, 500, 800)
    assert order.avg_px == Decimal("19.5") and order.cl_ord_ids == ["C1", "C2"]
    client = connect(sim, store=oms)
    cancel(client, "C3", "C2", qty=800, symbol="IBM")
    assert quantities(client.expect(msg_type="8", t11="C3", t150="6"))[:4] == ("6", "6", "300", "500")
    done = client.expect(msg_type="8", t11="C3", t150="4")
    assert quantities(done) == ("4", "4", "300", "0", Decimal("19.5"))
    assert (done[37], done[41]) == (ack[37], "C2")

    # The ClOrdIDs used before the restart are still known: a reuse is a duplicate.
    client.send("D", [(11, "C2"), (1, "ACC1"), (55, "IBM"), (54, "1"), (38, "5"), (40, "1"), (60, _now())])
    duplicate = client.expect(msg_type="8", t150="8")
    assert (duplicate[37], duplicate[103]) == (ack[37], "6")
    ack2 = new_order(client, "C4", qty=5)
    assert ack2[37] != ack[37] and ack2[17] not in {done[17], ack[17]}


def test_partial_fills_go_on_after_a_restart_with_new_exec_ids(sims, connect):
    sim = sims(fill_mode="partial", partial_fill_parts=4, fill_interval=0.3)
    oms = MemoryStore()
    client = connect(sim, store=oms)
    ack = new_order(client, "P1", qty=400, price="10")
    client.expect(msg_type="8", t11="P1", t150="F")
    client.drop()
    fills = [m for m in client.messages if m.msg_type == "8" and m[150] == "F"]
    sim = restart(sim, sims, fill_mode="partial", partial_fill_parts=4, fill_interval=0.3)
    wait_for(lambda: sim.order(order_id=ack[37]).cum_qty == 400, what="the remaining fills")

    client = connect(sim, store=oms)  # the fills made while away arrive by resend
    while sum(int(f[32]) for f in fills) < 400:
        fills.append(client.expect(msg_type="8", t11="P1", t150="F"))
    assert fills[-1][14] == "400" and fills[-1][39] == "2"
    assert len({f[17] for f in fills}) == len(fills)  # no ExecID used twice


def test_a_torn_journal_tail_is_ignored(sims, connect, tmp_path):
    sim = sims(fill_mode="none")
    oms = MemoryStore()
    client = connect(sim, store=oms)
    new_order(client, "T1", qty=10)
    client.logout()
    sim.stop()
    journal = next(tmp_path.glob("SIM-OMS/journal-*.jsonl"))
    last = journal.read_bytes().splitlines()[-1]
    with open(journal, "ab") as out:
        out.write(last[: len(last) // 2])  # a record cut off in the middle of its write
    size_before = journal.stat().st_size

    sim = sims(fill_mode="none")
    assert journal.stat().st_size < size_before  # the torn bytes are cut off
    client = connect(sim, store=oms)
    ack = new_order(client, "T2", qty=10)
    assert sim.order(cl_ord_id="T1") is not None and ack[39] == "0"
    for line in journal.read_bytes().splitlines():
        json.loads(line)  # every line whole again


def test_reset_on_logon_restarts_both_numbers_at_every_connection(sims, connect):
    sim = sims(fill_mode="none", reset_on_logon=True)
    oms = MemoryStore()
    client = connect(sim, store=oms)
    ack = new_order(client, "Z1", qty=100)
    client.logout()
    assert oms.next_sender_seq() > 3

    sim = restart(sim, sims, fill_mode="none", reset_on_logon=True)
    client = connect(sim, store=oms)  # the OMS does not reset: it continues its numbers
    (answer,) = logon_answers(client)
    assert (answer[34], answer[141]) == ("1", "Y")
    assert oms.next_target_seq() == 2
    assert [seq for seq, _, _ in sim.session_for().store.outbound_range(1, 1000)] == [1]  # the old ones are gone
    cancel(client, "Z2", "Z1", qty=100)  # the book survives the reset
    assert quantities(client.expect(msg_type="8", t11="Z2", t150="4"))[:4] == ("4", "4", "0", "0")
    assert client.expect(msg_type="8", t11="Z2", t150="6")[37] == ack[37]


def test_a_logon_asking_for_a_reset_resets_both_sides_and_the_store(sims, connect):
    sim = sims(fill_mode="none")
    oms = MemoryStore()
    client = connect(sim, store=oms)
    new_order(client, "Y1", qty=100)
    client.logout()
    assert sim.session_for().store.next_sender_seq() > 3

    client = connect(sim, store=oms, reset_on_logon=True)
    (answer,) = logon_answers(client)
    assert (answer[34], answer[141]) == ("1", "Y")
    new_order(client, "Y2", qty=5)
    client.logout()
    after = (oms.next_sender_seq(), oms.next_target_seq())
    assert after[0] < 6

    sim = restart(sim, sims, fill_mode="none")
    store = sim.session_for().store
    assert (store.next_target_seq(), store.next_sender_seq()) == after
    connect(sim, store=oms)  # continues the numbers begun at the reset


# ------------------------------------------------------------------- the store itself
def test_the_store_is_used_by_one_simulator_at_a_time(tmp_path):
    store = SimulatorStore(tmp_path, fsync=False)
    with pytest.raises(StoreError, match="in use"):
        SimulatorStore(tmp_path, fsync=False)
    store.close()
    SimulatorStore(tmp_path, fsync=False).close()


def test_an_unreadable_checkpoint_refuses_to_start(tmp_path):
    SimulatorStore(tmp_path, fsync=False).close()
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable"):
        SimulatorStore(tmp_path, fsync=False)


def test_inbound_numbers_are_durable_only_once_processed(tmp_path):
    store = SimulatorStore(tmp_path, fsync=False)
    store.accept_inbound_batch([InboundRecord(1, "D", [], b""), InboundRecord(2, "D", [], b"")])
    store.processing(1)
    store.save_outbound(1, "8", b"8=FIX.4.4\x0135=8\x01")
    store.close(checkpoint=False)  # dies before processing message 2: it must come again
    store = SimulatorStore(tmp_path, fsync=False)
    assert (store.next_target_seq(), store.next_sender_seq()) == (2, 1 + 1)
    assert store.outbound_range(1, 1) == [(1, "8", b"8=FIX.4.4\x0135=8\x01")]
    store.set_next_target_seq(3)
    store.commit()
    store.close(checkpoint=False)
    store = SimulatorStore(tmp_path, fsync=False)
    assert store.next_target_seq() == 3
    store.close()


# ----------------------------------------------------------------------------- kill -9
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _spawn(port: int, store_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere", "PYTHONUNBUFFERED": "1"}
    args = ["--port", str(port), "--fill-mode", "partial", "--fill-interval", "0.25", "--store-dir", str(store_dir)]
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_venue_simulator", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _connect_when_up(port: int, store: MemoryStore, process: subprocess.Popen) -> SimClient:
    deadline = time.monotonic() + 30
    while True:
        client = SimClient(port, store=store)
        try:
            return client.connect(timeout=10)
        except (ConnectionRefusedError, AssertionError):
            client.drop()
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.3)


def test_the_command_killed_with_sigkill_continues_where_it_stopped(tmp_path):
    port, oms = _free_port(), MemoryStore()
    process = _spawn(port, tmp_path)
    processes = [process]
    try:
        client = _connect_when_up(port, oms, process)
        acks = [new_order(client, f"K{n}", qty=400, price="10") for n in (1, 2)]
        client.expect(msg_type="8", t11="K1", t150="F")
        process.kill()  # in the middle of the fills
        process.wait(10)
        wait_for(lambda: client.session.transport is None, what="the connection to end")
        received = list(client.messages)

        process = _spawn(port, tmp_path)
        processes.append(process)
        client = _connect_when_up(port, oms, process)
        for ack in acks:
            fills: dict[str, Received] = {m[17]: m for m in received if m[37] == ack[37] and m[150] == "F"}
            while sum(int(f[32]) for f in fills.values()) < 400:
                fill = client.expect(msg_type="8", t11=ack[11], t150="F")
                fills[fill[17]] = fill
            assert max(int(f[14]) for f in fills.values()) == 400
        assert client.fatal == [] and client.rejects == []
        client.logout()
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        for started in processes:
            if started.poll() is None:
                started.kill()
                started.wait()


# ----------------------------------------------------------------------------- prices
MSFT = Decimal("415.20")


def test_market_orders_fill_near_the_reference_price_on_the_side_that_costs(connect, sims):
    sim = sims(store_dir=None, fill_mode="immediate", reference_prices={"MSFT": MSFT}, slippage_bps=5)
    client = connect(sim)
    buys, sells = [], []
    for n in range(8):
        new_order(client, f"MB{n}", symbol="MSFT", side="1", ord_type="1", price=None, qty=10)
        buys.append(Decimal(client.expect(msg_type="8", t11=f"MB{n}", t150="F")[31]))
        new_order(client, f"MS{n}", symbol="MSFT", side="2", ord_type="1", price=None, qty=10)
        sells.append(Decimal(client.expect(msg_type="8", t11=f"MS{n}", t150="F")[31]))
    assert all(MSFT <= p <= MSFT * Decimal("1.0005") and p == p.quantize(Decimal("0.01")) for p in buys)
    assert all(MSFT * Decimal("0.9995") <= p <= MSFT and p == p.quantize(Decimal("0.01")) for p in sells)
    assert len(set(buys)) > 1  # slippage, not a fixed price
    new_order(client, "OTHER", symbol="IBM", ord_type="1", price=None, qty=10)  # no reference: the default
    assert Decimal(100) <= Decimal(client.expect(msg_type="8", t11="OTHER", t150="F")[31]) <= Decimal("100.05")


def test_limit_orders_fill_at_the_limit_or_better(connect, sims):
    sim = sims(store_dir=None, fill_mode="immediate", reference_prices={"MSFT": MSFT}, slippage_bps=5)
    client = connect(sim)
    cases = [("LB1", "1", "420"), ("LB2", "1", "400"), ("LS1", "2", "410"), ("LS2", "2", "430")]
    prices = {}
    for cl_ord_id, side, limit in cases:
        new_order(client, cl_ord_id, symbol="MSFT", side=side, price=limit, qty=10)
        prices[cl_ord_id] = Decimal(client.expect(msg_type="8", t11=cl_ord_id, t150="F")[31])
    assert MSFT <= prices["LB1"] <= MSFT * Decimal("1.0005")  # marketable: at the market, better
    assert prices["LB2"] == Decimal("400")  # not marketable: at the limit, never worse
    assert MSFT * Decimal("0.9995") <= prices["LS1"] <= MSFT
    assert prices["LS2"] == Decimal("430")


def test_price_book_ticks_and_determinism():
    book = PriceBook(Decimal(100), slippage_bps=10, prices={"penny": "0.5123", "BIG": "415.2", "bad": "-1"})
    assert book.reference("PENNY") == Decimal("0.5123") and book.reference("BAD") is None
    low = book.market("PENNY", "1", "O1:0")
    assert Decimal("0.5123") <= low <= Decimal("0.5124") and low == low.quantize(Decimal("0.0001"))
    assert book.market("BIG", "2", "O1:3") == book.market("BIG", "2", "O1:3")
    assert PriceBook(Decimal("42.125")).market("X", "1", "s") == Decimal("42.125")  # no slippage: as given
    with pytest.raises(ValueError, match="slippage_bps"):
        PriceBook(Decimal(1), slippage_bps=500)


@pytest.mark.django_db(transaction=True)
def test_the_command_reads_reference_prices_from_the_security_master():
    Security.objects.create(symbol="ZZSIM1", name="One", reference_price=Decimal("415.20"))
    Security.objects.create(symbol="ZZSIM2", name="Two")  # no reference price
    Security.objects.create(symbol="ZZSIM3", name="Three", reference_price=Decimal("7"), active=False)
    prices = _reference_prices()
    assert prices["ZZSIM1"] == Decimal("415.20")
    assert "ZZSIM2" not in prices and "ZZSIM3" not in prices


# ------------------------------------------------------------ the OMS across a restart
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_oms_session_goes_on_across_a_simulator_restart(eager, hosts, api, account, msft, tmp_path):
    options = {"fill_mode": "none", "store_dir": tmp_path, "reference_prices": {"MSFT": MSFT}}
    simulator = SimulatorServer(**options).start()
    try:
        venue = Venue.objects.create(
            code="SIM", host="127.0.0.1", port=simulator.port, sender_comp_id="OMS", target_comp_id="SIM"
        )

        def session_status() -> str | None:
            row = VenueSession.objects.filter(venue=venue).first()
            return row.status if row is not None else None

        hosts()
        wait_for(lambda: session_status() == VenueSession.Status.CONNECTED, what="logon")
        response = api.post(
            "/api/v1/orders/",
            {
                "client_order_id": "RESTART-1",
                "account": account.code,
                "symbol": "MSFT",
                "side": "BUY",
                "quantity": 500,
                "order_type": "LIMIT",
                "limit_price": "420",
            },
            format="json",
        )
        assert response.status_code == 201, response.json()
        order = Order.objects.get(pk=response.json()["id"])
        wait_for(lambda: simulator.order(cl_ord_id=order.cl_ord_id) is not None, what="the order at the venue")
        venue_order_id = simulator.order(cl_ord_id=order.cl_ord_id).order_id
        simulator.fill(venue_order_id, 200)  # limit 420 against a reference of 415.20: better
        wait_for(lambda: Order.objects.get(pk=order.pk).filled_quantity == 200, what="the fill applied")

        simulator.stop()
        wait_for(lambda: session_status() != VenueSession.Status.CONNECTED, what="the logout")
        simulator = SimulatorServer(port=venue.port, **options).start()  # same port, same store
        wait_for(lambda: session_status() == VenueSession.Status.CONNECTED, timeout=30, what="the new logon")

        assert api.post(f"/api/v1/orders/{order.pk}/cancel/", format="json").status_code == 202
        wait_for(lambda: Order.objects.get(pk=order.pk).status == "cancelled", timeout=20, what="the cancel")
        order.refresh_from_db()
        assert order.filled_quantity == 200 and MSFT <= order.avg_fill_price <= Decimal("415.21")
        assert session_status() == VenueSession.Status.CONNECTED  # no "MsgSeqNum too low"
    finally:
        simulator.stop()
