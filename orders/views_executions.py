"""The fills blotter: every execution of the accounts the user may see, newest first,
filterable by account, symbol, order and date, with busts and corrections shown as
such and the fills they took out of effect marked.

Thin like the other trader pages: the filter form shapes the query string,
``selectors.execution_list`` reads, the templates render; the live part is polled
like the order blotter's (304 until an execution arrives)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Max
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import selectors
from .models import Execution
from .views import live_fragment

EXECUTIONS_PAGE_SIZE = 100
ORDER_ID_MAX = 2**63 - 1  # a bigint primary key
SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-/]{0,31}$")

# ExecType (150) in words; a trade's OrdStatus (39) tells a partial fill from a fill.
EXEC_TYPE_WORDS = {
    "F": "Fill",
    "1": "Partial fill",
    "2": "Fill",
    "G": "Correction",
    "H": "Bust",
    "4": "Cancelled",
    "8": "Rejected",
    "0": "New",
    "5": "Replaced",
    "3": "Done for day",
}
TRADE_TYPES = ("F", "1", "2")


class ExecutionFilterForm(forms.Form):
    account = forms.ChoiceField(label="Account", required=False)
    symbol = forms.CharField(label="Symbol", required=False, max_length=32)
    order = forms.IntegerField(
        label="Order",
        required=False,
        min_value=1,
        max_value=ORDER_ID_MAX,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "size": 8}),
        error_messages={"invalid": "Enter an order number, such as 42."},
    )
    created_on = forms.DateField(label="Date", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, accounts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = [("", "All accounts")] + [(a.code, a.code) for a in accounts]

    def clean_symbol(self) -> str:
        symbol = self.cleaned_data["symbol"].strip()
        if symbol and not SYMBOL.match(symbol):
            raise forms.ValidationError("Enter a symbol such as AAPL.")
        return symbol.upper()

    def filters(self) -> dict[str, Any]:
        """The filters that are valid (a bad one is shown with its error, not applied)."""
        self.is_valid()
        return {key: value for key, value in self.cleaned_data.items() if value not in (None, "")}


def _received(at: dt.datetime) -> str:
    """Received time in UTC to the millisecond: 2026-03-02 14:23:05.123."""
    at = at.astimezone(dt.UTC)
    return f"{at:%Y-%m-%d %H:%M:%S}.{at.microsecond // 1000:03d}"


def _kind(execution: Execution) -> str:
    if execution.exec_type == "F" and execution.ord_status == "1":
        return "Partial fill"
    return EXEC_TYPE_WORDS.get(execution.exec_type, f"ExecType {execution.exec_type}")


def _account_label(order) -> str:
    if order is None:
        return ""
    if order.block_order:
        return "Block ({})".format(", ".join(str(t.get("account", "")) for t in order.allocation_targets or []))
    return order.account.code


def _reversed_by(execution: Execution) -> str:
    """For a trade no longer in effect: "busted" or "corrected" (by which report), or
    "not applied" when the OMS recorded it without applying it."""
    if execution.exec_type not in TRADE_TYPES + ("G",) or execution.in_effect:
        return ""
    adjustments = list(execution.adjustments.all())
    if any(a.exec_type == "H" for a in adjustments):
        return "busted"
    if any(a.exec_type == "G" for a in adjustments):
        return "corrected"
    return "not applied"


def _row(execution: Execution) -> dict[str, Any]:
    notional = None
    if execution.last_px is not None and execution.last_qty:
        notional = Decimal(execution.last_qty) * execution.last_px
    return {
        "e": execution,
        "received": _received(execution.received_at),
        "kind": _kind(execution),
        "adjustment": execution.exec_type in ("G", "H"),
        "account": _account_label(execution.order),
        "notional": notional,
        "reversed": _reversed_by(execution),
    }


def _executions(request):
    filter_form = ExecutionFilterForm(
        request.GET or None, accounts=selectors.accounts_visible_to(user=request.user), label_suffix=""
    )
    filters = filter_form.filters() if request.GET else {}
    return filter_form, selectors.execution_list(user=request.user, filters=filters)


def _executions_context(request) -> dict[str, Any]:
    filter_form, executions = _executions(request)
    page = Paginator(executions.prefetch_related("adjustments"), EXECUTIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return {
        "filter_form": filter_form,
        "page": page,
        "rows": [_row(e) for e in page.object_list],
        "query": query.urlencode(),
        "live_query": request.GET.urlencode(),
    }


@login_required
@require_GET
def executions(request):
    return render(request, "orders/executions.html", _executions_context(request))


@login_required
@require_GET
def executions_live(request):
    # A bust or correction is a new report (a new id) that also takes an older fill
    # out of effect: the newest id and the count cover both.
    version = _executions(request)[1].aggregate(last=Max("id"), count=Count("id"))
    return live_fragment(
        request,
        "orders/_executions_rows.html",
        lambda: _executions_context(request),
        version["last"],
        version["count"],
    )
