"""The allocation rule of a block order (issue 14): how an executed quantity is split
among the funds of the block. Pure functions, no database.

A block names its funds by target lines, in order: quantities
(``{"account", "quantity"}``, summing to the order quantity) or percents
(``{"account", "percent"}``, summing to 100). Each fund's exact share of the executed
quantity is pro rata to its target. The rule (FIX44-ALLOCATIONS.md, "the usual buy-side
rule"):

1. each fund gets its exact share rounded down to the lot size;
2. what that leaves, a whole lot at a time, goes to the funds with the largest
   fractional remainders (exact share minus what step 1 gave), ties in line order;
3. an odd lot (less than a lot: left only when the executed quantity is not a multiple
   of the lot) goes whole to the one fund then furthest below its exact share, ties in
   line order. That fund is one that got no extra lot in step 2, so its allocation is
   not a multiple of the lot, and every other fund's is.

So the allocations sum exactly to the executed quantity and no fund is a lot or more
away from its exact share. Arithmetic is exact (``Fraction``), never float.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, NamedTuple

MIN_LINES = 2
MAX_LINES = 100
PERCENT_PLACES = 6
ONE_HUNDRED = Decimal(100)
FIELD = "allocations"


class FundAllocation(NamedTuple):
    account: str
    quantity: int


def allocation_weights(targets: Sequence[dict[str, Any]]) -> list[Fraction]:
    """Each line's exact fraction of the block."""
    if len(targets) < MIN_LINES:
        raise ValueError("an allocation needs at least two target lines")
    if all("quantity" in line for line in targets):
        quantities = [int(line["quantity"]) for line in targets]
        if any(q <= 0 for q in quantities):
            raise ValueError("target quantities must be positive")
        total = sum(quantities)
        return [Fraction(q, total) for q in quantities]
    if all("percent" in line for line in targets):
        percents = [Fraction(Decimal(line["percent"])) for line in targets]
        if any(p <= 0 for p in percents) or sum(percents) != 100:
            raise ValueError("target percents must be positive and sum to 100")
        return [p / 100 for p in percents]
    raise ValueError("target lines must all carry a quantity or all a percent")


def allocation_compute(
    *, executed_quantity: int, lot_size: int, targets: Sequence[dict[str, Any]]
) -> list[FundAllocation]:
    """Each fund's allocated quantity of ``executed_quantity``, in line order, by the
    rule in the module docstring. ``targets`` are valid target lines
    (``allocation_targets_validate``); ValueError otherwise."""
    if isinstance(executed_quantity, bool) or not isinstance(executed_quantity, int) or executed_quantity < 0:
        raise ValueError("the executed quantity must be a whole number, zero or more")
    if isinstance(lot_size, bool) or not isinstance(lot_size, int) or lot_size < 1:
        raise ValueError("the lot size must be a whole number, one or more")
    shares = [executed_quantity * weight for weight in allocation_weights(targets)]
    allocated = [int(share // lot_size) * lot_size for share in shares]

    leftover = executed_quantity - sum(allocated)
    # Step 2: whole lots to the largest fractional remainders, ties in line order
    # (``sorted`` is stable).
    by_remainder = sorted(range(len(shares)), key=lambda i: shares[i] - allocated[i], reverse=True)
    for index in by_remainder[: leftover // lot_size]:
        allocated[index] += lot_size
    # Step 3: the odd lot to the fund furthest below its share (first in line order).
    odd_lot = leftover % lot_size
    if odd_lot:
        shortfalls = [share - quantity for share, quantity in zip(shares, allocated, strict=True)]
        furthest = max(range(len(shares)), key=lambda i: (shortfalls[i], -i))
        allocated[furthest] += odd_lot
    return [FundAllocation(str(line["account"]), quantity) for line, quantity in zip(targets, allocated, strict=True)]


def allocation_targets_validate(
    *, lines: Any, order_quantity: int | None
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Check a block's target lines: the clean lines (account codes stripped, quantities
    as int, percents as Decimal) and the field errors, empty when they are valid.
    ``order_quantity`` is None when the order's own quantity is invalid (the sum of
    quantities is then not checked)."""
    errors: dict[str, list[str]] = {}
    if not isinstance(lines, list | tuple):
        return [], {FIELD: ["Must be a list of {account, quantity} or {account, percent} lines."]}
    if len(lines) < MIN_LINES:
        return [], {FIELD: [f"At least {MIN_LINES} funds are needed; for one, give the account instead."]}
    if len(lines) > MAX_LINES:
        return [], {FIELD: [f"At most {MAX_LINES} funds."]}
    kinds = {_line_kind(line) for line in lines}
    if None in kinds:
        return [], {FIELD: ["Each line is {account, quantity} or {account, percent}."]}
    if len(kinds) > 1:
        return [], {FIELD: ["Give every fund a quantity, or every fund a percent, not a mix."]}
    kind = kinds.pop()

    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, line in enumerate(lines):
        account = line.get("account")
        if not isinstance(account, str) or not account.strip():
            errors.setdefault(f"{FIELD}[{index}].account", []).append("This field is required.")
        elif account.strip() in seen:
            errors.setdefault(f"{FIELD}[{index}].account", []).append(f"Account {account.strip()} appears twice.")
        else:
            seen.add(account.strip())
        field = f"{FIELD}[{index}].{kind}"
        value = _quantity(line["quantity"]) if kind == "quantity" else _percent(line["percent"])
        if isinstance(value, str):
            errors.setdefault(field, []).append(value)
        clean.append({"account": account.strip() if isinstance(account, str) else account, kind: value})

    if not errors:
        total = sum(line[kind] for line in clean)
        if kind == "percent" and total != ONE_HUNDRED:
            errors[FIELD] = [f"The percents must sum to exactly 100, not {total.normalize():f}."]
        elif kind == "quantity" and order_quantity is not None and total != order_quantity:
            errors[FIELD] = [f"The quantities must sum to the order quantity ({order_quantity}), not {total}."]
    return (clean, errors) if not errors else ([], errors)


def _line_kind(line: Any) -> str | None:
    if not isinstance(line, dict) or set(line) - {"account", "quantity", "percent"}:
        return None
    if ("quantity" in line) == ("percent" in line):
        return None
    return "quantity" if "quantity" in line else "percent"


def _quantity(value: Any) -> int | str:
    """A positive whole number, or the error message."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "Must be a whole number."
    if value <= 0:
        return "Must be greater than zero."
    return value


def _percent(value: Any) -> Decimal | str:
    """A percent above 0 and at most 100 with at most PERCENT_PLACES decimals, or the
    error message."""
    if isinstance(value, bool) or value is None or value == "":
        return "Enter a valid decimal number."
    try:
        percent = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return "Enter a valid decimal number."
    if not percent.is_finite():
        return "Enter a valid decimal number."
    if percent <= 0 or percent > ONE_HUNDRED:
        return "Must be greater than 0 and at most 100."
    if percent != percent.quantize(Decimal(1).scaleb(-PERCENT_PLACES)):
        return f"At most {PERCENT_PLACES} decimal places."
    return percent


__all__ = ["FundAllocation", "allocation_compute", "allocation_targets_validate", "allocation_weights"]
