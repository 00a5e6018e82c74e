"""Position cost and P&L by the weighted-average-cost method (issue 15). Pure
functions, no database.

A position is its net quantity, the cost of that open quantity (signed like the
quantity: a short's cost is negative, what it was sold for) and the P&L realized so
far. A trade that adds to the position (or opens it) adds its price x quantity to the
cost, moving the average; one that reduces it releases the average cost of what it
closes and realizes the difference to its own price; one that crosses zero closes the
old side at the average and opens the new side at its own price. So the average cost
of what stays open never moves on a reduction, and the cost of what is open less what
was realized always equals what was paid net (bought less sold): nothing drifts.

Unrealized P&L is the open quantity valued at a price less its cost.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

AMOUNT_QUANT = Decimal("0.00000001")  # the positions table keeps amounts to 8 places
PRICE_QUANT = Decimal("0.00000001")
_CONTEXT = decimal.Context(prec=60)


class PositionCost(NamedTuple):
    quantity: int
    cost: Decimal  # of the open quantity, signed like it
    realized: Decimal

    @property
    def average_cost(self) -> Decimal | None:
        if not self.quantity:
            return None
        return _CONTEXT.divide(self.cost, Decimal(self.quantity)).quantize(PRICE_QUANT)

    def unrealized(self, price: Decimal | None) -> Decimal | None:
        """The open quantity at ``price`` less its cost (None without a price)."""
        if price is None:
            return None
        return (_CONTEXT.multiply(price, Decimal(self.quantity)) - self.cost).quantize(AMOUNT_QUANT)


FLAT = PositionCost(0, Decimal(0), Decimal(0))


def trade_apply(position: PositionCost, quantity: int, price: Decimal) -> PositionCost:
    """``position`` after a trade of ``quantity`` (signed: bought > 0, sold < 0) at
    ``price``."""
    held, cost, realized = position
    if quantity == 0:
        return position
    value = _CONTEXT.multiply(price, Decimal(quantity))  # paid (> 0) or received (< 0)
    if held == 0 or (held > 0) == (quantity > 0):
        return PositionCost(held + quantity, _amount(cost + value), realized)
    if abs(quantity) <= abs(held):
        remaining = held + quantity
        kept = _amount(_CONTEXT.divide(_CONTEXT.multiply(cost, Decimal(remaining)), Decimal(held)))
        # Released: the average cost of what was closed; realized: what it fetched over that.
        return PositionCost(remaining, kept, _amount(realized + kept - cost - value))
    # Crossing zero: the whole old side closes at its cost, the rest opens at ``price``.
    closing = _CONTEXT.multiply(price, Decimal(-held))
    opened = held + quantity
    return PositionCost(opened, _amount(_CONTEXT.multiply(price, Decimal(opened))), _amount(realized - cost - closing))


def trades_apply(trades: Iterable[tuple[int, Decimal]], position: PositionCost = FLAT) -> PositionCost:
    for quantity, price in trades:
        position = trade_apply(position, quantity, price)
    return position


def _amount(value: Decimal) -> Decimal:
    return value.quantize(AMOUNT_QUANT, context=_CONTEXT)
