"""Positions: fills, their reversals and allocations added to the account's
position rows with one statement per batch, whatever its size."""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import F

from ..models import Position, Side

# Notionals (quantity x price) are summed exactly: no rounding before they are stored.
NOTIONAL_CONTEXT = decimal.Context(prec=60)


def positions_add(deltas: dict[tuple[int, int], list], *, now) -> None:
    """Add ``deltas`` ((account, security) -> [bought qty, bought notional, sold qty,
    sold notional, net qty]) to the positions in one statement, each position row
    created on its first change. The caller holds the accounts' locks."""
    if not deltas:
        return
    keys = sorted(deltas)
    Position.objects.bulk_create(
        [Position(account_id=account_id, security_id=security_id) for account_id, security_id in keys],
        ignore_conflicts=True,
    )
    if connection.vendor != "postgresql":  # the embedded demo database: row by row
        for (account_id, security_id), delta in deltas.items():
            Position.objects.filter(account_id=account_id, security_id=security_id).update(
                bought_quantity=F("bought_quantity") + delta[0],
                bought_notional=F("bought_notional") + delta[1],
                sold_quantity=F("sold_quantity") + delta[2],
                sold_notional=F("sold_notional") + delta[3],
                quantity=F("quantity") + delta[4],
                updated_at=now,
            )
        return
    table = Position._meta.db_table
    rows = ", ".join(["(%s, %s, %s, %s::numeric, %s, %s::numeric, %s)"] * len(keys))
    params: list[Any] = []
    for key in keys:
        params.extend([key[0], key[1], *deltas[key]])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS p SET quantity = p.quantity + d.quantity,"
            " bought_quantity = p.bought_quantity + d.bought_quantity,"
            " bought_notional = p.bought_notional + d.bought_notional,"
            " sold_quantity = p.sold_quantity + d.sold_quantity,"
            " sold_notional = p.sold_notional + d.sold_notional, updated_at = %s"
            f" FROM (VALUES {rows}) AS d(account_id, security_id, bought_quantity, bought_notional,"
            " sold_quantity, sold_notional, quantity)"
            " WHERE p.account_id = d.account_id AND p.security_id = d.security_id",
            [now, *params],
        )


def position_delta_add(deltas: dict, *, account_id: int, security_id: int, side: str, qty: int, price) -> None:
    """A fill (qty > 0) or its reversal (qty < 0) of ``side`` at ``price``, added to
    ``deltas`` for ``positions_add``."""
    delta = deltas.setdefault((account_id, security_id), [0, Decimal(0), 0, Decimal(0), 0])
    notional = NOTIONAL_CONTEXT.multiply(price, Decimal(qty))
    if side == Side.BUY:
        delta[0] += qty
        delta[1] = NOTIONAL_CONTEXT.add(delta[1], notional)
        delta[4] += qty
    else:
        delta[2] += qty
        delta[3] = NOTIONAL_CONTEXT.add(delta[3], notional)
        delta[4] -= qty
