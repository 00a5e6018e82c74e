"""Basket pages: paste or upload a CSV of orders, see every line checked (its field
errors, or the what-if compliance verdict), fix and check again, then submit the
whole basket in one request (``basket_submit``); the basket's page follows its
orders live, with its totals, and cancels what still works (``basket_cancel``).

Thin like the other pages: the CSV is read by ``basket_csv``, every check and write
is a service's, and a refusal is shown with the service's status and message."""

from __future__ import annotations

from collections import Counter
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from oms_site.errors import ApplicationError, InvalidInput, NotFound, NotPermitted

from . import selectors, services
from .basket_csv import ParsedBasket, basket_csv_parse
from .basket_forms import BasketUploadForm, basket_text_digest, new_client_basket_id
from .models import CANCELLABLE_STATUSES, WORKING_STATUSES, Basket, Order, OrderStatus, Origin
from .views import live_fragment

BASKETS_PAGE_SIZE = 50
NEW_TEMPLATE = "orders/basket_new.html"
DETAIL_TEMPLATE = "orders/basket_detail.html"


# ------------------------------------------------------------------- a new basket
def _errors_listed(errors: dict[str, Any]) -> list[tuple[str, str]]:
    """Field errors as (field in words, message), the line's own first."""
    listed = []
    for name, found in errors.items():
        label = "" if name == "non_field_errors" else name.replace("_", " ")
        for message in found if isinstance(found, list) else [found]:
            listed.append((label, str(message)))
    return listed


def _lines_checked(user, parsed: ParsedBasket, basket_id: str) -> list[dict[str, Any]]:
    """Each readable line's what-if (``basket_check``): its verdict and reasons, or its
    field errors, with the client order id it will be submitted with."""
    readable = [line for line in parsed.lines if line.valid]
    answers = services.basket_check(user=user, orders=_order_lines(readable, parsed, basket_id))
    answer_of = {id(line): answer for line, answer in zip(readable, answers, strict=True)}
    rows = []
    for line in parsed.lines:
        row: dict[str, Any] = {"line": line, "outcome": "invalid", "reasons": [], "errors": []}
        answer = answer_of.get(id(line))
        if isinstance(answer, dict):
            line.errors = dict(answer)
        elif answer is not None:
            row["outcome"] = answer.outcome
            row["reasons"] = [
                f"{result.rule.replace('_', ' ')}: {result.reason}"
                for result in answer.visible_results
                if result.outcome != "pass" and not result.overridden
            ]
        row["errors"] = _errors_listed(line.errors)
        rows.append(row)
    return rows


def _order_lines(lines, parsed: ParsedBasket, basket_id: str) -> list[dict[str, Any]]:
    """The basket service's order lines: each with the client order id its number in
    the basket gives it."""
    number = {id(line): n for n, line in enumerate(parsed.lines, 1)}
    return [{"client_order_id": f"{basket_id}-{number[id(line)]}", **line.order} for line in lines]


def _check_page(request, form: BasketUploadForm, parsed: ParsedBasket, *, notice: str = "", status=None):
    """The form again with the text it checked, every line's answer beside it, and
    "Submit basket" when every line is valid."""
    text = form.cleaned_data["csv_text"]
    rows = _lines_checked(request.user, parsed, form.cleaned_data["client_basket_id"])
    valid = parsed.valid  # after the what-if, which finds field errors too
    outcomes = Counter(row["outcome"] for row in rows)
    context = {
        "form": form.with_text(text, checked=basket_text_digest(text) if valid else ""),
        "checked": True,
        "rows": rows,
        "parse_errors": parsed.errors,
        "outcomes": {key: outcomes.get(key, 0) for key in ("pass", "warn", "block", "invalid")},
        "can_submit": valid and not form.errors,
        "notice": notice,
    }
    return render(request, NEW_TEMPLATE, context, status=status or (200 if valid else 400))


def _basket_submit(request, form: BasketUploadForm, parsed: ParsedBasket):
    basket_id = form.cleaned_data["client_basket_id"]
    orders = _order_lines(parsed.lines, parsed, basket_id)
    try:
        basket, created = services.basket_submit(
            user=request.user,
            client_basket_id=basket_id,
            name=form.cleaned_data["name"],
            orders=orders,
            origin=Origin.WEB,
        )
    except InvalidInput as exc:
        details = dict(exc.details or {})
        line_errors = details.pop("orders", {})
        if isinstance(line_errors, dict):
            for index, errors in line_errors.items():
                if str(index).isdigit() and int(index) < len(parsed.lines):
                    parsed.lines[int(index)].errors = dict(errors)
        else:
            form.add_error(None, " ".join(map(str, line_errors)))
        for name, found in details.items():
            form.add_error(name if name in form.fields else None, " ".join(map(str, found)))
        return _check_page(request, form, parsed, notice=f"Not submitted: {exc.message}", status=400)
    except NotPermitted as exc:
        form.add_error(None, exc.message)
        return _check_page(request, form, parsed, status=403)
    if not created:
        messages.info(request, f"Basket {basket.client_basket_id} was already submitted: basket #{basket.pk}.")
    else:
        messages.success(
            request,
            f"Basket #{basket.pk} submitted: {basket.lines_total:,} lines, {basket.lines_routed:,} routed, "
            f"{basket.lines_held:,} held, {basket.lines_rejected:,} rejected.",
        )
    return redirect("orders:basket", basket_id=basket.pk)


@login_required
def basket_new(request):
    if not selectors.accounts_tradable_by(user=request.user).exists():
        return render(request, NEW_TEMPLATE, {"form": None}, status=403)
    if request.method != "POST":
        form = BasketUploadForm(initial={"client_basket_id": new_client_basket_id()}, label_suffix="")
        return render(request, NEW_TEMPLATE, {"form": form})
    form = BasketUploadForm(request.POST, request.FILES, label_suffix="")
    if not form.is_valid():
        return render(request, NEW_TEMPLATE, {"form": form}, status=400)
    text = form.cleaned_data["csv_text"]
    parsed = basket_csv_parse(text)
    if request.POST.get("action") != "submit":
        return _check_page(request, form, parsed)
    if form.cleaned_data["checked"] != basket_text_digest(text):
        return _check_page(
            request,
            form,
            parsed,
            notice="Not submitted: the orders changed since they were checked. Here they are checked again.",
            status=400 if not parsed.valid else 409,
        )
    if not parsed.valid:
        return _check_page(request, form, parsed, notice="Not submitted: fix the lines below.")
    return _basket_submit(request, form, parsed)


# -------------------------------------------------------------------- its page
def basket_totals(orders: list[Order], basket: Basket) -> dict[str, Any]:
    """What the basket's page sums up: its lines, what compliance did with them at
    submission, where they are now, and how much of it has filled."""
    statuses = Counter(order.status for order in orders)
    quantity = sum(order.quantity for order in orders)
    filled = sum(order.filled_quantity for order in orders)
    notional = sum(
        (order.filled_quantity * order.avg_fill_price for order in orders if order.avg_fill_price is not None),
        Decimal(0),
    )
    # Rounded down: 100.0% only once every share has filled.
    done = (Decimal(filled) * 100 / quantity).quantize(Decimal("0.1"), ROUND_DOWN) if quantity else Decimal("0.0")
    return {
        "lines": len(orders),
        "routed": basket.lines_routed,
        "held": basket.lines_held,
        "rejected": basket.lines_rejected,
        "working": sum(statuses[status] for status in WORKING_STATUSES),
        "cancellable": sum(statuses[status] for status in CANCELLABLE_STATUSES),
        "filled": statuses[OrderStatus.FILLED],
        "cancelled": statuses[OrderStatus.CANCELLED],
        "ended_otherwise": statuses[OrderStatus.EXPIRED] + statuses[OrderStatus.DONE_FOR_DAY],
        "rejected_now": statuses[OrderStatus.REJECTED],
        "quantity": quantity,
        "filled_quantity": filled,
        "filled_notional": notional,
        "percent_done": done,
    }


def _basket_for(request, basket_id: int) -> Basket:
    try:
        return selectors.basket_get_for_user(user=request.user, basket_id=basket_id)
    except NotFound:
        raise Http404("Basket not found.") from None


def _basket_orders(request, basket: Basket):
    # The page shows the orders' own fields: none of the prefetches of their details.
    return selectors.basket_orders(user=request.user, basket=basket).prefetch_related(None)


def _basket_context(request, basket: Basket, **extra) -> dict[str, Any]:
    orders = list(_basket_orders(request, basket))
    totals = basket_totals(orders, basket)
    can_cancel = (
        totals["cancellable"] > 0
        and not selectors.user_is_portfolio_manager(request.user)
        and selectors.accounts_tradable_by(user=request.user, include_inactive=True)
        .filter(orders__basket=basket)
        .exists()
    )
    return {"basket": basket, "orders": orders, "totals": totals, "can_cancel": can_cancel, **extra}


@login_required
@require_GET
def basket_detail(request, basket_id: int):
    basket = _basket_for(request, basket_id)
    return render(request, DETAIL_TEMPLATE, _basket_context(request, basket))


@login_required
@require_GET
def basket_live(request, basket_id: int):
    basket = _basket_for(request, basket_id)
    version = selectors.orders_version(orders=_basket_orders(request, basket))
    return live_fragment(
        request, "orders/_basket_live.html", lambda: _basket_context(request, basket), basket.pk, *version
    )


@login_required
@require_POST
def basket_cancel(request, basket_id: int):
    try:
        result = services.basket_cancel(user=request.user, basket_id=basket_id)
    except NotFound:
        raise Http404("Basket not found.") from None
    except ApplicationError as exc:
        basket = _basket_for(request, basket_id)
        context = _basket_context(request, basket, action_error=exc.message)
        return render(request, DETAIL_TEMPLATE, context, status=exc.http_status)
    if not result.cancelled and not result.refused:
        messages.info(request, f"Basket #{basket_id}: no working orders, nothing to cancel.")
        return redirect("orders:basket", basket_id=basket_id)
    done = f"Basket #{basket_id}: {len(result.cancelled):,} working orders cancelled or sent a cancel request"
    if result.refused:
        refusals = "; ".join(f"#{r['id']}: {r['reason']}" for r in result.refused)
        messages.warning(request, f"{done}; {len(result.refused):,} refused ({refusals}).")
    else:
        messages.success(request, f"{done}.")
    return redirect("orders:basket", basket_id=basket_id)


@login_required
@require_GET
def basket_list(request):
    page = Paginator(selectors.basket_list(user=request.user).select_related("created_by"), BASKETS_PAGE_SIZE)
    return render(request, "orders/baskets.html", {"page": page.get_page(request.GET.get("page"))})
