"""Pre-trade compliance engine.

``evaluate(order=...)`` runs every registered rule, persists each verdict (pass, warn or
block) and returns the combined outcome: any block blocks, else any warn warns. A rule
that raises blocks the order (fail closed, SEC 15c3-5(c)(2)(i)). The rules themselves
are added by the compliance work (restricted list, limits, fat finger, ...); each is a
callable taking the order and the stage and returning a ``RuleVerdict``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .models import ComplianceResult, Outcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleVerdict:
    outcome: str
    code: str
    reason: str = ""
    internal: bool = False


@dataclass
class Evaluation:
    outcome: str
    results: list[ComplianceResult] = field(default_factory=list)

    @property
    def visible_reasons(self) -> list[str]:
        return [r.reason for r in self.results if r.outcome != Outcome.PASS and not r.internal]


Rule = Callable[..., RuleVerdict]
_RULES: dict[str, Rule] = {}


def rule_register(name: str, rule: Rule) -> None:
    _RULES[name] = rule


def rule_unregister(name: str) -> None:
    _RULES.pop(name, None)


def registered_rules() -> dict[str, Rule]:
    return dict(_RULES)


def evaluate(*, order: Any, stage: str = "submit", changes: dict[str, Any] | None = None) -> Evaluation:
    """Run all rules on ``order`` (with proposed ``changes`` for an amendment) and
    persist one result per rule in the caller's transaction."""
    results: list[ComplianceResult] = []
    for name, rule in sorted(_RULES.items()):
        try:
            verdict = rule(order=order, stage=stage, changes=changes or {})
        except Exception:  # a broken rule must block, never wave the order through
            logger.exception("compliance rule %s failed on order %s", name, order.pk)
            verdict = RuleVerdict(Outcome.BLOCK, "rule_error", f"Compliance rule {name} could not be evaluated.")
        results.append(
            ComplianceResult(
                order=order,
                stage=stage,
                rule=name,
                outcome=verdict.outcome,
                code=verdict.code,
                reason=verdict.reason,
                internal=verdict.internal,
            )
        )
    ComplianceResult.objects.bulk_create(results)
    outcomes = {r.outcome for r in results if not r.internal}
    if Outcome.BLOCK in outcomes:
        combined = Outcome.BLOCK
    elif Outcome.WARN in outcomes:
        combined = Outcome.WARN
    else:
        combined = Outcome.PASS
    return Evaluation(outcome=combined, results=results)
