"""Run the FIX 4.4 venue simulator (an acceptor) until SIGINT or SIGTERM.

It keeps its FIX session state and order book in a store under ``var/simulator/``
(``--store-dir``; ``--no-store``: in memory only), so that it continues across restarts
like a venue. It prices fills from the security master's reference prices when the
database answers, reloading them every ``--price-refresh`` seconds; it runs without a
database (then every symbol fills around ``--reference-price``). The security master is
read by model name: ``routing`` imports nothing from ``orders`` (DESIGN §3).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from routing.simulator import FILL_MODES, SimulatorServer, StoreError
from routing.simulator_prices import MAX_SLIPPAGE_BPS

logger = logging.getLogger("routing.simulator")


def _reference_prices() -> dict[str, Decimal] | None:
    """{symbol: reference price} of the active securities that have one; None (logged)
    when the database does not answer. The connection is closed again: the simulator
    holds none while it runs."""
    security = apps.get_model("orders", "Security")
    try:
        rows = security.objects.filter(active=True, reference_price__isnull=False)
        return dict(rows.values_list("symbol", "reference_price"))
    except DatabaseError as exc:
        logger.warning("SIM reference prices not loaded from the security master: %s", str(exc).strip())
        return None
    finally:
        connections.close_all()


def _positive_float(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise CommandError(f"{name} must be a positive number of seconds, got {value}")


class Command(BaseCommand):
    help = (
        "Run the FIX 4.4 venue simulator: acknowledges, fills, rejects and cancels orders; keeps its sessions "
        "and orders in a store under var/ across restarts (no database needed)."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, required=True, help="TCP port to listen on (0: any free port)")
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--sender-comp-id", default="SIM", help="the simulator's CompID (default SIM)")
        parser.add_argument("--target-comp-id", default="OMS", help="the counterparty's CompID (default OMS)")
        parser.add_argument("--fill-mode", default="immediate", help=f"one of {', '.join(FILL_MODES)}")
        parser.add_argument("--fill-interval", type=float, default=1.0, help="seconds between partial fills")
        parser.add_argument("--fill-parts", type=int, default=4, help="number of partial fills (default 4)")
        parser.add_argument("--reject-symbols", default="", help="comma-separated symbols to reject, e.g. AAPL,MSFT")
        parser.add_argument(
            "--rest-symbols",
            default="",
            help="comma-separated symbols to acknowledge and leave working without fills (to amend or cancel)",
        )
        parser.add_argument(
            "--unsolicited-cancel-after", type=float, default=None, help="cancel each working order after S seconds"
        )
        parser.add_argument(
            "--pending-delay",
            type=float,
            default=0.0,
            help="seconds cancel/replace requests stay pending before taking effect (default 0)",
        )
        parser.add_argument(
            "--reference-price",
            default="100",
            help="reference price of the symbols without one in the security master (default 100)",
        )
        parser.add_argument(
            "--slippage-bps",
            default="3",
            help="at most this many basis points of slippage on market fills, against the order (default 3)",
        )
        parser.add_argument(
            "--price-refresh",
            type=float,
            default=60.0,
            help="seconds between reloads of the reference prices from the security master (0: load once)",
        )
        parser.add_argument(
            "--store-dir",
            default=None,
            help="directory of the session and order store, one subdirectory per CompID pair "
            "(default: var/simulator under OMS_VAR_DIR)",
        )
        parser.add_argument(
            "--no-store", action="store_true", help="keep sessions and orders in memory only (lost on restart)"
        )
        parser.add_argument(
            "--reset-on-logon",
            action="store_true",
            help="start both sequence numbers afresh at every Logon and answer with ResetSeqNumFlag=Y",
        )

    def handle(self, *args, **options):
        port = options["port"]
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be between 0 and 65535, got {port}")
        fill_mode = options["fill_mode"].lower()
        if fill_mode not in FILL_MODES:
            raise CommandError(f"--fill-mode must be one of {', '.join(FILL_MODES)}, got {options['fill_mode']!r}")
        _positive_float("--fill-interval", options["fill_interval"])
        _positive_float("--unsolicited-cancel-after", options["unsolicited_cancel_after"])
        if options["pending_delay"] < 0:
            raise CommandError(f"--pending-delay must not be negative, got {options['pending_delay']}")
        if options["fill_parts"] < 2:
            raise CommandError(f"--fill-parts must be at least 2, got {options['fill_parts']}")
        try:
            reference_price = Decimal(options["reference_price"])
        except InvalidOperation:
            raise CommandError(
                f"--reference-price must be a decimal number, got {options['reference_price']!r}"
            ) from None
        if not reference_price.is_finite() or reference_price <= 0:
            raise CommandError(f"--reference-price must be positive, got {options['reference_price']!r}")
        try:
            slippage_bps = Decimal(options["slippage_bps"])
        except InvalidOperation:
            raise CommandError(f"--slippage-bps must be a decimal number, got {options['slippage_bps']!r}") from None
        if not slippage_bps.is_finite() or not 0 <= slippage_bps <= MAX_SLIPPAGE_BPS:
            raise CommandError(
                f"--slippage-bps must be between 0 and {MAX_SLIPPAGE_BPS}, got {options['slippage_bps']!r}"
            )
        if options["price_refresh"] < 0:
            raise CommandError(f"--price-refresh must not be negative, got {options['price_refresh']}")
        if options["no_store"] and options["store_dir"]:
            raise CommandError("--store-dir and --no-store exclude each other")
        store_dir = None if options["no_store"] else Path(options["store_dir"] or Path(settings.VAR_DIR) / "simulator")
        for name in ("sender_comp_id", "target_comp_id"):
            if not options[name].strip():
                raise CommandError(f"--{name.replace('_', '-')} must not be empty")

        self._configure_logging(options["verbosity"])
        prices = _reference_prices()
        try:
            server = SimulatorServer(
                options["host"],
                port,
                sender_comp_id=options["sender_comp_id"].strip(),
                target_comp_id=options["target_comp_id"].strip(),
                fill_mode=fill_mode,
                fill_interval=options["fill_interval"],
                partial_fill_parts=options["fill_parts"],
                reject_symbols=options["reject_symbols"].split(","),
                rest_symbols=options["rest_symbols"].split(","),
                reference_price=reference_price,
                reference_prices=prices or {},
                slippage_bps=slippage_bps,
                unsolicited_cancel_after=options["unsolicited_cancel_after"],
                pending_delay=options["pending_delay"],
                store_dir=store_dir,
                reset_on_logon=options["reset_on_logon"],
            )
        except (StoreError, OSError) as exc:
            raise CommandError(f"cannot open the simulator store: {exc}") from None
        try:
            server.start()
        except OSError as exc:
            server.stop()
            raise CommandError(f"cannot listen on {options['host']}:{port}: {exc}") from None

        stop = threading.Event()

        def request_stop(signum, frame):
            stop.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        where = f"store {server.store.directory}" if server.store is not None else "no store"
        self.stdout.write(
            f"Venue simulator listening on {server.host}:{server.port} as {server.sender_comp_id} "
            f"for {server.target_comp_id} (fill mode {fill_mode}, {where}, "
            f"{len(server.prices)} reference prices); Ctrl-C to stop"
        )
        self.stdout.flush()
        refresh = options["price_refresh"]
        next_refresh = time.monotonic() + refresh
        try:
            while not stop.wait(0.5):
                if refresh and time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + refresh
                    reloaded = _reference_prices()
                    if reloaded is not None:
                        server.set_reference_prices(reloaded)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            server.stop()
        self.stdout.write("Venue simulator stopped")

    @staticmethod
    def _configure_logging(verbosity: int) -> None:
        """Show the message log (INFO) on stderr even when the project logs at WARNING."""
        log = logging.getLogger("routing")
        log.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
        if not logging.getLogger().handlers and not log.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
            log.addHandler(handler)
