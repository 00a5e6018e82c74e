"""Fill prices of the venue simulator, from reference prices.

``PriceBook`` holds a reference price per symbol (the security master's, handed in by
whoever runs the simulator: routing does not read ``orders``, DESIGN §3) and a default for
the symbols without one. A market (or stop) order fills near the reference with a small
slippage on the side that costs the order: a buy at or slightly above, a sell at or
slightly below, by at most ``slippage_bps`` basis points (deterministic: derived from the
order and the fill number, so a run can be replayed), rounded to the tick (0.01 from
1.00 up, 0.0001 below) towards the reference. A limit order fills at its limit, or better when the market is
better: a buy at min(limit, market), a sell at max(limit, market), never worse than the
limit. Without a reference for the symbol a limit order fills at its limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

BUY = "1"
MAX_SLIPPAGE_BPS = Decimal(100)
CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
BASIS_POINT = Decimal("0.0001")


def _positive(value: Decimal | str | int | float, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def tick_for(price: Decimal) -> Decimal:
    """The price increment: a cent from 1.00 up, 0.0001 below (as US equities quote)."""
    return CENT if price >= 1 else SUB_PENNY


class PriceBook:
    def __init__(
        self,
        default: Decimal | str | int,
        *,
        slippage_bps: Decimal | str | int = 0,
        prices: Mapping[str, Decimal | str] | None = None,
    ) -> None:
        self.default = _positive(default, "reference_price")
        try:
            bps = Decimal(str(slippage_bps))
        except InvalidOperation:
            raise ValueError(f"slippage_bps must be a number, got {slippage_bps!r}") from None
        if not bps.is_finite() or not 0 <= bps <= MAX_SLIPPAGE_BPS:
            raise ValueError(f"slippage_bps must be between 0 and {MAX_SLIPPAGE_BPS}, got {slippage_bps!r}")
        self.slippage_bps = bps
        self._prices: dict[str, Decimal] = {}
        self.update(prices or {})

    def update(self, prices: Mapping[str, Decimal | str]) -> None:
        """Replace the reference prices (symbols are matched case-insensitively); a
        price that is not a positive number is left out."""
        cleaned: dict[str, Decimal] = {}
        for symbol, price in prices.items():
            try:
                cleaned[symbol.strip().upper()] = _positive(price, symbol)
            except ValueError:
                continue
        self._prices = cleaned  # one assignment: readers see the old map or the new

    def reference(self, symbol: str) -> Decimal | None:
        return self._prices.get(symbol.upper())

    def __len__(self) -> int:
        return len(self._prices)

    def market(self, symbol: str, side: str, salt: str) -> Decimal:
        """Where a market order of ``side`` fills now: the reference (or the default),
        moved against the order by up to ``slippage_bps`` and rounded to the tick."""
        reference = self._prices.get(symbol.upper(), self.default)
        if not self.slippage_bps:
            return reference
        digest = hashlib.sha256(salt.encode()).digest()
        fraction = Decimal(int.from_bytes(digest[:4], "big")) / Decimal(2**32)
        move = reference * self.slippage_bps * BASIS_POINT * fraction
        tick = tick_for(reference)
        # Rounded towards the reference (never past the slippage bound), but not past the
        # reference to the order's advantage (a reference off the tick: the next tick).
        if side == BUY:
            price = (reference + move).quantize(tick, rounding=ROUND_FLOOR)
            return price if price >= reference else reference.quantize(tick, rounding=ROUND_CEILING)
        price = (reference - move).quantize(tick, rounding=ROUND_CEILING)
        if price > reference:
            price = reference.quantize(tick, rounding=ROUND_FLOOR)
        return price if price > 0 else reference

    def fill_price(self, symbol: str, side: str, limit: Decimal | None, salt: str) -> Decimal:
        """The price of a fill: ``limit`` None for a market or stop order."""
        if limit is None:
            return self.market(symbol, side, salt)
        if self.reference(symbol) is None:
            return limit
        market = self.market(symbol, side, salt)
        return min(limit, market) if side == BUY else max(limit, market)


__all__ = ["PriceBook", "tick_for"]
