"""Compliance records: the lists, locates and rule settings middle office maintains,
the verdicts the engine reaches, override requests, kill switches and review items.

Nothing here is ever deleted: list entries and locates are ended, switches released,
overrides decided; the admin and the services keep the history."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

PRICE = {"max_digits": 28, "decimal_places": 8}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Outcome(models.TextChoices):
    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    BLOCK = "block", "Block"


class Severity(models.TextChoices):
    WARN = "warn", "Warn (hold for an override)"
    BLOCK = "block", "Block (reject)"


class Scope(models.TextChoices):
    FIRM = "firm", "Firm (every order)"
    TRADER = "trader", "Trader"
    ACCOUNT = "account", "Account"
    ISSUER = "issuer", "Issuer"
    SECURITY = "security", "Security"


class RuleName(models.TextChoices):
    """Rules whose thresholds, windows and severity are settings. The restricted list,
    watch list and kill switch are driven by their own records instead."""

    REFERENCE_PRICE = "reference_price", "Reference price present and fresh"
    MAX_ORDER_QUANTITY = "max_order_quantity", "Fat finger: maximum order quantity"
    MAX_ORDER_NOTIONAL = "max_order_notional", "Fat finger: maximum order notional"
    PRICE_COLLAR = "price_collar", "Price collar against the reference price (%)"
    POSITION_LIMIT = "position_limit", "Position limit per account and security (shares)"
    GROSS_NOTIONAL = "gross_notional_limit", "Gross notional limit per account"
    NET_NOTIONAL = "net_notional_limit", "Net notional limit per account"
    DAILY_NOTIONAL = "daily_notional_limit", "Daily credit: notional per account per day"
    DUPLICATE_ORDER = "duplicate_order", "Duplicate order within a window"
    WASH_TRADE = "wash_trade", "Wash trade: opposite working order or recent fill"
    SHORT_SALE = "short_sale", "Short sale marking and locate (Reg SHO)"
    ORDER_RATE_TRADER = "order_rate_trader", "Message rate per trader"
    ORDER_RATE_ACCOUNT = "order_rate_account", "Message rate per account"


# What each rule reads from its setting, for the admin's help text and the README.
RULE_PARAMETERS = {
    RuleName.REFERENCE_PRICE: "window_seconds = maximum age of the reference price",
    RuleName.MAX_ORDER_QUANTITY: "threshold = maximum quantity (inclusive)",
    RuleName.MAX_ORDER_NOTIONAL: "threshold = maximum notional, quantity x limit (else reference) price",
    RuleName.PRICE_COLLAR: "threshold = maximum distance of limit/stop price from reference, in percent",
    RuleName.POSITION_LIMIT: "threshold = maximum |position| in shares, projected with working orders",
    RuleName.GROSS_NOTIONAL: "threshold = maximum gross notional (positions + working orders)",
    RuleName.NET_NOTIONAL: "threshold = maximum |net notional| (positions + working orders)",
    RuleName.DAILY_NOTIONAL: "threshold = maximum notional of the day's orders (filled + working)",
    RuleName.DUPLICATE_ORDER: "window_seconds = look-back for an identical order",
    RuleName.WASH_TRADE: "window_seconds = look-back for opposite fills (working orders always count)",
    RuleName.SHORT_SALE: "no parameters; severity is always block",
    RuleName.ORDER_RATE_TRADER: "threshold = messages allowed per window_seconds",
    RuleName.ORDER_RATE_ACCOUNT: "threshold = messages allowed per window_seconds",
}

# Scopes from most to least specific: the most specific level with a setting decides.
SCOPE_PRECEDENCE = (Scope.SECURITY, Scope.ISSUER, Scope.ACCOUNT, Scope.TRADER, Scope.FIRM)


class RuleSetting(models.Model):
    """One configured control: a rule, the scope it applies to, and its parameters.

    For an order, the most specific scope with a setting for the rule decides
    (security > issuer > account > trader > firm); several settings at that level all
    apply. A disabled setting switches the rule off for its scope."""

    rule = models.CharField(max_length=30, choices=RuleName.choices)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.FIRM)
    account = models.ForeignKey("orders.Account", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    trader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    security = models.ForeignKey("orders.Security", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    issuer = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    severity = models.CharField(max_length=5, choices=Severity.choices, default=Severity.BLOCK)
    threshold = models.DecimalField(**PRICE, null=True, blank=True)
    window_seconds = models.PositiveIntegerField(null=True, blank=True)
    note = models.TextField(blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rule", "scope", "id"]
        constraints = [
            models.CheckConstraint(
                name="rule_setting_target_matches_scope",
                condition=(
                    Q(scope="firm", account__isnull=True, trader__isnull=True, security__isnull=True, issuer="")
                    | Q(scope="account", account__isnull=False, trader__isnull=True, security__isnull=True, issuer="")
                    | Q(scope="trader", account__isnull=True, trader__isnull=False, security__isnull=True, issuer="")
                    | Q(scope="security", account__isnull=True, trader__isnull=True, security__isnull=False, issuer="")
                    | (
                        Q(scope="issuer", account__isnull=True, trader__isnull=True, security__isnull=True)
                        & ~Q(issuer="")
                    )
                ),
            )
        ]
        indexes = [models.Index(fields=["rule", "scope"])]

    def __str__(self) -> str:
        return f"{self.rule} [{self.target_label}]"

    @property
    def target_label(self) -> str:
        target = {
            Scope.ACCOUNT: self.account,
            Scope.TRADER: self.trader,
            Scope.SECURITY: self.security,
            Scope.ISSUER: self.issuer,
        }.get(self.scope)
        return f"{self.scope}: {target}" if target else self.scope

    def clean(self) -> None:
        # Targets that do not belong to the scope are dropped; a missing one is an error.
        needed = {Scope.ACCOUNT: "account", Scope.TRADER: "trader", Scope.SECURITY: "security"}
        for scope, field in needed.items():
            if self.scope != scope:
                setattr(self, f"{field}_id", None)
        if self.scope != Scope.ISSUER:
            self.issuer = ""
        errors = {}
        if self.scope in needed and getattr(self, f"{needed[self.scope]}_id") is None:
            errors[needed[self.scope]] = f"Required for scope {self.scope}."
        if self.scope == Scope.ISSUER and not self.issuer.strip():
            errors["issuer"] = "Required for scope issuer."
        if self.rule == RuleName.SHORT_SALE and self.severity != Severity.BLOCK:
            errors["severity"] = "A short sale without a locate is always blocked (Reg SHO 203(b))."
        needs_threshold = {
            RuleName.MAX_ORDER_QUANTITY,
            RuleName.MAX_ORDER_NOTIONAL,
            RuleName.PRICE_COLLAR,
            RuleName.POSITION_LIMIT,
            RuleName.GROSS_NOTIONAL,
            RuleName.NET_NOTIONAL,
            RuleName.DAILY_NOTIONAL,
            RuleName.ORDER_RATE_TRADER,
            RuleName.ORDER_RATE_ACCOUNT,
        }
        needs_window = {
            RuleName.REFERENCE_PRICE,
            RuleName.DUPLICATE_ORDER,
            RuleName.WASH_TRADE,
            RuleName.ORDER_RATE_TRADER,
            RuleName.ORDER_RATE_ACCOUNT,
        }
        if self.enabled and self.rule in needs_threshold and self.threshold is None:
            errors["threshold"] = f"{RULE_PARAMETERS[self.rule]}: required."
        if self.threshold is not None and self.threshold < 0:
            errors["threshold"] = "Must not be negative."
        if self.enabled and self.rule in needs_window and not self.window_seconds:
            errors["window_seconds"] = f"{RULE_PARAMETERS[self.rule]}: required."
        if errors:
            raise ValidationError(errors)
        duplicates = RuleSetting.objects.filter(
            rule=self.rule,
            scope=self.scope,
            account_id=self.account_id,
            trader_id=self.trader_id,
            security_id=self.security_id,
            issuer__iexact=self.issuer,
        ).exclude(pk=self.pk)
        if duplicates.exists():
            raise ValidationError("A setting for this rule and target already exists; edit that one.")


class ListEntry(models.Model):
    """A restricted- or watch-list entry for a security or a whole issuer, in force
    from ``effective_from`` until ``effective_to`` (open-ended when empty). An entry
    for a security that has an issuer covers every security of that issuer."""

    security = models.ForeignKey("orders.Security", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    issuer = models.CharField(max_length=200, blank=True, db_index=True)
    reason = models.TextField()
    effective_from = models.DateTimeField()
    effective_to = models.DateTimeField(null=True, blank=True)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-effective_from", "-id"]

    def __str__(self) -> str:
        return self.issuer or str(self.security)

    @staticmethod
    def in_force_q(now: dt.datetime) -> Q:
        """Entries in force at ``now``: started, and not yet ended."""
        return Q(effective_from__lte=now) & (Q(effective_to__isnull=True) | Q(effective_to__gt=now))

    def in_force(self, now: dt.datetime | None = None) -> bool:
        """The same rule for one loaded entry."""
        now = now or utc_now()
        return self.effective_from <= now and (self.effective_to is None or self.effective_to > now)

    @property
    def target_label(self) -> str:
        if self.security_id:
            return f"{self.security.symbol} (issuer {self.issuer})" if self.issuer else self.security.symbol
        return f"issuer {self.issuer}"


class RestrictedEntry(ListEntry):
    """Restricted list (Advisers Act 204A): a hard block, no override."""

    class Meta(ListEntry.Meta):
        verbose_name = "restricted list entry"
        verbose_name_plural = "restricted list"
        constraints = [
            models.CheckConstraint(
                name="restricted_entry_has_target", condition=Q(security__isnull=False) | ~Q(issuer="")
            ),
            models.CheckConstraint(
                name="restricted_entry_period",
                condition=Q(effective_to__isnull=True) | Q(effective_to__gt=models.F("effective_from")),
            ),
        ]


class WatchEntry(ListEntry):
    """Watch / grey list: never blocks, never shown to traders; each matching order
    raises a review item for compliance."""

    class Meta(ListEntry.Meta):
        verbose_name = "watch list entry"
        verbose_name_plural = "watch list"
        constraints = [
            models.CheckConstraint(name="watch_entry_has_target", condition=Q(security__isnull=False) | ~Q(issuer="")),
            models.CheckConstraint(
                name="watch_entry_period",
                condition=Q(effective_to__isnull=True) | Q(effective_to__gt=models.F("effective_from")),
            ),
        ]


class Locate(models.Model):
    """A borrow located before a short sale (Reg SHO 203(b)(1)): who located it, how
    many shares, until when. Orders consume it through ``LocateUse``."""

    account = models.ForeignKey("orders.Account", on_delete=models.PROTECT, related_name="locates")
    security = models.ForeignKey("orders.Security", on_delete=models.PROTECT, related_name="locates")
    broker = models.CharField(max_length=100)
    reference = models.CharField(max_length=100, help_text="the broker's locate id")
    quantity = models.BigIntegerField()
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="withdrawn before expiry")

    class Meta:
        ordering = ["expires_at", "id"]
        constraints = [
            models.CheckConstraint(name="locate_quantity_positive", condition=Q(quantity__gt=0)),
            models.UniqueConstraint(fields=["broker", "reference"], name="locate_reference_unique_per_broker"),
        ]

    def __str__(self) -> str:
        return f"{self.broker} {self.reference}: {self.quantity} {self.security_id} for {self.account_id}"


class LocateUse(models.Model):
    """The part of a locate one order reserves. While the order is staged, held or
    working it holds ``quantity``; once it has ended it holds only what was filled."""

    locate = models.ForeignKey(Locate, on_delete=models.PROTECT, related_name="uses")
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="locate_use")
    quantity = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.quantity} of locate {self.locate_id}"


class ComplianceVerdict(models.Model):
    """One evaluation of one order (submit, amend, release): every rule's result,
    pass results as well as failures, stored together in one row with one insert.

    ``results`` is a list of ``{"rule", "outcome", "code", "reason", "internal",
    "overridden"}`` in rule order; ``ComplianceResult`` reads it back one row per
    rule."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="compliance_verdicts")
    stage = models.CharField(max_length=20, default="submit")
    # The combined outcome: any block blocks, else any counted warning warns.
    outcome = models.CharField(max_length=5, choices=Outcome.choices)
    results = models.JSONField(default=list)
    evaluated_at = models.DateTimeField(default=utc_now, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"order {self.order_id} {self.stage}: {self.outcome}"


# Rule results of a verdict are numbered verdict id x RESULT_ID_BASE + position.
RESULT_ID_BASE = 1000


class ComplianceResult(models.Model):
    """One rule's verdict on one order at one evaluation, read from the evaluation's
    ``ComplianceVerdict`` (a database view: one row per rule of each verdict). Never
    saved: the engine stores verdicts; instances it builds in memory carry the
    results of evaluations that are not stored (the what-if check)."""

    id = models.BigIntegerField(primary_key=True)
    verdict = models.ForeignKey(
        ComplianceVerdict, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", null=True
    )
    order = models.ForeignKey(
        "orders.Order", on_delete=models.DO_NOTHING, db_constraint=False, related_name="compliance_results"
    )
    stage = models.CharField(max_length=20, default="submit")
    rule = models.CharField(max_length=50)
    outcome = models.CharField(max_length=5, choices=Outcome.choices)
    code = models.CharField(max_length=50)
    reason = models.TextField(blank=True)
    # Watch-list style results are for compliance only, never shown to traders.
    internal = models.BooleanField(default=False)
    # A warning covered by an approved override for this order.
    overridden = models.BooleanField(default=False)
    # Every result of one evaluation carries the verdict's time.
    evaluated_at = models.DateTimeField(default=utc_now)

    class Meta:
        managed = False
        db_table = "compliance_complianceresult"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.rule}: {self.outcome}"

    def as_result(self) -> dict:
        """The result as its verdict stores it."""
        return {
            "rule": self.rule,
            "outcome": self.outcome,
            "code": self.code,
            "reason": self.reason,
            "internal": self.internal,
            "overridden": self.overridden,
        }


class OverrideRequest(models.Model):
    """A trader's request to release one held order (RTS 6 art. 15(6)); decided by a
    compliance user who is not the requester, before ``expires_at``."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        EXPIRED = "expired", "Expired"
        WITHDRAWN = "withdrawn", "Withdrawn (order ended)"

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="override_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    requested_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    # The warnings the override was asked for (rule codes), so an approval covers those
    # and nothing that turns up later.
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order"], condition=Q(status="pending"), name="override_one_pending_per_order"
            )
        ]
        permissions = [("decide_overriderequest", "Can approve or deny override requests")]

    def __str__(self) -> str:
        return f"override #{self.pk} for order {self.order_id} ({self.status})"


class KillSwitch(models.Model):
    """A latch that stops new orders in its scope (RTS 6 art. 12). Activating it also
    sends a cancel for every working order in scope; it stays on until released."""

    class Scope(models.TextChoices):
        FIRM = "firm", "Firm"
        ACCOUNT = "account", "Account"
        TRADER = "trader", "Trader"
        VENUE = "venue", "Venue"
        SYMBOL = "symbol", "Symbol"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    target = models.CharField(max_length=150, blank=True, help_text="account code, username, venue code or symbol")
    reason = models.TextField()
    activated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    activated_at = models.DateTimeField(auto_now_add=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.TextField(blank=True)
    cancels_requested = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-activated_at", "-id"]
        verbose_name_plural = "kill switches"
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "target"], condition=Q(released_at__isnull=True), name="kill_switch_one_active"
            ),
            models.CheckConstraint(name="kill_switch_firm_has_no_target", condition=~Q(scope="firm") | Q(target="")),
        ]

    def __str__(self) -> str:
        state = "ON" if self.released_at is None else "off"
        return f"{self.scope}{':' + self.target if self.target else ''} {state}"

    @property
    def active(self) -> bool:
        return self.released_at is None


class ReviewItem(models.Model):
    """Something compliance must look at: a watch-list hit, an override decision to
    follow up. Never shown to traders."""

    class Kind(models.TextChoices):
        WATCH_LIST = "watch_list", "Watch-list hit"

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["resolved_at", "-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"
