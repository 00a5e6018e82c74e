from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django_fsm import RETURN_VALUE, FSMField, FSMModelMixin, transition

from .pnl import PositionCost

PRICE = {"max_digits": 18, "decimal_places": 8}
AMOUNT = {"max_digits": 28, "decimal_places": 8}


class AssetClass(models.TextChoices):
    EQUITY = "EQUITY", "Equity"
    ETF = "ETF", "Exchange-traded fund"
    FIXED_INCOME = "FIXED_INCOME", "Fixed income"
    FUTURE = "FUTURE", "Future"
    OPTION = "OPTION", "Option"
    FX = "FX", "FX"


class Security(models.Model):
    symbol = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    issuer = models.CharField(max_length=200, blank=True, db_index=True)
    asset_class = models.CharField(max_length=20, choices=AssetClass.choices, default=AssetClass.EQUITY)
    currency = models.CharField(max_length=3, default="USD")
    reference_price = models.DecimalField(**PRICE, null=True, blank=True)
    reference_price_at = models.DateTimeField(null=True, blank=True)
    lot_size = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["symbol"]
        verbose_name_plural = "securities"

    def __str__(self) -> str:
        return self.symbol


class Account(models.Model):
    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    traders = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="trading_accounts", blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Side(models.TextChoices):
    BUY = "BUY", "Buy"
    SELL = "SELL", "Sell"
    SELL_SHORT = "SELL_SHORT", "Sell short"


class OrderType(models.TextChoices):
    MARKET = "MARKET", "Market"
    LIMIT = "LIMIT", "Limit"
    STOP = "STOP", "Stop"
    STOP_LIMIT = "STOP_LIMIT", "Stop limit"


class TimeInForce(models.TextChoices):
    DAY = "DAY", "Day"
    GTC = "GTC", "Good till cancel"
    IOC = "IOC", "Immediate or cancel"
    FOK = "FOK", "Fill or kill"
    GTD = "GTD", "Good till date"


class OrderStatus(models.TextChoices):
    NEW = "new", "New (staged, not sent)"
    HELD = "held", "Held for compliance override"
    PENDING_NEW = "pending_new", "Pending new"
    OPEN = "open", "Open"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    PENDING_CANCEL = "pending_cancel", "Pending cancel"
    PENDING_AMEND = "pending_amend", "Pending amend"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    DONE_FOR_DAY = "done_for_day", "Done for day"


S = OrderStatus
# Statuses that hold until the venue says otherwise: no ack, fill or cancel reject moves
# the order out of them (a fill on a cancelled order is applied, the status stays).
STICKY_STATUSES = frozenset({S.CANCELLED, S.REJECTED, S.EXPIRED, S.DONE_FOR_DAY})
TERMINAL_STATUSES = frozenset({S.CANCELLED, S.REJECTED, S.EXPIRED})
# Statuses in which the order has leaves at the venue (or may have, awaiting an answer).
LIVE_STATUSES = frozenset({S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_AMEND})
# Working: not ended, so it counts toward limits (staged and held orders included).
WORKING_STATUSES = frozenset({S.NEW, S.HELD, *LIVE_STATUSES})
# A desk order (a portfolio manager's, worked by its owner) takes child orders in these.
PLACEABLE_STATUSES = frozenset({S.NEW, S.OPEN, S.PARTIALLY_FILLED})
# Working and not already being cancelled: what a kill switch sends a cancel for.
CANCELLABLE_STATUSES = WORKING_STATUSES - {S.PENDING_CANCEL}


class Origin(models.TextChoices):
    API = "api", "REST API"
    WEB = "web", "Order ticket"
    VENUE = "venue", "Venue (unsolicited, e.g. telephoned order)"


class Basket(models.Model):
    """Many orders submitted in one request and one transaction (a program or list
    trade). ``client_basket_id`` makes the submission idempotent per user; the counts
    are the compliance outcome of its lines at submission (what the 201 said), kept so
    a repeated submission answers exactly the same."""

    client_basket_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="baskets")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    lines_total = models.PositiveIntegerField(default=0)
    lines_routed = models.PositiveIntegerField(default=0)
    lines_held = models.PositiveIntegerField(default=0)
    lines_rejected = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["created_by", "client_basket_id"], name="basket_client_id_unique_per_user"),
        ]

    def __str__(self) -> str:
        return f"basket #{self.pk} {self.client_basket_id}"

    @property
    def counts(self) -> dict[str, int]:
        return {
            "total": self.lines_total,
            "routed": self.lines_routed,
            "held": self.lines_held,
            "rejected": self.lines_rejected,
        }


class Order(FSMModelMixin, models.Model):
    """A client order and its life at the venue.

    ``status`` follows the FIX 4.4 Order State Change Matrices with OrdStatus precedence
    (pending cancel > pending replace > done for day > filled > cancelled/expired >
    partially filled > new). The transitions below only check and set fields; the
    services decide which one a message calls for."""

    client_order_id = models.CharField(max_length=64)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="orders")
    side = models.CharField(max_length=10, choices=Side.choices)
    quantity = models.BigIntegerField(validators=[MinValueValidator(1)])
    order_type = models.CharField(max_length=10, choices=OrderType.choices)
    limit_price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.DAY)
    expire_at = models.DateTimeField(null=True, blank=True)
    venue = models.ForeignKey("routing.Venue", on_delete=models.PROTECT, null=True, blank=True, related_name="orders")
    status = FSMField(default=S.NEW, choices=OrderStatus.choices, protected=True, db_index=True)
    filled_quantity = models.BigIntegerField(default=0)
    avg_fill_price = models.DecimalField(**PRICE, null=True, blank=True)
    reject_reason = models.TextField(blank=True)
    # A SELL_SHORT marked short exempt (Reg SHO 201/203 exceptions; FIX Side 6) needs
    # no locate but must say why.
    short_exempt_reason = models.TextField(blank=True)
    # The ClOrdID the venue currently knows the order by (advanced when a replace or
    # cancel is accepted); the whole chain is in OrderRequest.
    cl_ord_id = models.CharField(max_length=64, blank=True, db_index=True)
    venue_order_id = models.CharField(max_length=64, blank=True, help_text="OrderID (37) from the venue")
    acknowledged = models.BooleanField(default=False, help_text="the venue has accepted the order")
    needs_review = models.BooleanField(default=False, db_index=True)
    origin = models.CharField(max_length=5, choices=Origin.choices, default=Origin.API)
    # The basket the order was submitted in (null: submitted on its own).
    basket = models.ForeignKey(Basket, on_delete=models.PROTECT, null=True, blank=True, related_name="orders")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    # A portfolio manager's order: checked by compliance like any order but never
    # routed itself; it waits (new) in the desk's incoming queue until a trader of its
    # account accepts it (``owner``) and works it.
    desk_order = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="owned_orders"
    )
    # A child order: a slice of a desk order (its parent) that the owner placed.
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children")
    # A block order: executed as one order for several funds, its fills booked to them
    # only when middle office confirms an allocation. ``account`` is the first fund's
    # (the block's entitlement and lock); ``allocation_targets`` the lines as entered,
    # [{"account", "quantity" | "percent"}] (a child of a block carries its parent's).
    # A block's running exposure is its funds' (compliance.readings), not the account's.
    block_order = models.BooleanField(default=False)
    allocation_targets = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "client_order_id"], name="order_client_id_unique_per_account"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(filled_quantity__lte=models.F("quantity")),
                name="order_filled_within_quantity",
            ),
        ]
        indexes = [
            models.Index(fields=["venue", "venue_order_id"]),
            # The compliance rules' own look-ups: wash trades and duplicates (the
            # account's orders in a security and side), message rates (entered lately).
            models.Index(fields=["account", "security", "side", "status"]),
            models.Index(fields=["account", "created_at"]),
            models.Index(fields=["created_by", "created_at"]),
            # Compliance reads the working blocks to find each fund's share of them.
            models.Index(fields=["status"], condition=Q(block_order=True), name="order_block_status"),
        ]
        permissions = [("close_order_locally", "Can close an order the venue no longer knows")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.quantity} {self.security.symbol} ({self.status})"

    @property
    def symbol(self) -> str:
        return self.security.symbol

    @property
    def leaves_quantity(self) -> int:
        if self.status in STICKY_STATUSES or self.status in (S.NEW, S.HELD):
            return 0
        return max(self.quantity - self.filled_quantity, 0)

    @property
    def placed_on_parent(self) -> int:
        """What this child takes of its parent's quantity: all of it while it works or
        once filled; what it filled once it ended otherwise (its leaves are free again)."""
        if self.status in WORKING_STATUSES or self.status == S.FILLED:
            return self.quantity
        return self.filled_quantity

    @property
    def placed_quantity(self) -> int:
        """A parent's quantity placed in child orders (working plus filled), computed
        from its children, never stored: nothing can drift when a child ends.
        ``children_shown`` when the selector prefetched them."""
        if not self.desk_order or self.pk is None:
            return 0
        children = getattr(self, "children_shown", None)
        if children is None:
            return self.placed_quantity_read()
        return sum(child.placed_on_parent for child in children)

    def placed_quantity_read(self) -> int:
        """``placed_quantity`` in one statement (under the parent's lock: race-free)."""
        placed = Order.objects.filter(parent_id=self.pk).aggregate(
            placed=models.Sum(
                models.Case(
                    models.When(status__in=[*WORKING_STATUSES, S.FILLED], then=models.F("quantity")),
                    default=models.F("filled_quantity"),
                )
            )
        )["placed"]
        return placed or 0

    def working_status(self) -> str:
        """The status by quantities alone, before pending requests take precedence."""
        if self.filled_quantity >= self.quantity:
            return S.FILLED
        if self.filled_quantity > 0:
            return S.PARTIALLY_FILLED
        return S.OPEN if self.acknowledged else S.PENDING_NEW

    # -- trader and compliance intents ------------------------------------------------
    @transition(field=status, source=S.NEW, target=S.HELD)
    def hold(self) -> None:
        pass

    @transition(field=status, source=[S.NEW, S.HELD], target=S.PENDING_NEW)
    def send(self) -> None:
        pass

    # A desk order compliance passed (at submission, or released after an override)
    # waits, new, for a trader instead of being sent.
    @transition(field=status, source=[S.NEW, S.HELD], target=S.NEW)
    def queue_for_desk(self) -> None:
        pass

    @transition(field=status, source=[S.NEW, S.HELD, S.PENDING_NEW], target=S.CANCELLED)
    def cancel_unsent(self) -> None:
        pass

    @transition(
        field=status, source=[S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED, S.PENDING_AMEND], target=S.PENDING_CANCEL
    )
    def request_cancel(self) -> None:
        pass

    # FILLED: a filled order may be increased (FIX 4.4 C.1.c); order_amend refuses any
    # other change to it.
    @transition(field=status, source=[S.OPEN, S.PARTIALLY_FILLED, S.FILLED], target=S.PENDING_AMEND)
    def request_amend(self) -> None:
        pass

    # -- what the venue reports (FIX ExecutionReport / OrderCancelReject) --------------
    @transition(
        field=status,
        source=[S.NEW, S.HELD, S.PENDING_NEW, S.OPEN, S.PENDING_CANCEL, S.PENDING_AMEND],
        target=S.REJECTED,
    )
    def mark_rejected(self) -> None:
        pass

    @transition(field=status, source=[S.PENDING_CANCEL, S.PENDING_AMEND], target=S.PENDING_NEW)
    def mark_pending_new(self) -> None:
        pass

    @transition(
        field=status,
        source=[S.PENDING_NEW, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_AMEND, S.DONE_FOR_DAY],
        target=S.OPEN,
    )
    def mark_open(self) -> None:
        pass

    @transition(
        field=status,
        source=[S.PENDING_NEW, S.OPEN, S.FILLED, S.PENDING_CANCEL, S.PENDING_AMEND, S.DONE_FOR_DAY],
        target=S.PARTIALLY_FILLED,
    )
    def mark_partially_filled(self) -> None:
        pass

    @transition(
        field=status,
        source=[S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_AMEND],
        target=S.FILLED,
    )
    def mark_filled(self) -> None:
        pass

    @transition(
        field=status,
        source=[S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED, S.PENDING_AMEND],
        target=S.PENDING_CANCEL,
    )
    def mark_pending_cancel(self) -> None:
        pass

    @transition(
        field=status,
        source=[S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL],
        target=S.PENDING_AMEND,
    )
    def mark_pending_amend(self) -> None:
        pass

    @transition(
        field=status,
        source=[S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_AMEND, S.DONE_FOR_DAY],
        target=S.CANCELLED,
    )
    def mark_cancelled(self) -> None:
        pass

    @transition(
        field=status,
        source=[S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_AMEND, S.DONE_FOR_DAY],
        target=S.EXPIRED,
    )
    def mark_expired(self) -> None:
        pass

    @transition(
        field=status,
        source=[S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_AMEND],
        target=S.DONE_FOR_DAY,
    )
    def mark_done_for_day(self) -> None:
        pass

    # -- a desk order worked in child orders (never at a venue itself) ----------------
    # Its first child placed starts the work; then its status follows what its
    # children filled, either way (a bust on a child moves it back). Cancelled, it
    # keeps its status while a late child fill still adds to its filled quantity.
    @transition(field=status, source=S.NEW, target=S.OPEN)
    def start_working(self) -> None:
        pass

    @transition(
        field=status,
        source=[S.OPEN, S.PARTIALLY_FILLED, S.FILLED],
        target=RETURN_VALUE(S.OPEN, S.PARTIALLY_FILLED, S.FILLED),
    )
    def follow_children(self, status: str) -> str:
        return status

    @transition(field=status, source=[S.OPEN, S.PARTIALLY_FILLED], target=S.CANCELLED)
    def cancel_worked(self) -> None:
        pass

    # -- middle office ------------------------------------------------------------------
    # The venue no longer knows the order (it lost its state; a cancel got "unknown
    # order"), so no report will ever end it: it is ended here, keeping its fills. Not
    # in the FIX matrices, which describe what a venue reports; the status it ends in
    # is one the venue could have reported (cancelled, or done for the day), so a late
    # fill is still applied and the status stays (STICKY_STATUSES, J.1.b / J.1.d).
    @transition(
        field=status,
        source=[S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_AMEND],
        target=RETURN_VALUE(S.CANCELLED, S.DONE_FOR_DAY, S.EXPIRED),
    )
    def close_locally(self, final_status: str) -> str:
        return final_status

    def mark(self, target: str) -> None:
        """Move to ``target`` through its venue-driven transition (no-op if already there)."""
        if target != self.status:
            getattr(self, f"mark_{target}")()


class OrderRequest(models.Model):
    """One FIX request for an order (new, cancel, replace), each with its own ClOrdID,
    chained to its predecessor by OrigClOrdID."""

    class Kind(models.TextChoices):
        NEW = "new", "New order"
        CANCEL = "cancel", "Cancel"
        REPLACE = "replace", "Cancel/replace"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        SUPERSEDED = "superseded", "Superseded (order ended first)"
        WITHDRAWN = "withdrawn", "Withdrawn before sending"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="requests")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    cl_ord_id = models.CharField(max_length=64, unique=True)
    orig_cl_ord_id = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    venue_acknowledged = models.BooleanField(default=False, help_text="venue sent Pending Cancel/Replace")
    quantity = models.BigIntegerField(null=True, blank=True)
    limit_price = models.DecimalField(**PRICE, null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reject_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["order", "state"]), models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.cl_ord_id} ({self.state})"


class Execution(models.Model):
    """Every execution report a venue sent for an order, stored once per ExecID.

    Trades (ExecType F) carry quantity and price; a bust (H) or correction (G) points
    at the execution it reverses through ``ref_execution`` and takes it out of effect.
    ``filled_quantity`` and the average price of an order are the sum over its
    executions in effect."""

    class Outcome(models.TextChoices):
        APPLIED = "applied", "Applied"
        RECORDED = "recorded", "Recorded and flagged, not applied"
        OVERFILL = "overfill", "Overfill: recorded and flagged, never applied"

    venue = models.ForeignKey("routing.Venue", on_delete=models.PROTECT, related_name="executions")
    exec_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (NULL: ExecType I has no ExecID)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, null=True, blank=True, related_name="executions")
    exec_type = models.CharField(max_length=1)
    ord_status = models.CharField(max_length=1, blank=True)
    cl_ord_id = models.CharField(max_length=64, blank=True)
    last_qty = models.BigIntegerField(default=0)
    last_px = models.DecimalField(**PRICE, null=True, blank=True)
    ref_execution = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="adjustments"
    )
    in_effect = models.BooleanField(default=False)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.APPLIED)
    transact_time = models.DateTimeField(null=True, blank=True, help_text="TransactTime (60) as sent")
    received_at = models.DateTimeField()
    message = models.JSONField(encoder=DjangoJSONEncoder, help_text="the report's tags as received")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["venue", "exec_id"],
                condition=Q(exec_id__isnull=False),
                name="execution_exec_id_unique_per_venue",
            ),
        ]
        indexes = [models.Index(fields=["order", "in_effect"])]

    def __str__(self) -> str:
        return f"{self.venue_id}:{self.exec_id} {self.exec_type} {self.last_qty}@{self.last_px}"


class OrderFlag(models.Model):
    """Something about an order (or an unmatched message) a person must look at:
    overfills, late executions on ended orders, quantity mismatches, unknown orders."""

    class Kind(models.TextChoices):
        OVERFILL = "overfill", "Overfill"
        TERMINAL_ORDER_MESSAGE = "terminal_order_message", "Message for an ended order"
        LATE_EXECUTION = "late_execution", "Execution on a cancelled or done-for-day order"
        CUM_QTY_MISMATCH = "cum_qty_mismatch", "Venue CumQty differs from ours"
        UNKNOWN_ORDER = "unknown_order", "Report for an unknown order"
        UNKNOWN_EXECUTION = "unknown_execution", "Bust or correction of an unknown execution"
        UNEXPECTED_MESSAGE = "unexpected_message", "Message not allowed in the order's state"
        UNKNOWN_REQUEST = "unknown_request", "Cancel reject for an unknown request"
        VENUE_UNKNOWN_ORDER = "venue_unknown_order", "Venue no longer knows the order: close it locally"
        ALLOCATION_OUT_OF_STEP = "allocation_out_of_step", "Block executions changed after its allocation was booked"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, null=True, blank=True, related_name="flags")
    venue_code = models.CharField(max_length=20, blank=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class Position(models.Model):
    """Net position per account and security, kept as bought and sold totals so that a
    bust or correction reverses a fill exactly."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="positions")
    quantity = models.BigIntegerField(default=0)
    bought_quantity = models.BigIntegerField(default=0)
    bought_notional = models.DecimalField(**AMOUNT, default=Decimal("0"))
    sold_quantity = models.BigIntegerField(default=0)
    sold_notional = models.DecimalField(**AMOUNT, default=Decimal("0"))
    # Weighted average cost (orders.pnl): the cost of the open quantity, signed like it,
    # and the P&L realized by reducing it; kept with every fill and booking, busts and
    # corrections included.
    cost_basis = models.DecimalField(**AMOUNT, default=Decimal("0"))
    realized_pnl = models.DecimalField(**AMOUNT, default=Decimal("0"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "security"]
        constraints = [models.UniqueConstraint(fields=["account", "security"], name="position_unique")]

    def __str__(self) -> str:
        return f"{self.account.code} {self.security.symbol}: {self.quantity}"

    @property
    def cost(self) -> PositionCost:
        return PositionCost(self.quantity, self.cost_basis, self.realized_pnl)

    @property
    def average_cost(self) -> Decimal | None:
        return self.cost.average_cost

    @property
    def unrealized_pnl(self) -> Decimal | None:
        """The open quantity at the security's reference price, less its cost."""
        return self.cost.unrealized(self.security.reference_price or None) if self.quantity else Decimal(0)

    @property
    def avg_buy_price(self) -> Decimal | None:
        return (
            (self.bought_notional / self.bought_quantity).quantize(Decimal("0.00000001"))
            if self.bought_quantity
            else None
        )

    @property
    def avg_sell_price(self) -> Decimal | None:
        return (self.sold_notional / self.sold_quantity).quantize(Decimal("0.00000001")) if self.sold_quantity else None


class AccountExposure(models.Model):
    """Running exposure of an account by security, side and trade date (the firm's
    trading day the orders were entered: their date in ``OMS_FIRM_TIME_ZONE``), for pre-trade compliance to read instead of aggregating
    orders: the working orders' leaves (priced at their limit or stop, or without a
    price and so valued at the reference price when read) and what the day's orders
    have filled (filled quantity x average price).

    Kept by the database: a trigger on the orders table (migration 0005) adds each
    order's change to its row in the transaction that changes the order, whatever
    writes it (a service, a bulk update, the admin), so it can never drift."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="exposures")
    security = models.ForeignKey(Security, on_delete=models.CASCADE, related_name="+")
    side = models.CharField(max_length=10, choices=Side.choices)
    trade_date = models.DateField()
    working_quantity = models.BigIntegerField(default=0)
    working_priced_notional = models.DecimalField(**AMOUNT, default=Decimal("0"))
    working_unpriced_quantity = models.BigIntegerField(default=0)
    filled_notional = models.DecimalField(**AMOUNT, default=Decimal("0"))

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "security", "side", "trade_date"], name="account_exposure_unique"
            )
        ]
        indexes = [models.Index(fields=["account", "trade_date"])]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.security_id} {self.side} {self.trade_date}: {self.working_quantity}"


class Allocation(models.Model):
    """How a block order's executions at one venue are booked to its funds: proposed by
    the OMS, changed and confirmed by middle office (positions booked, 35=J sent with
    AllocID ``alloc_id``), acknowledged by the broker (35=P); the workflow is in
    ``orders.services.allocations``."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        CHANGED = "changed", "Changed by middle office"
        CONFIRMED = "confirmed", "Confirmed (instruction sent)"
        RECEIVED = "received", "Received by the broker"
        ACCEPTED = "accepted", "Accepted by the broker"
        REJECTED = "rejected", "Rejected by the broker"
        CANCELLED = "cancelled", "Cancelled"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="allocations")
    venue = models.ForeignKey("routing.Venue", on_delete=models.PROTECT, related_name="allocations")
    alloc_id = models.CharField(max_length=64, unique=True, help_text="AllocID (70) sent to the broker")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PROPOSED, db_index=True)
    quantity = models.BigIntegerField(help_text="the executed quantity allocated")
    avg_price = models.DecimalField(**PRICE)
    trade_date = models.DateField()
    replaces = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # The AllocID of the instruction that cancelled this one at the broker (35=J, 71=2).
    cancel_alloc_id = models.CharField(max_length=64, blank=True, db_index=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    ack_status = models.CharField(max_length=2, blank=True, help_text="AllocStatus (87) of the last ack")
    ack_text = models.TextField(blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    OPEN = (Status.PROPOSED, Status.CHANGED)  # middle office may change or confirm
    BOOKED = (Status.CONFIRMED, Status.RECEIVED, Status.ACCEPTED)  # positions booked
    CANCELLABLE = (Status.PROPOSED, Status.CHANGED, Status.CONFIRMED, Status.RECEIVED)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one allocation in force per block and venue: a redo replaces it.
            models.UniqueConstraint(
                fields=["order", "venue"],
                condition=Q(status__in=["proposed", "changed", "confirmed", "received", "accepted"]),
                name="allocation_one_in_force",
            )
        ]
        permissions = [("confirm_allocation", "Can change, confirm and cancel a block's allocation")]

    def __str__(self) -> str:
        return f"{self.alloc_id} {self.quantity} @ {self.avg_price} ({self.status})"


class AllocationLine(models.Model):
    """One fund's part of an allocation; ``proposed_quantity`` is what the rule gave."""

    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="lines")
    line = models.PositiveSmallIntegerField()
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="allocation_lines")
    quantity = models.BigIntegerField()
    proposed_quantity = models.BigIntegerField()

    class Meta:
        ordering = ["allocation", "line"]
        constraints = [
            models.UniqueConstraint(fields=["allocation", "account"], name="allocation_line_unique_account"),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="allocation_line_quantity_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.quantity}"
