"""The blotter's "Cancel selected": the orders ticked on the blotter, confirmed, then
each cancelled through ``order_cancel`` on its own (each audited by the service; one
refused does not stop the others), with a message per order.

The blotter's script asks for the confirmation in a dialog and says so
(``confirmed=1``); without it, this view shows the selected orders on a page of their
own to confirm there."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from oms_site.errors import ApplicationError, NotFound

from . import selectors, services
from .models import OrderStatus

# More than a blotter page shows (50): the selection is of the rows on a page.
MAX_SELECTED = 200
MAX_ID_DIGITS = 18  # a bigint's id; a longer one is no order's


def _selected(values: list[str]) -> tuple[list[int], list[str]]:
    """The order ids posted, in the order ticked, without repeats; and what was posted
    that is not an order id at all."""
    ids: list[int] = []
    odd: list[str] = []
    for value in values:
        value = value.strip()
        if value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS:
            if int(value) not in ids:
                ids.append(int(value))
        elif value not in odd:
            odd.append(value[:40])
    return ids, odd


def _blotter_url(query: str) -> str:
    """Back to the blotter as it was (filters, sort, page): only a query string is
    taken from the form, re-encoded, never a location."""
    kept = QueryDict(query[:2000]).urlencode()
    return reverse("orders:blotter") + (f"?{kept}" if kept else "")


def _refused_page(request, message: str, back: str) -> HttpResponse:
    context = {"error": message, "orders": [], "missing": [], "back": back}
    return render(request, "orders/blotter_cancel.html", context, status=400)


@login_required
@require_POST
def blotter_cancel(request):
    back = _blotter_url(request.POST.get("next", ""))
    ids, odd = _selected(request.POST.getlist("order"))
    if not ids and not odd:
        return _refused_page(request, "No orders were selected: tick the orders to cancel on the blotter.", back)
    if len(ids) + len(odd) > MAX_SELECTED:
        return _refused_page(request, f"At most {MAX_SELECTED} orders can be cancelled at once.", back)

    if request.POST.get("confirmed") != "1":
        found = {
            order.pk: order
            for order in selectors.order_list(user=request.user, filters={"ids": ids}).select_related("created_by")
        }
        orders = [found[order_id] for order_id in ids if order_id in found]
        context = {
            "orders": orders,
            "cancellable": selectors.orders_cancellable(user=request.user, orders=orders),
            "missing": [f"#{order_id}" for order_id in ids if order_id not in found] + odd,
            "back": back,
            "next": request.POST.get("next", "")[:2000],
        }
        return render(request, "orders/blotter_cancel.html", context)

    for order_id in ids:
        try:
            order = services.order_cancel(user=request.user, order_id=order_id)
        except NotFound:
            messages.error(request, f"Order #{order_id} not found.")
        except ApplicationError as exc:
            messages.error(request, f"Order #{order_id} not cancelled: {exc.message}")
        else:
            if order.status == OrderStatus.CANCELLED:
                messages.success(request, f"Order #{order_id} cancelled (it had not reached the venue).")
            else:
                messages.success(request, f"Cancel requested for order #{order_id}; waiting for the venue.")
    for value in odd:
        messages.error(request, f"Order {value!r} not found.")
    return redirect(back)
