"""The order ticket: one order entered by hand. Every field error in one round (the
form's own and the service's checks of the valid fields together), "Submit order"
(to the blotter), "Submit and new" (a fresh ticket on the same account) and "Check"
(compliance's what-if, on the ticket, nothing written). The notional preview is the
page's script (static/orders/ticket.js), from the symbol search in ``views``."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from oms_site.errors import InvalidInput, NotPermitted
from routing import selectors as routing_selectors

from . import selectors, services
from .forms import OrderTicketForm, errors_to_form, new_client_order_id
from .models import OrderStatus, Origin
from .services.submit import submission_validate


def _ticket_form(request, data=None) -> OrderTicketForm:
    accounts = list(selectors.accounts_tradable_by(user=request.user))
    initial = {"client_order_id": new_client_order_id()}
    for field in ("account", "symbol", "side"):
        if request.GET.get(field):
            initial[field] = request.GET[field]
    form = OrderTicketForm(
        data, accounts=accounts, venues=routing_selectors.venues_enabled(), initial=initial, label_suffix=""
    )
    return form


def _ticket_errors_all(request, form: OrderTicketForm) -> None:
    """One round of errors: beside the form's own (a quantity that is not a number),
    the service's checks of the fields that are valid (a LIMIT order without a limit
    price, an unknown symbol, a GTD order without an expiry). Validation only: nothing
    is written."""
    arguments = form.submission()
    try:
        submission_validate(
            user=request.user, account_code=arguments.pop("account"), venue_code=arguments.pop("venue"), **arguments
        )
    except InvalidInput as exc:
        form.service_errors_add(exc.details)


def _ticket_check(request, form: OrderTicketForm) -> HttpResponse:
    """The what-if on the ticket: compliance's verdict on the order as filled in, rule
    by rule (watch-list results left out, as everywhere); nothing is written and the
    ticket keeps its fields and its id."""
    try:
        evaluation = services.order_check(user=request.user, **form.submission())
    except InvalidInput as exc:
        errors_to_form(form, form.allocation_errors_take(exc.details))
        return render(request, "orders/ticket.html", {"form": form}, status=400)
    except NotPermitted as exc:
        form.add_error(None, exc.message)
        return render(request, "orders/ticket.html", {"form": form}, status=403)
    results = evaluation.visible_results
    verdict = {
        "outcome": evaluation.outcome,
        "flagged": [r for r in results if r.outcome != "pass"],
        "passed": [r for r in results if r.outcome == "pass"],
    }
    return render(request, "orders/ticket.html", {"form": form, "verdict": verdict})


def _ticket_next(account: str) -> HttpResponse:
    """The ticket after "Submit and new": a fresh one (its own id, nothing filled in,
    no funds in the grid) on the same account."""
    return redirect(f"{reverse('orders:new')}?{urlencode({'account': account})}" if account else "orders:new")


@login_required
def order_new(request):
    form = _ticket_form(request, request.POST if request.method == "POST" else None)
    if not form.fields["account"].choices:
        return render(request, "orders/ticket.html", {"form": None}, status=403)
    if request.method != "POST":
        return render(request, "orders/ticket.html", {"form": form})
    # "Submit order" (the default), "Submit and new" or "Check" (the what-if).
    action = request.POST.get("action", "submit")
    if form.is_valid() and action == "check":
        return _ticket_check(request, form)
    if form.is_valid():
        try:
            order, created = services.order_submit(user=request.user, origin=Origin.WEB, **form.submission())
        except InvalidInput as exc:
            errors_to_form(form, form.allocation_errors_take(exc.details))
        except NotPermitted as exc:
            form.add_error(None, exc.message)
            return render(request, "orders/ticket.html", {"form": form}, status=403)
        else:
            if not created:
                messages.info(request, f"This ticket was already submitted: order #{order.pk}.")
                return redirect("orders:detail", order_id=order.pk)
            if order.block_order:
                # A block's page shows its funds, and later how its fills are allocated.
                waiting = order.desk_order and order.owner_id is None and order.status == OrderStatus.NEW
                messages.success(
                    request,
                    f"Block order #{order.pk} submitted for {len(order.allocation_targets)} funds: {order.side} "
                    f"{order.quantity:,} {order.security.symbol} "
                    f"({'waiting for a trader' if waiting else order.get_status_display().lower()}).",
                )
                if action == "submit_new":
                    return _ticket_next(form.cleaned_data["account"])
                return redirect("orders:detail", order_id=order.pk)
            if order.status in (OrderStatus.HELD, OrderStatus.REJECTED):
                # Whichever button: the trader needs to see why (and may ask for an override).
                return redirect("orders:detail", order_id=order.pk)
            messages.success(
                request,
                f"Order #{order.pk} submitted: {order.side} {order.quantity:,} {order.security.symbol} "
                f"({order.get_status_display().lower()}).",
            )
            if action == "submit_new":
                return _ticket_next(form.cleaned_data["account"])
            return redirect("orders:blotter")
    else:
        _ticket_errors_all(request, form)
    return render(request, "orders/ticket.html", {"form": form}, status=400)
