"""The firm-wide starting calibration of the configurable rules.

No regulation sets these numbers (REGULATORY.md): each firm calibrates its own, and
middle office changes them in the admin console. They are created once, after
migrate, for any rule that has no firm-level setting yet; an existing setting (even a
disabled one) is never touched, so the console's choices survive upgrades."""

from __future__ import annotations

from decimal import Decimal

FIRM_DEFAULT_NOTE = "Firm default created at installation."

FIRM_DEFAULTS = [
    # rule, severity, threshold, window_seconds
    ("reference_price", "block", None, 86400),
    ("max_order_quantity", "block", Decimal("1000000"), None),
    ("max_order_notional", "block", Decimal("10000000"), None),
    ("price_collar", "block", Decimal("10"), None),
    ("position_limit", "block", Decimal("5000000"), None),
    ("gross_notional_limit", "block", Decimal("100000000"), None),
    ("net_notional_limit", "block", Decimal("50000000"), None),
    ("daily_notional_limit", "block", Decimal("50000000"), None),
    ("duplicate_order", "warn", None, 60),
    ("wash_trade", "warn", None, 300),
    ("short_sale", "block", None, None),
    ("order_rate_trader", "block", Decimal("20"), 1),
    ("order_rate_account", "block", Decimal("50"), 1),
]


def firm_defaults_ensure(**_kwargs) -> int:
    """Create the firm default of every rule that has no firm setting. Returns how
    many were created."""
    from .models import RuleSetting, Scope

    existing = set(RuleSetting.objects.filter(scope=Scope.FIRM).values_list("rule", flat=True))
    created = [
        RuleSetting(
            rule=rule,
            scope=Scope.FIRM,
            severity=severity,
            threshold=threshold,
            window_seconds=window,
            note=FIRM_DEFAULT_NOTE,
        )
        for rule, severity, threshold, window in FIRM_DEFAULTS
        if rule not in existing
    ]
    RuleSetting.objects.bulk_create(created)
    return len(created)
