"""The allocation rule of a block order (orders.allocation): pro rata, rounded down to
lots, leftover lots by largest fractional remainder, the odd lot to the fund furthest
below its share; exact, always summing to the executed quantity."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orders.allocation import FundAllocation, allocation_compute, allocation_targets_validate


def quantities(*values: int) -> list[dict]:
    return [{"account": f"ACC-{i}", "quantity": q} for i, q in enumerate(values, start=1)]


def percents(*values: str) -> list[dict]:
    return [{"account": f"ACC-{i}", "percent": Decimal(p)} for i, p in enumerate(values, start=1)]


def split(executed: int, lot: int, targets: list[dict]) -> list[int]:
    return [a.quantity for a in allocation_compute(executed_quantity=executed, lot_size=lot, targets=targets)]


def test_1001_shares_lot_1_three_equal_funds_is_334_334_333():
    result = allocation_compute(executed_quantity=1001, lot_size=1, targets=quantities(1001, 1001, 1001))
    assert result == [FundAllocation("ACC-1", 334), FundAllocation("ACC-2", 334), FundAllocation("ACC-3", 333)]
    assert sum(a.quantity for a in result) == 1001


def test_1001_shares_lot_1_three_equal_funds_by_percent_too():
    # Percents sum to exactly 100, so a third is rounded: ACC-3's larger percent gives
    # it the largest fractional remainder, ACC-1 the next (tie with ACC-2, line order).
    assert split(1001, 1, percents("33.333333", "33.333333", "33.333334")) == [334, 333, 334]
    assert split(1001, 1, quantities(100, 100, 100)) == [334, 334, 333]


def test_lot_100_rounds_to_lots_and_the_odd_lot_goes_to_the_fund_furthest_below():
    # Exact shares 333 2/3 each: 300 each, one leftover lot to ACC-1 (tie, line order),
    # the odd lot of 1 to ACC-2 (33 2/3 below its share, first of the tie).
    assert split(1001, 100, quantities(1, 1, 1)) == [400, 301, 300]
    # A multiple of the lot: lots only.
    assert split(1000, 100, quantities(1, 1, 1)) == [400, 300, 300]
    assert split(1100, 100, quantities(1, 1, 1)) == [400, 400, 300]


def test_60_40_of_1000():
    assert split(1000, 1, percents("60", "40")) == [600, 400]
    assert split(1000, 100, percents("60", "40")) == [600, 400]
    assert split(1000, 1, quantities(600, 400)) == [600, 400]


def test_a_partly_executed_block_is_split_pro_rata():
    # 60/40 of 750 = 450/300; with lot 100: 400/300 in lots, and the odd 50 to ACC-1,
    # the fund 50 below its share.
    assert split(750, 1, percents("60", "40")) == [450, 300]
    assert split(750, 100, percents("60", "40")) == [450, 300]
    assert split(850, 100, percents("60", "40")) == [500, 350]


def test_leftover_lots_go_to_the_largest_fractional_remainders():
    # Shares of 10 at 10/20/30/40%: 1, 2, 3, 4 exactly; of 9: 0.9, 1.8, 2.7, 3.6 →
    # floors 0/1/2/3, remainders .9/.8/.7/.6, leftover 3 → the first three.
    assert split(10, 1, percents("10", "20", "30", "40")) == [1, 2, 3, 4]
    assert split(9, 1, percents("10", "20", "30", "40")) == [1, 2, 3, 3]
    # Largest remainder first regardless of line order.
    assert split(9, 1, percents("40", "30", "20", "10")) == [3, 3, 2, 1]


def test_ties_are_broken_by_line_order():
    assert split(2, 1, quantities(1, 1, 1)) == [1, 1, 0]
    assert split(1, 1, quantities(5, 5)) == [1, 0]
    assert split(1, 1, percents("50", "50")[::-1]) == [1, 0]


def test_nothing_executed_allocates_nothing():
    assert split(0, 100, percents("60", "40")) == [0, 0]


def test_an_odd_lot_below_one_lot_goes_whole_to_one_fund():
    assert split(50, 100, percents("60", "40")) == [50, 0]
    assert split(50, 100, percents("40", "60")) == [0, 50]


@pytest.mark.parametrize(
    ("executed", "lot", "targets"),
    [(-1, 1, quantities(1, 1)), (10, 0, quantities(1, 1)), (10, 1, quantities(10)), (10, 1, percents("50", "40"))],
)
def test_invalid_arguments_raise(executed, lot, targets):
    with pytest.raises(ValueError):
        allocation_compute(executed_quantity=executed, lot_size=lot, targets=targets)


target_lines = st.one_of(
    st.lists(st.integers(min_value=1, max_value=10_000), min_size=2, max_size=8).map(lambda qs: quantities(*qs)),
    # Percents: random positive parts of 100.0000 (four places), the last taking the rest.
    st.lists(st.integers(min_value=1, max_value=1000), min_size=2, max_size=8).map(
        lambda parts: [
            {"account": f"ACC-{i}", "percent": p} for i, p in enumerate(_percents_from_parts(parts), start=1)
        ]
    ),
)


def _percents_from_parts(parts: list[int]) -> list[Decimal]:
    total = sum(parts)
    values = [(Decimal(p) * 100 / total).quantize(Decimal("0.0001"), rounding="ROUND_DOWN") for p in parts[:-1]]
    values = [v if v > 0 else Decimal("0.0001") for v in values]
    return [*values, Decimal(100) - sum(values)]


@settings(max_examples=400, deadline=None)
@given(
    targets=target_lines,
    executed=st.integers(min_value=0, max_value=1_000_000),
    lot=st.sampled_from([1, 10, 25, 100, 1000]),
)
def test_property_sum_exact_lots_respected_within_one_lot(targets, executed, lot):
    if any(line.get("percent", 1) <= 0 for line in targets):
        return  # a degenerate percent split (parts too uneven to be positive at 4 places)
    result = allocation_compute(executed_quantity=executed, lot_size=lot, targets=targets)
    assert [a.account for a in result] == [line["account"] for line in targets]
    assert sum(a.quantity for a in result) == executed
    assert all(a.quantity >= 0 for a in result)

    off_lot = [a for a in result if a.quantity % lot]
    assert len(off_lot) <= (1 if executed % lot else 0)

    if "quantity" in targets[0]:
        total = sum(line["quantity"] for line in targets)
        weights = [Fraction(line["quantity"], total) for line in targets]
    else:
        weights = [Fraction(line["percent"]) / 100 for line in targets]
    for allocation, weight in zip(result, weights, strict=True):
        assert abs(allocation.quantity - executed * weight) < lot


# ----------------------------------------------------------------- validation
def test_valid_quantity_and_percent_lines():
    clean, errors = allocation_targets_validate(
        lines=[{"account": " ACC-1 ", "quantity": 600}, {"account": "ACC-2", "quantity": 400}], order_quantity=1000
    )
    assert errors == {}
    assert clean == [{"account": "ACC-1", "quantity": 600}, {"account": "ACC-2", "quantity": 400}]
    clean, errors = allocation_targets_validate(
        lines=[{"account": "ACC-1", "percent": "60.5"}, {"account": "ACC-2", "percent": 39.5}], order_quantity=1000
    )
    assert errors == {}
    assert clean == [{"account": "ACC-1", "percent": Decimal("60.5")}, {"account": "ACC-2", "percent": Decimal("39.5")}]


@pytest.mark.parametrize(
    ("lines", "order_quantity", "expected"),
    [
        (None, 100, {"allocations": ["Must be a list of {account, quantity} or {account, percent} lines."]}),
        (
            [{"account": "ACC-1", "quantity": 100}],
            100,
            {"allocations": ["At least 2 funds are needed; for one, give the account instead."]},
        ),
        (
            [{"account": "ACC-1", "quantity": 50}, {"account": "ACC-2", "percent": "50"}],
            100,
            {"allocations": ["Give every fund a quantity, or every fund a percent, not a mix."]},
        ),
        (
            [{"account": "ACC-1", "quantity": 50, "percent": "50"}, {"account": "ACC-2", "quantity": 50}],
            100,
            {"allocations": ["Each line is {account, quantity} or {account, percent}."]},
        ),
        (
            [{"account": "ACC-1", "quantity": 50}, {"account": "ACC-1", "quantity": 50}],
            100,
            {"allocations[1].account": ["Account ACC-1 appears twice."]},
        ),
        (
            [{"account": "", "quantity": 0}, {"account": "ACC-2", "quantity": 2.5}],
            100,
            {
                "allocations[0].account": ["This field is required."],
                "allocations[0].quantity": ["Must be greater than zero."],
                "allocations[1].quantity": ["Must be a whole number."],
            },
        ),
        (
            [{"account": "ACC-1", "quantity": 60}, {"account": "ACC-2", "quantity": 30}],
            100,
            {"allocations": ["The quantities must sum to the order quantity (100), not 90."]},
        ),
        (
            [{"account": "ACC-1", "percent": "60"}, {"account": "ACC-2", "percent": "39.99"}],
            100,
            {"allocations": ["The percents must sum to exactly 100, not 99.99."]},
        ),
        (
            [{"account": "ACC-1", "percent": "0"}, {"account": "ACC-2", "percent": "abc"}],
            100,
            {
                "allocations[0].percent": ["Must be greater than 0 and at most 100."],
                "allocations[1].percent": ["Enter a valid decimal number."],
            },
        ),
        (
            [{"account": "ACC-1", "percent": "50.0000001"}, {"account": "ACC-2", "percent": "49.9999999"}],
            100,
            {
                "allocations[0].percent": ["At most 6 decimal places."],
                "allocations[1].percent": ["At most 6 decimal places."],
            },
        ),
    ],
)
def test_invalid_lines_get_field_errors(lines, order_quantity, expected):
    clean, errors = allocation_targets_validate(lines=lines, order_quantity=order_quantity)
    assert errors == expected
    assert clean == []


def test_quantities_are_not_summed_against_an_invalid_order_quantity():
    clean, errors = allocation_targets_validate(
        lines=[{"account": "ACC-1", "quantity": 60}, {"account": "ACC-2", "quantity": 30}], order_quantity=None
    )
    assert errors == {}
    assert [line["quantity"] for line in clean] == [60, 30]
