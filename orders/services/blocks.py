"""Block orders (issue 14): one order executed for several funds. Pre-trade compliance
checks each fund with its share of the block, as if the fund had entered that share
itself, and one evaluation holds every fund's results, each reason naming its fund.

Every service that evaluates a stored or new order goes through ``order_evaluate``, so
a block is never checked as if it belonged to the one account its row names."""

from __future__ import annotations

import datetime as dt
from typing import Any

from audit.services import actor_name
from compliance import engine as compliance_engine
from compliance.engine import Evaluation, RuleResult, combined_outcome

from ..allocation import allocation_compute
from ..models import Account, Order

# The fields a fund's share of a block is evaluated with (everything an order's rules
# read, less the account and quantity).
SHARED_FIELDS = (
    "client_order_id",
    "security",
    "side",
    "order_type",
    "limit_price",
    "stop_price",
    "time_in_force",
    "expire_at",
    "venue",
    "short_exempt_reason",
    "origin",
    "created_by",
    "desk_order",
    "parent",
    "created_at",
)


def order_evaluate(*, order: Order, **kwargs: Any) -> Evaluation:
    """``compliance.engine.evaluate`` for any order: a block is evaluated fund by fund
    (``block_evaluate``)."""
    if order.block_order:
        return block_evaluate(order=order, **kwargs)
    return compliance_engine.evaluate(order=order, **kwargs)


def fund_shares(*, quantity: int, lot_size: int, targets: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Each fund's share of ``quantity`` by the allocation rule, in line order."""
    return [
        tuple(share) for share in allocation_compute(executed_quantity=quantity, lot_size=lot_size, targets=targets)
    ]


def block_evaluate(
    *,
    order: Order,
    stage: str = "submit",
    user: Any = None,
    changes: dict[str, Any] | None = None,
    dry_run: bool = False,
    deferred: bool = False,
    covered=(),
    venue: Any = None,
    primed: dict | None = None,
) -> Evaluation:
    """Every rule on every fund's share of the block (a fund whose share rounds to
    nothing is not checked: nothing of the block would be booked to it). The funds'
    evaluations share one cache (settings, lists and kill switches read once); each
    result's reason names its fund. One evaluation comes back, stored (unless
    ``dry_run`` or ``deferred``) as the block's verdict."""
    changes = changes or {}
    quantity = changes.get("quantity") or order.quantity
    targets = order.allocation_targets
    accounts = {account.code: account for account in Account.objects.filter(code__in=[t["account"] for t in targets])}
    cache = dict(primed or {})
    results: list[RuleResult] = []
    commits = []
    for code, share in fund_shares(quantity=quantity, lot_size=order.security.lot_size, targets=targets):
        if share == 0:
            continue
        fund_order = Order(pk=order.pk, account=accounts[code], quantity=share)
        for name in SHARED_FIELDS:
            setattr(fund_order, name, getattr(order, name))
        fund_changes = {**changes, "quantity": share} if changes else None
        evaluation = compliance_engine.evaluate(
            order=fund_order,
            stage=stage,
            user=user,
            changes=fund_changes,
            dry_run=dry_run,
            deferred=True,
            covered=covered,
            cache=cache,
            venue=venue,
        )
        for result in evaluation.results:
            if result.reason:
                result.reason = f"Fund {code}: {result.reason}"
            results.append(result)
        commits.extend(evaluation.commits)
    evaluation = Evaluation(
        outcome=combined_outcome(results),
        results=results,
        stage=stage,
        actor=actor_name(user),
        commits=commits,
        cache=cache,
        finished_at=dt.datetime.now(dt.UTC),
    )
    if not (dry_run or deferred):
        compliance_engine.evaluation_record(evaluation, order=order)
    return evaluation
