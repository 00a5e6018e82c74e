"""Pre-trade compliance engine.

``evaluate(order=...)`` runs every registered rule on an order (or on a prospective
one, for the what-if check), persists each verdict (pass, warn or block) and returns
the combined outcome: any block blocks, else any warn not covered by an approved
override warns. A rule that raises blocks the order (fail closed, SEC 15c3-5(c)(2)(i)).

Rules are functions of a ``Check`` returning a ``RuleVerdict``; they live in
``compliance.rules`` and are registered when the app loads. Limits read the account's
positions and working orders, so the caller holds the account's row lock
(``orders.services`` does): two orders racing on one limit are evaluated one after the
other, and the second sees the first as working.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.db.models import Q

from audit.services import actor_name, audit_event_build, audit_events_store
from oms_site.db import rows_batch_send, rows_insert
from oms_site.prepared import reads_together

from .models import SCOPE_PRECEDENCE, ComplianceVerdict, Outcome, RuleSetting, Scope
from .references import references_current

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleVerdict:
    outcome: str
    code: str
    reason: str = ""
    internal: bool = False
    # Run after the results are stored (never on a what-if check) with the combined
    # outcome: consuming a locate, raising a review item.
    commit: Callable[[str], None] | None = None


@dataclass(slots=True)
class RuleResult:
    """One rule's result in one evaluation, in memory: what ``ComplianceResult`` reads
    back from the stored verdict (``pk`` stays None; verdicts are stored whole)."""

    order_id: int | None
    stage: str
    rule: str
    outcome: str
    code: str
    reason: str
    internal: bool
    overridden: bool
    evaluated_at: dt.datetime
    pk: None = None

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


def combined_outcome(results) -> str:
    """One evaluation's outcome: any block blocks, else any warning not overridden
    holds; internal (watch-list) results never count."""
    counted = {r.outcome for r in results if not r.internal and not r.overridden}
    if Outcome.BLOCK in counted:
        return Outcome.BLOCK
    if Outcome.WARN in counted:
        return Outcome.WARN
    return Outcome.PASS


@dataclass
class Evaluation:
    outcome: str
    results: list[RuleResult] = field(default_factory=list)
    stage: str = "submit"
    actor: str = ""
    # Run once the verdict is stored (locate reservations, review items).
    commits: list[Callable[[str], None]] = field(default_factory=list)
    # What the rules read, for the steps after them in the same request (the
    # active kill switches, which routing checks again for the chosen venue).
    cache: dict = field(default_factory=dict)
    # When the rules were done: the time of the evaluation's audit event.
    finished_at: dt.datetime | None = None

    @property
    def visible_results(self) -> list[RuleResult]:
        return [r for r in self.results if not r.internal]

    @property
    def visible_reasons(self) -> list[str]:
        return [r.reason for r in self.visible_results if r.outcome != Outcome.PASS and not r.overridden]

    @property
    def warnings(self) -> list[str]:
        """Rules whose warnings hold the order (what an override must cover)."""
        return [r.rule for r in self.visible_results if r.outcome == Outcome.WARN and not r.overridden]


@dataclass
class Check:
    """What the rules look at: the order as it would be after this step."""

    order: Any
    stage: str
    user: Any
    quantity: int
    limit_price: Decimal | None
    venue: Any
    now: dt.datetime
    dry_run: bool
    cache: dict = field(default_factory=dict)
    # The cache is shared by many evaluations (a basket's lines): rules read whole
    # sets once rather than the one row a single order needs.
    shared: bool = False

    @property
    def security(self):
        return self.order.security

    @property
    def account(self):
        return self.order.account

    @property
    def trader(self):
        return self.order.created_by if self.order.created_by_id else self.user

    @property
    def reference_price(self) -> Decimal | None:
        price = self.security.reference_price
        return price if price else None

    @property
    def price(self) -> Decimal | None:
        """The price that values the order: its limit, else its stop, else the
        reference price."""
        return self.limit_price or self.order.stop_price or self.reference_price

    @property
    def notional(self) -> Decimal | None:
        price = self.price
        return None if price is None else price * self.quantity

    @cached_property
    def _decided(self) -> dict[str, list[RuleSetting]]:
        """Rule -> the settings that decide it for this order: those of the most
        specific scope that has any (security > issuer > account > trader > firm),
        enabled ones only. Read once per account, security, issuer and trader in
        the shared cache."""
        trader = self.trader
        trader_id = trader.pk if trader is not None and getattr(trader, "pk", None) else None
        key = ("settings", self.order.account_id, self.order.security_id, self.security.issuer.lower(), trader_id)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        references = references_current(self.cache)
        if references is not None:
            settings = references.settings_applicable(
                account_id=self.order.account_id,
                security_id=self.order.security_id,
                issuer=self.security.issuer,
                trader_id=trader_id,
            )
        else:
            applicable = Q(scope=Scope.FIRM) | Q(scope=Scope.ACCOUNT, account_id=self.order.account_id)
            applicable |= Q(scope=Scope.SECURITY, security_id=self.order.security_id)
            if self.security.issuer:
                applicable |= Q(scope=Scope.ISSUER, issuer__iexact=self.security.issuer)
            if trader_id is not None:
                applicable |= Q(scope=Scope.TRADER, trader_id=trader_id)
            settings = RuleSetting.objects.filter(applicable)
        by_rule: dict[str, list[RuleSetting]] = {}
        for setting in settings:
            by_rule.setdefault(setting.rule, []).append(setting)
        decided = {}
        for rule, settings in by_rule.items():
            scope = next(scope for scope in SCOPE_PRECEDENCE if any(s.scope == scope for s in settings))
            decided[rule] = [s for s in settings if s.scope == scope and s.enabled]
        self.cache[key] = decided
        return decided

    def settings_for(self, rule: str) -> list[RuleSetting]:
        """The settings that decide ``rule`` for this order; empty when the rule is
        off or not configured."""
        return self._decided.get(rule, [])


Rule = Callable[[Check], RuleVerdict]
_RULES: dict[str, Rule] = {}


def rule_register(name: str, rule: Rule) -> None:
    _RULES[name] = rule


def rule_unregister(name: str) -> None:
    _RULES.pop(name, None)


def registered_rules() -> dict[str, Rule]:
    return dict(_RULES)


def verdict_build(results: list[RuleResult], *, order_id: int | None = None) -> ComplianceVerdict:
    """The verdict row of one evaluation's ``results`` (all of one order and stage);
    ``order_id`` when the results were made before the order was stored."""
    first = results[0]
    return ComplianceVerdict(
        order_id=order_id or first.order_id,
        stage=first.stage,
        outcome=combined_outcome(results),
        results=[result.as_result() for result in results],
        evaluated_at=first.evaluated_at,
    )


def verdicts_store(verdicts: list[ComplianceVerdict]) -> None:
    """Store verdicts, each one row, all in one statement."""
    rows_insert(ComplianceVerdict, verdicts, ids=False)


def evaluate(
    *,
    order: Any,
    stage: str = "submit",
    user: Any = None,
    changes: dict[str, Any] | None = None,
    venue: Any = None,
    dry_run: bool = False,
    covered: Iterable[str] = (),
    deferred: bool = False,
    cache: dict | None = None,
    primed: dict | None = None,
) -> Evaluation:
    """Run all rules on ``order`` (with proposed ``changes`` for an amendment).

    Stores one verdict row with every rule's result in the caller's transaction
    (``evaluation_record``), unless ``dry_run`` (the what-if check), which writes
    nothing at all, or ``deferred``: the caller records it once the order is stored
    (a new order evaluated before its one insert). Warnings of rules in ``covered``
    (an approved override) are recorded as overridden and do not hold the order.

    ``cache``: what the rules read, shared by the evaluations of one transaction (a
    basket's lines, under their accounts' locks); the caller reports each order it
    enters after its evaluation with ``order_added`` so the next one sees it.
    ``primed``: readings the caller made for this evaluation alone in its transaction
    (the reference data's version, read with the account's lock), not shared."""
    changes = changes or {}
    check = Check(
        order=order,
        stage=stage,
        user=user,
        quantity=changes.get("quantity") or order.quantity,
        limit_price=changes.get("limit_price") or order.limit_price,
        venue=venue if venue is not None else (order.venue if order.venue_id else None),
        now=dt.datetime.now(dt.UTC),
        dry_run=dry_run,
        cache=dict(primed or {}) if cache is None else cache,
        shared=cache is not None,
    )
    if stage == "submit" and not check.shared:
        _prefetch(check)
    covered = frozenset(covered)
    results: list[RuleResult] = []
    commits: list[Callable[[str], None]] = []
    for name, rule in sorted(_RULES.items()):
        try:
            verdict = rule(check)
        except Exception:  # a broken rule must block, never wave the order through
            logger.exception("compliance rule %s failed on order %s", name, order.pk)
            verdict = RuleVerdict(Outcome.BLOCK, "rule_error", f"Compliance rule {name} could not be evaluated.")
        results.append(
            RuleResult(
                order_id=order.pk,
                stage=stage,
                rule=name,
                outcome=verdict.outcome,
                code=verdict.code,
                reason=verdict.reason,
                internal=verdict.internal,
                overridden=verdict.outcome == Outcome.WARN and name in covered and not verdict.internal,
                # One time for the whole evaluation: its results are found together.
                evaluated_at=check.now,
            )
        )
        if verdict.commit is not None:
            commits.append(verdict.commit)
    evaluation = Evaluation(
        outcome=combined_outcome(results),
        results=results,
        stage=stage,
        actor=actor_name(user),
        commits=commits,
        cache=check.cache,
        finished_at=dt.datetime.now(dt.UTC),
    )
    if not (dry_run or deferred):
        evaluation_record(evaluation, order=order)
    return evaluation


def evaluation_record(
    evaluation: Evaluation, *, order: Any, events: list | None = None, position: int | None = None
) -> ComplianceVerdict:
    """Store the evaluation of the stored ``order``: its verdict row, the rules'
    commits, and the ``compliance.evaluated`` audit event, recorded now or, with
    ``events`` (the caller's events not stored yet), put there at ``position`` (the
    end by default): the evaluation happened after the steps before it and before
    those after it. A commit audits steps of its own, so the events before the
    evaluation are stored before commits run, keeping the trail in order. Returns
    the verdict as stored."""
    verdict = verdict_build(evaluation.results, order_id=order.pk)
    verdicts_store([verdict])
    if events is not None and position is None:
        position = len(events)
    if evaluation.commits and events:
        audit_events_store(events[:position])
        del events[:position]
        position = 0
    if evaluation.commits:  # they write on their own: what is held for the batch goes first
        rows_batch_send()
    for commit in evaluation.commits:
        commit(evaluation.outcome)
    event = evaluation_event_build(evaluation, order=order)
    if events is None:
        event.save()
    else:
        events.insert(position, event)
    return verdict


def evaluation_event_build(evaluation: Evaluation, *, order: Any):
    """The ``compliance.evaluated`` audit event of an evaluation, not stored."""
    return audit_event_build(
        actor=evaluation.actor,
        action="compliance.evaluated",
        object_type="order",
        object_id=order.pk,
        occurred_at=evaluation.finished_at,
        details={
            "stage": evaluation.stage,
            "outcome": evaluation.outcome,
            # Internal (watch-list) results stay out of the order's trail, which traders
            # read; they are audited with their review item.
            "results": [
                {"rule": r.rule, "outcome": r.outcome, "code": r.code, "reason": r.reason, "overridden": r.overridden}
                for r in evaluation.visible_results
            ],
        },
    )


# For one order's submission, what the rules will read, sent in one round trip before
# they run (``prefetch_register``).
Prefetch = Callable[["Check"], list[tuple[list, Callable[[list[list]], None]]]]
_PREFETCHES: list[Prefetch] = []


def prefetch_register(prefetch: Prefetch) -> None:
    """A reading a rule makes of one order's submission, to be sent with the others
    in one round trip before the rules run: ``prefetch(check)`` returns, for each
    reading the rules will want and the check's cache does not hold, its reads
    (``oms_site.prepared``) and a function that keeps their results in the cache,
    where the rule finds them. Nothing when the rules would not read."""
    _PREFETCHES.append(prefetch)


def _prefetch(check: Check) -> None:
    wanted = [item for prefetch in _PREFETCHES for item in prefetch(check)]
    results = iter(reads_together(*(read for reads, _ in wanted for read in reads)))
    for reads, keep in wanted:
        keep([next(results) for _ in reads])


_ORDER_ADDED: list[Callable[[dict, Any], None]] = []


def order_added_register(listener: Callable[[dict, Any], None]) -> None:
    """Rules that keep readings in a shared cache bring them up to date here."""
    _ORDER_ADDED.append(listener)


def order_added(cache: dict, order: Any) -> None:
    """An order was entered (as its steps left it, stored yet or not) in the
    transaction that shares ``cache``: later evaluations count it."""
    for listener in _ORDER_ADDED:
        listener(cache, order)
