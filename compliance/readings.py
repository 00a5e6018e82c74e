"""The readings the limit, duplicate and wash-trade rules share: the account's
positions and running exposure, its recent and working orders in a security, and its
recent fills. Read once per cache (one order's evaluation, or every line of a basket,
which share one), and brought up to date with each order entered in the transaction
(``order_added``, registered with the engine), so a basket's next line sees the lines
before it as if they were stored. The caller holds the account's lock."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db.models import Max, Q

from oms_site.prepared import PreparedRead, reads_together
from orders.allocation import allocation_compute, allocation_weights
from orders.models import WORKING_STATUSES, AccountExposure, Execution, Order, OrderStatus, Position, Security, Side

from .engine import Check, order_added_register, prefetch_register
from .models import RuleName

S = OrderStatus

# The reads of every evaluation, compiled once per process (``oms_site.prepared``).
# Each exposure row carries its security's reference price (the notional limits value
# positions and unpriced orders at it).
_POSITIONS = PreparedRead(
    lambda account_id: Position.objects.filter(account_id=account_id).values_list(
        "security_id", "quantity", "security__reference_price"
    ),
    account_id=1,
)
_EXPOSURE = PreparedRead(
    lambda account_id, today: (
        AccountExposure.objects.filter(account_id=account_id)
        .filter(Q(working_quantity__gt=0) | Q(trade_date=today))
        .values_list(
            "security_id",
            "side",
            "trade_date",
            "working_quantity",
            "working_priced_notional",
            "working_unpriced_quantity",
            "filled_notional",
            "security__reference_price",
        )
    ),
    account_id=1,
    today=dt.date(2000, 1, 3),
)
_BLOCKS = PreparedRead(
    lambda day_start: Order.objects.filter(block_order=True, owner__isnull=True).filter(
        Q(status__in=WORKING_STATUSES) | Q(created_at__gte=day_start)
    ),
    day_start=dt.datetime(2000, 1, 3, tzinfo=dt.UTC),
)


def order_share(order) -> tuple[int, Decimal, int, Decimal]:
    """What one order, as it stands, adds to its exposure row (the database trigger's
    arithmetic): working leaves, their notional at the order's limit or stop, the
    leaves without a price, and what it filled (filled quantity x average price).
    A desk order a trader accepted adds nothing: its children carry its leaves and
    their fills are its fills."""
    owned = order.owner_id is not None  # accepted: its children carry all of it
    working = order.status in WORKING_STATUSES and not owned
    leaves = order.quantity - order.filled_quantity if working else 0
    price = order.limit_price or order.stop_price
    filled = (
        order.filled_quantity * order.avg_fill_price
        if order.status != S.REJECTED and order.avg_fill_price is not None and not owned
        else Decimal(0)
    )
    return leaves, leaves * price if price else Decimal(0), 0 if price else leaves, filled


def trading_day(when: dt.datetime) -> dt.date:
    """The firm's trading day of ``when``: its date in ``OMS_FIRM_TIME_ZONE`` (the
    zone the database's exposure trigger dates orders in), when daily limits roll."""
    return when.astimezone(zoneinfo.ZoneInfo(settings.OMS_FIRM_TIME_ZONE)).date()


def exposure_base(check: Check) -> dict:
    """The account's positions and running exposure (``AccountExposure``, kept by the
    database with every order change), read once per transaction that shares the
    cache, plus the orders entered in it since (``order_added``) that the reading
    could not see yet. ``working`` maps (security, side) to [leaves, priced
    notional, unpriced leaves]; ``today`` maps security to [priced notional,
    unpriced leaves, filled notional] of the orders entered today (the firm's
    trading day, ``trading_day``)."""
    base = check.cache.get(("exposure", check.order.account_id))
    if base is not None:
        return base
    reads = _exposure_reads(check)
    return _exposure_keep(check, reads_together(*reads))


def _exposure_reads(check: Check) -> list:
    order = check.order
    today = trading_day(check.now)
    reads = [
        (_POSITIONS, {"account_id": order.account_id}),
        (_EXPOSURE, {"account_id": order.account_id, "today": today}),
    ]
    # The block orders that count toward their funds' exposure (working, or entered
    # today: their fills count toward the daily limits), with whether each was entered
    # today; the exposure trigger leaves blocks out (their row names one fund only).
    # Read once per cache, whatever the account.
    if "blocks" not in check.cache:
        reads.append((_BLOCKS, {"day_start": _day_start(today)}))
    return reads


def _exposure_keep(check: Check, results: list[list]) -> dict:
    """The reading of ``exposure_base`` from the results of ``_exposure_reads``."""
    order = check.order
    today = trading_day(check.now)
    key = ("exposure", order.account_id)
    position_rows, exposure_rows, *blocks = results
    if blocks:
        check.cache["blocks"] = [(block, trading_day(block.created_at) == today) for block in blocks[0]]
    references: dict[int, Decimal | None] = {}
    positions = {}
    for security_id, quantity, reference in position_rows:
        positions[security_id] = quantity
        references[security_id] = reference
    base = {"positions": positions, "working": {}, "daily": {}, "references": references, "today": today}
    for security_id, side, trade_date, *share, reference in exposure_rows:
        exposure_adjust(base, security_id, side, trade_date == today, share)
        references[security_id] = reference
    for block, today_block in check.cache["blocks"]:
        if block.pk != order.pk:  # a block re-checked counts with its proposed terms
            for code, share in block_fund_shares(block):
                if code == order.account.code:
                    exposure_adjust(base, block.security_id, block.side, today_block, share)
    for added in check.cache.get(("added", order.account_id), ()):
        if added._state.adding:  # not stored when the rows were read: not in them
            exposure_adjust(base, added.security_id, added.side, True, order_share(added))
    # The rows above carry their securities' reference prices (what the limits value
    # positions and unpriced leaves at); a block's or an added order's may be missing.
    unread = {*(sec for sec, _side in base["working"]), *base["daily"]} - references.keys()
    if unread:
        references.update(Security.objects.filter(pk__in=unread).values_list("pk", "reference_price"))
    check.cache[key] = base
    return base


def _day_start(today: dt.date) -> dt.datetime:
    return dt.datetime.combine(today, dt.time(), tzinfo=zoneinfo.ZoneInfo(settings.OMS_FIRM_TIME_ZONE))


def block_fund_shares(block) -> list[tuple[str, tuple[int, Decimal, int, Decimal]]]:
    """What a block adds to each fund's exposure: its share (``order_share``) split by
    the block's targets, quantities by the allocation rule (exact sums), notionals pro
    rata."""
    leaves, priced, unpriced, filled = order_share(block)
    if not (leaves or filled):
        return []
    targets = block.allocation_targets
    weights = allocation_weights(targets)
    split = allocation_compute(executed_quantity=leaves, lot_size=1, targets=targets)
    shares = []
    for (code, quantity), weight in zip(split, weights, strict=True):
        fund_filled = filled * weight.numerator / weight.denominator
        if priced:
            shares.append((code, (quantity, priced * quantity / leaves, 0, fund_filled)))
        else:
            shares.append((code, (quantity, Decimal(0), quantity if unpriced else 0, fund_filled)))
    return shares


def exposure_adjust(data: dict, security_id: int, side: str, today: bool, share, sign: int = 1) -> None:
    quantity, priced, unpriced, filled = share
    row = data["working"].setdefault((security_id, side), [0, Decimal(0), 0])
    row[0] += sign * quantity
    row[1] += sign * priced
    row[2] += sign * unpriced
    if today:
        day = data["daily"].setdefault(security_id, [Decimal(0), 0, Decimal(0)])
        day[0] += sign * priced
        day[1] += sign * unpriced
        day[2] += sign * filled


def account_exposure(check: Check) -> dict:
    """The account's exposure without this order, which the rules count with its
    proposed terms: the shared reading, less the order as stored (an amendment or a
    release re-checks a stored order)."""
    order = check.order
    base = exposure_base(check)
    if order._state.adding:
        return base
    own = check.cache.get(("own", order.pk))
    if own is None:
        own = {
            "positions": base["positions"],
            "working": {key: list(row) for key, row in base["working"].items()},
            "daily": {key: list(row) for key, row in base["daily"].items()},
            "references": base["references"],
        }
        today = order.created_at is not None and trading_day(order.created_at) == base["today"]
        exposure_adjust(own, order.security_id, order.side, today, order_share(order), sign=-1)
        check.cache[("own", order.pk)] = own
    return own


class RecentOrders:
    """The account's orders in one security that a duplicate or a wash trade could be
    made with, indexed for both rules: by terms (side, quantity, limit price) for
    duplicates, and the two newest working orders per side for wash trades, so a
    basket's lines cost the same whatever number came before them."""

    def __init__(self, since: dt.datetime):
        self.since = since  # entered since then (or working) are all here
        self.pks: set[int] = set()
        self._by_terms: dict[tuple, list[tuple[int, dt.datetime]]] = {}
        self._newest_working: dict[str, list[int]] = {}

    def add(
        self,
        pk: int,
        side: str,
        quantity: int,
        price,
        created_at: dt.datetime,
        working: bool,
        family: int | None = None,
    ) -> None:
        if pk in self.pks:
            return
        self.pks.add(pk)
        self._by_terms.setdefault((side, quantity, price), []).append((pk, created_at, family or pk))
        if working:
            newest = self._newest_working.setdefault(side, [])
            newest.append(pk)
            newest.sort(reverse=True)
            del newest[2:]

    def twin(
        self, side: str, quantity: int, price, since: dt.datetime, exclude: int | None, family: int | None = None
    ) -> int | None:
        """The newest order with these terms entered since ``since``, not of
        ``family`` (a desk order and its children: slices of one order, no duplicates
        of each other)."""
        same = self._by_terms.get((side, quantity, price), ())
        return max(
            (pk for pk, at, kin in same if at >= since and pk != exclude and (family is None or kin != family)),
            default=None,
        )

    def working(self, sides, exclude: int | None) -> int | None:
        """The newest working order on one of ``sides``."""
        return max((pk for side in sides for pk in self._newest_working.get(side, ()) if pk != exclude), default=None)


def recent_orders(check: Check, since: dt.datetime) -> RecentOrders:
    """The account's orders in this security: working ones, and others not rejected
    entered since ``since`` (the widest window asked for is read); read once per
    transaction that shares the cache, orders entered in it added by
    ``order_added``."""
    order = check.order
    key = ("recent", order.account_id, order.security_id)
    cached = check.cache.get(key)
    if cached is not None and cached.since <= since:
        return cached
    mine = Order.objects.filter(account_id=order.account_id, security_id=order.security_id)
    recent = RecentOrders(since)
    entered = mine.filter(created_at__gte=since).exclude(status=S.REJECTED)
    for pk, side, quantity, price, at, status, parent_id in entered.values_list(
        "pk", "side", "quantity", "limit_price", "created_at", "status", "parent_id"
    ):
        recent.add(pk, side, quantity, price, at, status in WORKING_STATUSES, family=parent_id)
    # Of the working orders entered before, a wash trade names the newest per side.
    newest = mine.filter(status__in=WORKING_STATUSES, created_at__lt=since).exclude(pk=order.pk)
    for side, pk in newest.values("side").annotate(newest=Max("pk")).values_list("side", "newest"):
        recent.add(pk, side, None, None, since, True)
    for added in check.cache.get(("added", order.account_id), ()):
        if added.security_id == order.security_id and added.pk not in recent.pks:  # entered, not stored yet
            recent_add(recent, added)
    check.cache[key] = recent
    return recent


def recent_add(recent: RecentOrders, order) -> None:
    if order.status != S.REJECTED:
        created_at = order.created_at or dt.datetime.now(dt.UTC)
        recent.add(
            order.pk,
            order.side,
            order.quantity,
            order.limit_price,
            created_at,
            order.status in WORKING_STATUSES,
            family=order.parent_id,
        )


def recent_fills(check: Check, since: dt.datetime) -> list[tuple]:
    """The account's fills in this security in effect since ``since``, as
    (execution id, order id, side, received at); read once per shared cache (no
    fill is applied under the account lock the caller holds)."""
    order = check.order
    key = ("fills", order.account_id, order.security_id)
    cached = check.cache.get(key)
    if cached is not None and cached[0] <= since:
        return cached[1]
    fills = list(
        Execution.objects.filter(
            order__account_id=order.account_id,
            order__security_id=order.security_id,
            in_effect=True,
            received_at__gte=since,
        ).values_list("pk", "order_id", "order__side", "received_at")
    )
    check.cache[key] = (since, fills)
    return fills


def order_added(cache: dict, order) -> None:
    """Bring the shared readings up to date with an order entered in the transaction."""
    cache.setdefault(("added", order.account_id), []).append(order)
    base = cache.get(("exposure", order.account_id))
    if base is not None:
        exposure_adjust(base, order.security_id, order.side, True, order_share(order))
        if order.security_id not in base["references"]:
            base["references"][order.security_id] = order.security.reference_price
    recent = cache.get(("recent", order.account_id, order.security_id))
    if recent is not None:
        recent_add(recent, order)


order_added_register(order_added)


# One order's duplicate and wash-trade reads: the one row each needs (a basket's lines
# share ``recent_orders`` and ``recent_fills`` instead). ``exclude`` is the order's id,
# 0 before it has one (no order has id 0).
def _twins(account_id, security_id, side, quantity, limit_price, since, exclude, family, priced, in_family):
    twins = (
        Order.objects.filter(
            account_id=account_id,
            security_id=security_id,
            side=side,
            quantity=quantity,
            limit_price=limit_price if priced else None,
            created_at__gte=since,
        )
        .exclude(pk=exclude)
        .exclude(status=S.REJECTED)
    )
    if in_family:
        twins = twins.exclude(Q(parent_id=family) | Q(pk=family))
    return twins.order_by("-id").values_list("pk")[:1]


_TWIN = PreparedRead(
    _twins,
    shape=("priced", "in_family"),
    account_id=1,
    security_id=1,
    side="BUY",
    quantity=1,
    limit_price=Decimal("1.5"),
    since=dt.datetime(2000, 1, 3, tzinfo=dt.UTC),
    exclude=1,
    family=1,
)


def order_twin(check: Check, since: dt.datetime, family: int | None) -> int | None:
    """The newest order of the account with this order's terms entered since
    ``since``, not of ``family`` (the order's parent and its children)."""
    key = ("twin", since, family)
    if key not in check.cache:
        _twin_keep(check, key, reads_together(_twin_read(check, since, family)))
    return check.cache[key]


def _twin_read(check: Check, since: dt.datetime, family: int | None) -> tuple:
    order = check.order
    return (
        _TWIN,
        {
            "account_id": order.account_id,
            "security_id": order.security_id,
            "side": order.side,
            "quantity": check.quantity,
            "limit_price": check.limit_price if check.limit_price is not None else Decimal(0),
            "since": since,
            "exclude": order.pk or 0,
            "family": family or 0,
            "priced": check.limit_price is not None,
            "in_family": family is not None,
        },
    )


def _twin_keep(check: Check, key: tuple, results: list[list]) -> None:
    (rows,) = results
    check.cache[key] = rows[0][0] if rows else None


_OPPOSITE_WORKING = PreparedRead(
    lambda account_id, security_id, exclude, sides: (
        Order.objects.filter(
            account_id=account_id, security_id=security_id, side__in=sides, status__in=WORKING_STATUSES
        )
        .exclude(pk=exclude)
        .order_by("-id")
        .values_list("pk")[:1]
    ),
    shape=("sides",),
    account_id=1,
    security_id=1,
    exclude=1,
)
_OPPOSITE_FILL = PreparedRead(
    lambda account_id, security_id, since, exclude, sides: (
        Execution.objects.filter(
            order__account_id=account_id,
            order__security_id=security_id,
            order__side__in=sides,
            in_effect=True,
            received_at__gte=since,
        )
        .exclude(order_id=exclude)
        .order_by("-id")
        .values_list("pk", "order_id")[:1]
    ),
    shape=("sides",),
    account_id=1,
    security_id=1,
    since=dt.datetime(2000, 1, 3, tzinfo=dt.UTC),
    exclude=1,
)


def opposite_newest(
    check: Check, sides: tuple[str, ...], since: dt.datetime
) -> tuple[int | None, tuple[int, int] | None]:
    """Of the account's orders in this security on one of ``sides``, other than this
    order: the newest working one, and the newest fill in effect since ``since`` as
    (execution id, order id); read together."""
    key = ("opposite", tuple(sides), since)
    if key not in check.cache:
        reads = _opposite_reads(check, tuple(sides), since)
        _opposite_keep(check, key, reads_together(*reads))
    return check.cache[key]


def _opposite_reads(check: Check, sides: tuple[str, ...], since: dt.datetime) -> list:
    order = check.order
    mine = {"account_id": order.account_id, "security_id": order.security_id, "exclude": order.pk or 0}
    return [(_OPPOSITE_WORKING, {**mine, "sides": sides}), (_OPPOSITE_FILL, {**mine, "since": since, "sides": sides})]


def _opposite_keep(check: Check, key: tuple, results: list[list]) -> None:
    working, fill = results
    check.cache[key] = (working[0][0] if working else None), (fill[0] if fill else None)


EXPOSURE_RULES = (RuleName.POSITION_LIMIT, RuleName.GROSS_NOTIONAL, RuleName.NET_NOTIONAL, RuleName.DAILY_NOTIONAL)


def readings_prefetch(check: Check) -> list[tuple[list, Callable[[list[list]], None]]]:
    """What the limit, duplicate and wash-trade rules will read for one order's
    submission (``compliance.engine.prefetch_register``), by the same functions and
    keys they read by: the exposure, and the one row per setting's window the
    duplicate and wash-trade rules need."""
    order, wanted = check.order, []
    if ("exposure", order.account_id) not in check.cache and any(check.settings_for(r) for r in EXPOSURE_RULES):
        wanted.append((_exposure_reads(check), partial(_exposure_keep, check)))
    for setting in check.settings_for(RuleName.DUPLICATE_ORDER):
        if setting.window_seconds is not None:
            since = check.now - dt.timedelta(seconds=setting.window_seconds)
            key = ("twin", since, order.parent_id)
            if key not in check.cache:
                wanted.append(([_twin_read(check, since, order.parent_id)], partial(_twin_keep, check, key)))
    sides = opposite_sides(order.side)
    for setting in check.settings_for(RuleName.WASH_TRADE):
        if setting.window_seconds is not None:
            since = check.now - dt.timedelta(seconds=setting.window_seconds)
            key = ("opposite", sides, since)
            if key not in check.cache:
                wanted.append((_opposite_reads(check, sides, since), partial(_opposite_keep, check, key)))
    return wanted


def opposite_sides(side: str) -> tuple[str, ...]:
    """The sides a wash trade with an order on ``side`` would be on."""
    return (Side.SELL, Side.SELL_SHORT) if side == Side.BUY else (Side.BUY,)


prefetch_register(readings_prefetch)
