"""The pre-trade rules. Each takes a ``Check`` and returns one ``RuleVerdict``.

Thresholds are inclusive: an order exactly at a limit passes, one unit over fails.
Exposure counts positions and working orders (RTS 6 art. 15(2)): staged, held and live
orders hold their leaves quantity, valued at their limit (else stop, else reference)
price. The caller holds the account lock, so what a rule reads cannot be consumed by a
racing order of the same account before this one is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

from django.db import connection
from django.db.models import Q

from audit.services import actor_name, audit_event_record
from oms_site.prepared import RawRead, reads_together
from orders.models import (
    WORKING_STATUSES,
    Order,
    OrderRequest,
    OrderStatus,
    Side,
)

from .engine import Check, RuleVerdict, prefetch_register, rule_register
from .models import KillSwitch, Locate, LocateUse, Outcome, RestrictedEntry, ReviewItem, RuleName, WatchEntry
from .readings import account_exposure, opposite_newest, opposite_sides, order_twin, recent_fills, recent_orders
from .references import references_current
from .selectors import kill_switches_active as kill_switches_active_read

S = OrderStatus
SELL_SIDES = (Side.SELL, Side.SELL_SHORT)
PASS = Outcome.PASS


def _fmt(value: Decimal | int) -> str:
    if isinstance(value, Decimal):
        value = value.quantize(Decimal("0.01"))
    return f"{value:,}"


def _sign(side: str) -> int:
    return 1 if side == Side.BUY else -1


def _working_leaves(exposure: dict, security_id: int, sides) -> int:
    return sum(row[0] for (sec, side), row in exposure["working"].items() if sec == security_id and side in sides)


def _own_leaves(check: Check) -> int:
    """What this order adds to the exposure: its quantity less what has already filled
    (an amended order's fills are in the position already)."""
    return max(check.quantity - (check.order.filled_quantity or 0), 0)


def _setting_verdicts(check: Check, rule: str, evaluate_one: Callable) -> RuleVerdict:
    """Apply every deciding setting of ``rule``; the first failure wins (block before
    warn). ``evaluate_one(setting)`` returns ``None`` to pass or ``(code, reason)``."""
    settings = check.settings_for(rule)
    if not settings:
        return RuleVerdict(PASS, "not_configured")
    failures = []
    for setting in settings:
        failure = evaluate_one(setting)
        if failure is not None:
            failures.append((setting.severity, *failure))
    if not failures:
        return RuleVerdict(PASS, "ok")
    failures.sort(key=lambda f: 0 if f[0] == Outcome.BLOCK else 1)
    severity, code, reason = failures[0]
    return RuleVerdict(severity, code, reason)


def rule(name: str):
    def decorate(fn: Callable[[Check], RuleVerdict]):
        rule_register(str(name), fn)
        return fn

    return decorate


def _list_match(model, check: Check):
    security = check.security
    key = (model.__name__, security.pk)
    if key in check.cache:
        return check.cache[key]
    references = references_current(check.cache)
    if references is not None:
        entries = references.restricted if model is RestrictedEntry else references.watch
        entry = entries.first_in_force(security_id=security.pk, issuer=security.issuer, now=check.now)
    else:
        match = Q(security_id=security.pk)
        if security.issuer:
            match |= Q(issuer__iexact=security.issuer)
        entry = model.objects.filter(match).filter(model.in_force_q(check.now)).order_by("effective_from", "id").first()
    check.cache[key] = entry
    return entry


# ---------------------------------------------------------------------------- lists
@rule("restricted_list")
def restricted_list(check: Check) -> RuleVerdict:
    entry = _list_match(RestrictedEntry, check)
    if entry is None:
        return RuleVerdict(PASS, "ok")
    # The entry's reason may itself be inside information: traders see only the fact.
    who = check.security.issuer or check.security.symbol
    return RuleVerdict(Outcome.BLOCK, "restricted_list", f"{who} is on the restricted list.")


@rule("watch_list")
def watch_list(check: Check) -> RuleVerdict:
    entry = _list_match(WatchEntry, check)
    if entry is None:
        return RuleVerdict(PASS, "ok", internal=True)

    def raise_review_item(outcome: str) -> None:
        item = ReviewItem.objects.create(
            order=check.order,
            kind=ReviewItem.Kind.WATCH_LIST,
            message=f"Order #{check.order.pk} ({check.order.side} {check.quantity} {check.security.symbol}) "
            f"matches watch-list entry #{entry.pk} ({entry.target_label}).",
            details={"entry": entry.pk, "stage": check.stage, "outcome": outcome},
        )
        audit_event_record(
            actor=actor_name(check.user),
            action="review_item.raised",
            object_type="review_item",
            object_id=item.pk,
            after={"order": check.order.pk, "kind": item.kind, "entry": entry.pk, "stage": check.stage},
        )

    return RuleVerdict(
        Outcome.WARN,
        "watch_list",
        f"Watch-list entry #{entry.pk} ({entry.target_label}): {entry.reason}",
        internal=True,
        commit=raise_review_item,
    )


def kill_switches_active(check: Check) -> list[KillSwitch]:
    """Every switch on now (a handful at most), read once per check: the rule matches
    them here and routing matches the chosen venue against the same reading."""
    cached = check.cache.get("kill_switches")
    if cached is None:
        references = references_current(check.cache)
        cached = check.cache["kill_switches"] = (
            list(references.kill_switches)
            if references is not None
            else list(kill_switches_active_read().order_by("activated_at", "id"))
        )
    return cached


@rule("kill_switch")
def kill_switch(check: Check) -> RuleVerdict:
    scope = KillSwitch.Scope
    targets = {(scope.FIRM, ""), (scope.ACCOUNT, check.account.code), (scope.SYMBOL, check.security.symbol)}
    trader = check.trader
    if trader is not None and getattr(trader, "pk", None):
        targets.add((scope.TRADER, trader.get_username()))
    if check.venue is not None:
        targets.add((scope.VENUE, check.venue.code))
    switch = next((s for s in kill_switches_active(check) if (s.scope, s.target) in targets), None)
    if switch is None:
        return RuleVerdict(PASS, "ok")
    where = f"{switch.scope} {switch.target}".strip()
    return RuleVerdict(Outcome.BLOCK, "kill_switch", f"Kill switch on ({where}): {switch.reason}")


# --------------------------------------------------------------------- fat finger
@rule(RuleName.REFERENCE_PRICE)
def reference_price(check: Check) -> RuleVerdict:
    def one(setting):
        security = check.security
        if not security.reference_price:
            return "no_reference_price", f"{security.symbol} has no reference price."
        age_limit = dt.timedelta(seconds=setting.window_seconds)
        if security.reference_price_at is None or check.now - security.reference_price_at > age_limit:
            return (
                "stale_reference_price",
                f"The reference price of {security.symbol} is older than {setting.window_seconds} s.",
            )
        return None

    return _setting_verdicts(check, RuleName.REFERENCE_PRICE, one)


@rule(RuleName.MAX_ORDER_QUANTITY)
def max_order_quantity(check: Check) -> RuleVerdict:
    def one(setting):
        if check.quantity > setting.threshold:
            return (
                "max_order_quantity",
                f"Quantity {_fmt(check.quantity)} exceeds the maximum {_fmt(int(setting.threshold))}.",
            )
        return None

    return _setting_verdicts(check, RuleName.MAX_ORDER_QUANTITY, one)


@rule(RuleName.MAX_ORDER_NOTIONAL)
def max_order_notional(check: Check) -> RuleVerdict:
    def one(setting):
        notional = check.notional
        if notional is None:
            return "no_price", "The order has no price and the security no reference price to value it."
        if notional > setting.threshold:
            return "max_order_notional", f"Notional {_fmt(notional)} exceeds the maximum {_fmt(setting.threshold)}."
        return None

    return _setting_verdicts(check, RuleName.MAX_ORDER_NOTIONAL, one)


@rule(RuleName.PRICE_COLLAR)
def price_collar(check: Check) -> RuleVerdict:
    prices = [p for p in (check.limit_price, check.order.stop_price) if p is not None]

    def one(setting):
        if not prices:
            return None  # a market order: valued at the reference, whose freshness is checked
        reference = check.reference_price
        if reference is None:
            return "no_reference_price", f"{check.security.symbol} has no reference price for the price collar."
        for price in prices:
            distance = abs(price - reference) / reference * 100
            if distance > setting.threshold:
                return (
                    "price_collar",
                    f"Price {price.normalize():f} is {distance.quantize(Decimal('0.01'))}% from the reference "
                    f"{reference.normalize():f}; the collar is {setting.threshold.normalize():f}%.",
                )
        return None

    return _setting_verdicts(check, RuleName.PRICE_COLLAR, one)


# -------------------------------------------------------------------------- limits
@rule(RuleName.POSITION_LIMIT)
def position_limit(check: Check) -> RuleVerdict:
    def one(setting):
        exposure = account_exposure(check)
        security_id = check.order.security_id
        position = exposure["positions"].get(security_id, 0)
        buys = _working_leaves(exposure, security_id, (Side.BUY,))
        sells = _working_leaves(exposure, security_id, SELL_SIDES)
        if check.order.side == Side.BUY:
            buys += _own_leaves(check)
        else:
            sells += _own_leaves(check)
        projected = max(abs(position + buys), abs(position - sells))
        if projected > setting.threshold:
            return (
                "position_limit",
                f"Projected position {_fmt(projected)} in {check.security.symbol} (position {_fmt(position)}, "
                f"working buys {_fmt(buys)}, sells {_fmt(sells)}) exceeds the limit {_fmt(int(setting.threshold))}.",
            )
        return None

    return _setting_verdicts(check, RuleName.POSITION_LIMIT, one)


def _notional_totals(check: Check) -> tuple[Decimal, Decimal]:
    """Gross and net notional of the account with this order: positions at reference
    prices, working orders at their prices."""
    exposure = account_exposure(check)
    references = exposure["references"]
    gross = net = Decimal(0)
    for security_id, quantity in exposure["positions"].items():
        value = quantity * (references.get(security_id) or Decimal(0))
        gross += abs(value)
        net += value
    for (security_id, side), (_leaves, priced, unpriced) in exposure["working"].items():
        value = priced + unpriced * (references.get(security_id) or Decimal(0))
        gross += value
        net += _sign(side) * value
    own = _own_leaves(check) * (check.price or Decimal(0))
    return gross + own, net + _sign(check.order.side) * own


@rule(RuleName.GROSS_NOTIONAL)
def gross_notional_limit(check: Check) -> RuleVerdict:
    def one(setting):
        gross, _ = _notional_totals(check)
        if gross > setting.threshold:
            return (
                "gross_notional_limit",
                f"Account gross notional would be {_fmt(gross)}; the limit is {_fmt(setting.threshold)}.",
            )
        return None

    return _setting_verdicts(check, RuleName.GROSS_NOTIONAL, one)


@rule(RuleName.NET_NOTIONAL)
def net_notional_limit(check: Check) -> RuleVerdict:
    def one(setting):
        _, net = _notional_totals(check)
        if abs(net) > setting.threshold:
            return (
                "net_notional_limit",
                f"Account net notional would be {_fmt(net)}; the limit is ±{_fmt(setting.threshold)}.",
            )
        return None

    return _setting_verdicts(check, RuleName.NET_NOTIONAL, one)


@rule(RuleName.DAILY_NOTIONAL)
def daily_notional_limit(check: Check) -> RuleVerdict:
    def one(setting):
        exposure = account_exposure(check)
        references = exposure["references"]
        used = Decimal(0)
        for security_id, (priced, unpriced, filled) in exposure["daily"].items():
            used += filled + priced + unpriced * (references.get(security_id) or Decimal(0))
        total = used + (check.notional or Decimal(0))
        if total > setting.threshold:
            return (
                "daily_notional_limit",
                f"The account's notional today would be {_fmt(total)}; the daily limit is {_fmt(setting.threshold)}.",
            )
        return None

    return _setting_verdicts(check, RuleName.DAILY_NOTIONAL, one)


# ------------------------------------------------------- duplicates and wash trades
@rule(RuleName.DUPLICATE_ORDER)
def duplicate_order(check: Check) -> RuleVerdict:
    if check.stage not in ("submit", "check", "release"):
        return RuleVerdict(PASS, "not_applicable")

    def one(setting):
        since = check.now - dt.timedelta(seconds=setting.window_seconds)
        order = check.order
        # A child order is a slice of its parent: its siblings and its parent are the
        # same order worked in parts, not duplicates of it.
        family = order.parent_id
        if check.shared:
            twin = recent_orders(check, since).twin(
                order.side, check.quantity, check.limit_price, since, order.pk, family=family
            )
        else:  # one order: the one row it needs
            twin = order_twin(check, since, family)
        if twin is None:
            return None
        return (
            "duplicate_order",
            f"Same account, security, side, quantity and price as order #{twin} within {setting.window_seconds} s.",
        )

    return _setting_verdicts(check, RuleName.DUPLICATE_ORDER, one)


@rule(RuleName.WASH_TRADE)
def wash_trade(check: Check) -> RuleVerdict:
    opposite = opposite_sides(check.order.side)

    def one(setting):
        since = check.now - dt.timedelta(seconds=setting.window_seconds)
        order = check.order
        if check.shared:
            working = recent_orders(check, since).working(opposite, order.pk)
        else:  # one order: the one row each needs
            working, fill = opposite_newest(check, opposite, since)
        if working is not None:
            return (
                "wash_trade",
                f"Order #{working} on the opposite side of {check.security.symbol} is working in the same account.",
            )
        if check.shared:
            fill = max(
                (
                    (execution_id, order_id)
                    for execution_id, order_id, side, received_at in recent_fills(check, since)
                    if side in opposite and received_at >= since and order_id != order.pk
                ),
                default=None,
            )
        if fill is not None:
            return (
                "wash_trade",
                f"Order #{fill[1]} on the opposite side of {check.security.symbol} filled in the same account "
                f"within {setting.window_seconds} s.",
            )
        return None

    return _setting_verdicts(check, RuleName.WASH_TRADE, one)


# ----------------------------------------------------------------------- short sale
def locate_unused(locate: Locate, *, exclude_order_id: int | None = None) -> int:
    """What is left of a locate: orders still staged, held or working reserve their
    whole quantity, ended orders only what they filled."""
    used = 0
    uses = locate.uses.select_related("order")
    if exclude_order_id is not None:
        uses = uses.exclude(order_id=exclude_order_id)
    for use in uses:
        if use.order.status in WORKING_STATUSES:
            used += use.quantity
        else:
            used += min(use.quantity, use.order.filled_quantity)
    return locate.quantity - used


@rule(RuleName.SHORT_SALE)
def short_sale(check: Check) -> RuleVerdict:
    order = check.order
    if order.side == Side.BUY:
        return RuleVerdict(PASS, "not_applicable")
    if not check.settings_for(RuleName.SHORT_SALE):
        return RuleVerdict(PASS, "not_configured")
    if order.side == Side.SELL:
        exposure = account_exposure(check)
        position = exposure["positions"].get(order.security_id, 0)
        pending = _working_leaves(exposure, order.security_id, SELL_SIDES)
        available = position - pending
        if _own_leaves(check) > available:
            return RuleVerdict(
                Outcome.BLOCK,
                "short_sale_unmarked",
                f"Selling {_fmt(check.quantity)} {check.security.symbol} exceeds the long position available "
                f"({_fmt(max(available, 0))} after pending sells): mark it SELL_SHORT, with a locate.",
            )
        return RuleVerdict(PASS, "long_sale")
    if order.short_exempt_reason:
        return RuleVerdict(PASS, "short_exempt", f"Short exempt: {order.short_exempt_reason}")
    if order.pk is None and check.stage != "check":
        return RuleVerdict(Outcome.BLOCK, "no_order", "The order must be stored before a locate can be reserved.")
    candidates = Locate.objects.filter(
        account_id=order.account_id, security_id=order.security_id, expires_at__gt=check.now, ended_at__isnull=True
    )
    current = LocateUse.objects.filter(order_id=order.pk).first() if not order._state.adding else None
    chosen = None
    # The order's own locate first, then the one that expires soonest.
    ordered = sorted(candidates, key=lambda loc: (current is None or loc.pk != current.locate_id, loc.expires_at))
    for locate in ordered:
        if locate_unused(locate, exclude_order_id=order.pk) >= check.quantity:
            chosen = locate
            break
    if chosen is None:
        return RuleVerdict(
            Outcome.BLOCK,
            "no_locate",
            f"Short sale of {_fmt(check.quantity)} {check.security.symbol} needs an unexpired locate with enough "
            "unused quantity (Reg SHO 203(b)).",
        )

    def reserve(outcome: str) -> None:
        if outcome == Outcome.BLOCK:
            return
        use, created = LocateUse.objects.update_or_create(
            order=order, defaults={"locate": chosen, "quantity": check.quantity}
        )
        audit_event_record(
            actor=actor_name(check.user),
            action="locate.reserved",
            object_type="locate",
            object_id=chosen.pk,
            after={
                "order": order.pk,
                "quantity": check.quantity,
                "broker": chosen.broker,
                "reference": chosen.reference,
            },
        )

    return RuleVerdict(
        PASS,
        "locate",
        f"Locate {chosen.broker} {chosen.reference} covers {_fmt(check.quantity)}.",
        commit=None if check.dry_run else reserve,
    )


# --------------------------------------------------------------------- rate limits
def _message_count(check: Check, window_seconds: int, *, by_account: bool) -> int:
    """New, cancel and replace messages in the window: orders entered (held and
    rejected ones too: each was a message) and cancel/replace requests. A basket is
    one message from the client however many orders it carries (firms rate-limit
    messages; the basket's size is bounded by its own limit and by the exposure
    rules), so its orders count once, and not at all for its own lines: the line
    being checked is the basket's message, which the caller counts. Every count the
    two rate rules need for the check is read in one statement."""
    if check.stage == "amend":  # the order's own entry counts too: not shared
        return _message_counts_read(check, [(by_account, window_seconds)])[(by_account, window_seconds)]

    key = _message_key(check, by_account, window_seconds)
    if key not in check.cache:
        wanted = sorted({(by_account, window_seconds)} | _rate_windows(check))
        _message_counts_keep(check, wanted, _message_counts_read(check, wanted))
    return check.cache[key]


def _message_key(check: Check, by_account: bool, window_seconds: int) -> tuple:
    """Where a count is kept in the check's cache: the same for each line of a basket."""
    who = check.order.account_id if by_account else getattr(check.trader, "pk", None)
    return ("messages", by_account, who, window_seconds, check.order.basket_id)


def _rate_windows(check: Check) -> set[tuple[bool, int]]:
    """Every (by account, window seconds) the two rate rules count for this check."""
    return {
        (rule_by_account, setting.window_seconds)
        for rule_name, rule_by_account in _RATE_RULES.items()
        for setting in check.settings_for(rule_name)
        if setting.window_seconds is not None
    }


def _message_counts_keep(check: Check, wanted: list[tuple[bool, int]], counts: dict) -> None:
    for by_account, window_seconds in wanted:
        check.cache.setdefault(_message_key(check, by_account, window_seconds), counts[(by_account, window_seconds)])


def _rate_prefetch(check: Check) -> list[tuple[list, Callable[[list[list]], None]]]:
    """The counts the rate rules will read for one order's submission
    (``compliance.engine.prefetch_register``)."""
    wanted = sorted(w for w in _rate_windows(check) if _message_key(check, *w) not in check.cache)
    read, counted = _message_counts_statement(check, wanted)
    if read is None:
        return []

    def keep(results: list[list]) -> None:
        _message_counts_keep(check, wanted, _message_counts_of(wanted, counted, results[0]))

    return [([read], keep)]


def _message_counts_read(check: Check, wanted: list[tuple[bool, int]]) -> dict[tuple[bool, int], int]:
    """The message counts for each (by account, window seconds) in ``wanted``, in one
    statement (``_message_counts_statement``)."""
    read, counted = _message_counts_statement(check, wanted)
    return _message_counts_of(wanted, counted, reads_together(read)[0] if read is not None else [])


def _message_counts_of(wanted: list[tuple[bool, int]], counted: list[tuple[bool, int]], rows: list[tuple]) -> dict:
    counts = {key: 0 for key in wanted}
    if counted:
        counts.update(zip(counted, rows[0], strict=True))
    return counts


def _message_counts_statement(check: Check, wanted: list[tuple[bool, int]]) -> tuple[RawRead | None, list]:
    """The statement counting, for each (by account, window seconds) in ``wanted``,
    the orders entered (a basket's once) and the cancel and replace requests; with
    the counts it gives, in its column order (none by trader without one)."""
    order_table, request_table = Order._meta.db_table, OrderRequest._meta.db_table
    trader = check.trader
    trader_id = trader.pk if trader is not None and getattr(trader, "pk", None) else None
    columns: list[str] = []
    params: list = []
    counted: list[tuple[bool, int]] = []
    for by_account, window_seconds in wanted:
        if not by_account and trader_id is None:
            continue
        # As the ORM would send it (the embedded SQLite database keeps naive UTC text).
        since = connection.ops.adapt_datetimefield_value(check.now - dt.timedelta(seconds=window_seconds))
        who = check.order.account_id if by_account else trader_id
        orders = f"o.created_at >= %s AND o.{'account_id' if by_account else 'created_by_id'} = %s"
        params += [since, who]
        if check.stage != "amend":  # the order being entered is the message counted by the caller
            if check.order.pk is not None:
                orders += " AND o.id <> %s"
                params.append(check.order.pk)
            if check.order.basket_id is not None:
                orders += " AND (o.basket_id IS NULL OR o.basket_id <> %s)"
                params.append(check.order.basket_id)
        if by_account:
            requests = (
                f"FROM {request_table} r JOIN {order_table} ro ON ro.id = r.order_id "
                "WHERE r.created_at >= %s AND r.kind IN (%s, %s) AND ro.account_id = %s"
            )
        else:
            requests = (
                f"FROM {request_table} r WHERE r.created_at >= %s AND r.kind IN (%s, %s) AND r.requested_by_id = %s"
            )
        params += [since, OrderRequest.Kind.CANCEL, OrderRequest.Kind.REPLACE, who]
        columns.append(
            "(SELECT COUNT(CASE WHEN o.basket_id IS NULL THEN 1 END) + COUNT(DISTINCT o.basket_id) "
            f"FROM {order_table} o WHERE {orders}) + (SELECT COUNT(*) {requests})"
        )
        counted.append((by_account, window_seconds))
    return (RawRead(f"SELECT {', '.join(columns)}", tuple(params)) if counted else None), counted


def _rate_rule(rule_name: str, *, by_account: bool) -> Callable[[Check], RuleVerdict]:
    def rate(check: Check) -> RuleVerdict:
        if check.stage == "release":  # compliance releasing a held order is not a trader message
            return RuleVerdict(PASS, "not_applicable")

        def one(setting):
            count = _message_count(check, setting.window_seconds, by_account=by_account) + 1
            if count > setting.threshold:
                who = f"account {check.account.code}" if by_account else f"trader {check.trader.get_username()}"
                return (
                    rule_name,
                    f"Message rate for {who}: {count} in {setting.window_seconds} s exceeds {int(setting.threshold)}.",
                )
            return None

        return _setting_verdicts(check, rule_name, one)

    rule_register(str(rule_name), rate)
    return rate


_RATE_RULES = {RuleName.ORDER_RATE_TRADER: False, RuleName.ORDER_RATE_ACCOUNT: True}  # rule -> by account
order_rate_trader = _rate_rule(RuleName.ORDER_RATE_TRADER, by_account=False)
order_rate_account = _rate_rule(RuleName.ORDER_RATE_ACCOUNT, by_account=True)


prefetch_register(_rate_prefetch)
