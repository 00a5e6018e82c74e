"""Positions: fills, their reversals and allocations booked to the account's position
rows, with their average cost and realized P&L (``orders.pnl``), in two statements per
batch whatever its size: the rows locked and read, then updated.

A fill or a booking moves the cost incrementally, in the order they happened. A
reversal (a bust, the old side of a correction, an allocation cancelled or rejected)
cannot be undone incrementally under the average-cost method (what it changed depends
on everything after it), so that position's cost and realized P&L are worked out again
from its trades in effect, once, when the reversal is applied."""

from __future__ import annotations

import decimal
import operator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import reduce
from typing import Any

from django.db import connection
from django.db.models import Q

from ..models import Allocation, AllocationLine, Execution, Position, Side
from ..pnl import PositionCost, trade_apply, trades_apply

# Notionals (quantity x price) are summed exactly: no rounding before they are stored.
NOTIONAL_CONTEXT = decimal.Context(prec=60)


@dataclass
class PositionDelta:
    """What a batch adds to one position: bought and sold totals, the net quantity,
    and the trades in the order they happened (signed quantity, price)."""

    bought_quantity: int = 0
    bought_notional: Decimal = Decimal(0)
    sold_quantity: int = 0
    sold_notional: Decimal = Decimal(0)
    quantity: int = 0
    trades: list[tuple[int, Decimal]] = field(default_factory=list)
    reversed: bool = False  # a trade was taken back: the cost is worked out again


def position_delta_add(deltas: dict, *, account_id: int, security_id: int, side: str, qty: int, price) -> None:
    """A fill or booking (qty > 0) or its reversal (qty < 0) of ``side`` at ``price``,
    added to ``deltas`` ((account, security) -> PositionDelta) for ``positions_add``."""
    delta = deltas.setdefault((account_id, security_id), PositionDelta())
    notional = NOTIONAL_CONTEXT.multiply(price, Decimal(qty))
    signed = qty if side == Side.BUY else -qty
    if side == Side.BUY:
        delta.bought_quantity += qty
        delta.bought_notional = NOTIONAL_CONTEXT.add(delta.bought_notional, notional)
    else:
        delta.sold_quantity += qty
        delta.sold_notional = NOTIONAL_CONTEXT.add(delta.sold_notional, notional)
    delta.quantity += signed
    if qty < 0:
        delta.reversed = True
    else:
        delta.trades.append((signed, price))


def position_delta_checkpoint(deltas: dict, key: tuple[int, int]) -> tuple:
    """What ``position_delta_restore`` needs to take back what one report adds to the
    position ``key`` (a report touches its own order's position only): its totals and
    how many trades it had, in constant time whatever the batch's size."""
    delta = deltas.get(key)
    if delta is None:
        return key, None
    totals = (delta.bought_quantity, delta.bought_notional, delta.sold_quantity, delta.sold_notional, delta.quantity)
    return key, (totals, len(delta.trades), delta.reversed)


def position_delta_restore(deltas: dict, checkpoint: tuple) -> None:
    key, state = checkpoint
    if state is None:
        deltas.pop(key, None)
        return
    delta = deltas[key]
    totals, trades, delta.reversed = state
    delta.bought_quantity, delta.bought_notional, delta.sold_quantity, delta.sold_notional, delta.quantity = totals
    del delta.trades[trades:]


def positions_add(deltas: dict[tuple[int, int], PositionDelta], *, now) -> None:
    """Add ``deltas`` to the positions, each row created on its first change, locked
    and read in one statement (the caller holds the accounts' locks: the lock order
    account -> order -> position), and written in one."""
    if not deltas:
        return
    keys = sorted(deltas)
    Position.objects.bulk_create(
        [Position(account_id=account_id, security_id=security_id) for account_id, security_id in keys],
        ignore_conflicts=True,
    )
    wanted = reduce(
        operator.or_, (Q(account_id=account_id, security_id=security_id) for account_id, security_id in keys)
    )
    current = {
        (p.account_id, p.security_id): p
        for p in Position.objects.select_for_update()
        .filter(wanted)
        .order_by("account_id", "security_id")
        .only("account_id", "security_id", "quantity", "cost_basis", "realized_pnl")
    }
    costs: dict[tuple[int, int], PositionCost] = {}
    for key in keys:
        delta, row = deltas[key], current[key]
        if delta.reversed:
            costs[key] = trades_apply(position_trades(account_id=key[0], security_id=key[1]))
        else:
            cost = PositionCost(row.quantity, row.cost_basis, row.realized_pnl)
            for quantity, price in delta.trades:
                cost = trade_apply(cost, quantity, price)
            costs[key] = cost
    _positions_write(keys, deltas, costs, now=now)


def _positions_write(keys, deltas, costs, *, now) -> None:
    if connection.vendor != "postgresql":  # the embedded demo database: row by row
        for key in keys:
            row = Position.objects.get(account_id=key[0], security_id=key[1])
            delta = deltas[key]
            row.bought_quantity += delta.bought_quantity
            row.bought_notional += delta.bought_notional
            row.sold_quantity += delta.sold_quantity
            row.sold_notional += delta.sold_notional
            row.quantity += delta.quantity
            row.cost_basis, row.realized_pnl = costs[key].cost, costs[key].realized
            row.save()
        return
    table = Position._meta.db_table
    rows = ", ".join(["(%s, %s, %s, %s::numeric, %s, %s::numeric, %s, %s::numeric, %s::numeric)"] * len(keys))
    params: list[Any] = []
    for key in keys:
        delta = deltas[key]
        params.extend(
            [
                key[0],
                key[1],
                delta.bought_quantity,
                delta.bought_notional,
                delta.sold_quantity,
                delta.sold_notional,
                delta.quantity,
                costs[key].cost,
                costs[key].realized,
            ]
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS p SET quantity = p.quantity + d.quantity,"
            " bought_quantity = p.bought_quantity + d.bought_quantity,"
            " bought_notional = p.bought_notional + d.bought_notional,"
            " sold_quantity = p.sold_quantity + d.sold_quantity,"
            " sold_notional = p.sold_notional + d.sold_notional,"
            " cost_basis = d.cost_basis, realized_pnl = d.realized_pnl, updated_at = %s"
            f" FROM (VALUES {rows}) AS d(account_id, security_id, bought_quantity, bought_notional,"
            " sold_quantity, sold_notional, quantity, cost_basis, realized_pnl)"
            " WHERE p.account_id = d.account_id AND p.security_id = d.security_id",
            [now, *params],
        )


def position_trades(*, account_id: int, security_id: int) -> list[tuple[int, Decimal]]:
    """Every trade in effect of one position, in the order it happened: the fills of
    the account's own orders (not blocks: theirs are booked by allocation) and the
    allocations booked to it (confirmed, and not cancelled or rejected since)."""
    trades: list[tuple[Any, int, int, Decimal]] = []
    executions = Execution.objects.filter(
        in_effect=True,
        last_px__isnull=False,
        last_qty__gt=0,
        order__account_id=account_id,
        order__security_id=security_id,
        order__block_order=False,
    ).values_list("received_at", "id", "order__side", "last_qty", "last_px")
    for at, pk, side, quantity, price in executions:
        trades.append((at, pk, quantity if side == Side.BUY else -quantity, price))
    booked = AllocationLine.objects.filter(
        account_id=account_id,
        allocation__order__security_id=security_id,
        allocation__status__in=Allocation.BOOKED,
        quantity__gt=0,
    ).values_list("allocation__confirmed_at", "id", "allocation__order__side", "quantity", "allocation__avg_price")
    for at, pk, side, quantity, price in booked:
        trades.append((at, pk, quantity if side == Side.BUY else -quantity, price))
    trades.sort(key=lambda trade: (trade[0], trade[1]))
    return [(quantity, price) for _at, _pk, quantity, price in trades]
