"""Securities and accounts written outside the admin (``seed_demo``, the securities
CSV load): one service each, audited as "security.*" / "account.*" with the same
snapshots as an edit in the admin (``audit.reference.reference_save``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from audit.reference import reference_save

from ..models import Account, Security


def security_save(
    *, symbol: str, values: Mapping[str, Any], actor: str, via: str, new_defaults: Mapping[str, Any] | None = None
) -> tuple[Security, bool]:
    """Create the security ``symbol`` or change the given fields of it; returns
    (security, created). Locked, validated, audited ("security.created" /
    "security.changed", ``via``); ``new_defaults`` only for a new security. Changing
    nothing writes nothing."""
    return reference_save(
        model=Security, key_field="symbol", key=symbol, values=values, new_defaults=new_defaults, actor=actor, via=via
    )


def account_save(
    *, code: str, values: Mapping[str, Any], actor: str, via: str, traders: Iterable[Any] | None = None
) -> tuple[Account, bool]:
    """Create the account ``code`` or change the given fields of it; ``traders`` (users),
    when given, become exactly the account's traders. Returns (account, created).
    Locked, validated, audited ("account.created" / "account.changed", ``via``).
    Changing nothing writes nothing."""
    return reference_save(
        model=Account,
        key_field="code",
        key=code,
        values=values,
        members=None if traders is None else {"traders": traders},
        actor=actor,
        via=via,
    )
