"""A basket's lines share what compliance reads (read once for the basket, each
line's order added after its steps) and are stored together at the end. Whatever
the lines, every line must be decided exactly as the same orders submitted one by
one: limits crossed together, duplicates and wash trades within the basket and
with an order working from before the rules' windows, short
sales drawing on one locate, watch-list lines (stored at once for their review
item), market orders valued at the reference price, held and rejected lines."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.models import ComplianceResult, RuleSetting
from compliance.services import locate_add, watch_entry_add
from orders.models import AccountExposure, Order
from orders.services import basket_submit, order_submit
from tests.factories import AccountFactory

PRICES = {"AAPL": "175.50", "MSFT": "415.20"}

lines = st.lists(
    st.fixed_dictionaries(
        {
            "symbol": st.sampled_from(sorted(PRICES)),
            "side": st.sampled_from(["BUY", "BUY", "SELL", "SELL_SHORT"]),
            "quantity": st.sampled_from([100, 200, 300]),
            "order_type": st.sampled_from(["LIMIT", "LIMIT", "MARKET"]),
        }
    ),
    min_size=1,
    max_size=12,
)


def _rules() -> None:
    RuleSetting.objects.update(enabled=False)
    for rule, fields in {
        "duplicate_order": {"severity": "warn", "window_seconds": 60},
        "wash_trade": {"severity": "warn", "window_seconds": 60},
        "position_limit": {"severity": "block", "threshold": Decimal(700)},
        "daily_notional_limit": {"severity": "block", "threshold": Decimal(400_000)},
        "gross_notional_limit": {"severity": "block", "threshold": Decimal(350_000)},
        "short_sale": {"severity": "block"},
    }.items():
        RuleSetting.objects.update_or_create(
            rule=rule,
            scope="firm",
            account=None,
            trader=None,
            security=None,
            issuer="",
            defaults={**fields, "enabled": True},
        )


def _decisions(orders) -> list[tuple]:
    """Each order's status and the codes of its results that did not pass (reasons
    name other orders' ids, which differ between the accounts)."""
    return [
        (
            order.status,
            sorted(
                ComplianceResult.objects.filter(order_id=order.pk)
                .exclude(outcome="pass")
                .values_list("rule", "outcome", "code")
            ),
        )
        for order in orders
    ]


def _exposure(account) -> list[tuple]:
    return sorted(
        AccountExposure.objects.filter(account=account).values_list(
            "security__symbol", "side", "working_quantity", "working_priced_notional", "working_unpriced_quantity"
        )
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(terms=lines)
def test_a_basket_decides_every_line_as_one_by_one_submission(trader, middle_office, aapl, msft, venue, terms):
    with transaction.atomic():
        _rules()
        in_basket, alone = AccountFactory(code="ACC-B"), AccountFactory(code="ACC-S")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        for account in (in_basket, alone):
            account.traders.add(trader)
            locate_add(
                user=middle_office,
                account=account,
                security=aapl,
                broker="GS",
                reference=f"L-{account.code}",
                quantity=300,
                expires_at=expires,
            )
        watch_entry_add(user=middle_office, symbol="MSFT", reason="watched")
        for account in (in_basket, alone):  # working since before the rules' windows
            earlier = order_submit(
                user=trader,
                client_order_id="EARLIER",
                account=account.code,
                symbol="AAPL",
                side="BUY",
                quantity=50,
                order_type="LIMIT",
                limit_price=PRICES["AAPL"],
            )[0]
            Order.objects.filter(pk=earlier.pk).update(created_at=expires - dt.timedelta(hours=3))
        orders = [{**t, **({"limit_price": PRICES[t["symbol"]]} if t["order_type"] == "LIMIT" else {})} for t in terms]

        made, created = basket_submit(
            user=trader,
            client_basket_id="B-EQ",
            orders=[{"client_order_id": f"B-{i}", "account": "ACC-B", **o} for i, o in enumerate(orders)],
        )
        one_by_one = [
            order_submit(user=trader, client_order_id=f"S-{i}", account="ACC-S", **o)[0] for i, o in enumerate(orders)
        ]

        assert created
        basket_orders = list(made.orders.order_by("id"))
        assert _decisions(basket_orders) == _decisions(one_by_one)
        # What the database keeps for the limits is the same too.
        assert _exposure(in_basket) == _exposure(alone)
        transaction.set_rollback(True)
