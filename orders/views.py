"""Trader pages: blotter, order detail (amend, cancel, override request), positions,
and the ticket's symbol search (the ticket itself: ``views_ticket``).

Thin, like the API views: shape the form input, call one service or selector, render.
The services raise the same domain errors as for the API, and a page answers with the
same status (400 invalid, 403 not permitted, 404 not yours, 409 not allowed now), with
the message on the page. Live parts are fragments the page's script fetches again
(``*_live`` views), so a fill shows without a reload."""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.cache import get_conditional_response
from django.views.decorators.http import require_GET, require_POST

from compliance import engine as compliance_engine
from oms_site.errors import ApplicationError, InvalidInput, InvalidStateTransition, NotFound
from routing import selectors as routing_selectors
from routing.fix import codec

from . import selectors, services
from .forms import (
    BlotterFilterForm,
    ChildOrderForm,
    OrderAmendForm,
    OverrideRequestForm,
    errors_to_form,
)
from .models import Order, OrderStatus
from .templatetags.oms import price

BLOTTER_PAGE_SIZE = 50
PRICED_TYPES = ("LIMIT", "STOP_LIMIT")


def live_fragment(request, template: str, context_of, *version) -> HttpResponse:
    """A live fragment, polled every second or so: 304 Not Modified when its version
    (plus who asks and for what) is the one the page already has, so an idle page
    costs one small query instead of a render."""
    key = repr((request.user.pk, request.get_full_path(), *version)).encode()
    etag = f'"{hashlib.sha256(key).hexdigest()[:32]}"'
    response = get_conditional_response(request, etag=etag)
    if response is None:
        response = render(request, template, context_of())
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


def _order_for(request, order_id: int) -> Order:
    try:
        return selectors.order_get_for_user(user=request.user, order_id=order_id)
    except NotFound:
        raise Http404("Order not found.") from None


# ----------------------------------------------------------------------------- home
@login_required
def home(request):
    return redirect("orders:blotter")


# -------------------------------------------------------------------------- blotter
# The blotter's columns that sort, in the order shown: (sort key, header, title).
BLOTTER_SORT_COLUMNS = {
    "created": "Entered (UTC, to the millisecond)",
    "account": "",
    "symbol": "",
    "side": "",
    "quantity": "",
    "price": "Limit price",
    "notional": "Quantity × limit price; with no limit (market, stop): × the average fill price, "
    "or the reference price before any fill",
    "status": "",
    "filled": "Filled quantity",
    "trader": "Who works the order: its owner for a desk order, else who entered it",
}


def _blotter_orders(request):
    filter_form = BlotterFilterForm(
        request.GET or None, accounts=selectors.accounts_visible_to(user=request.user), label_suffix=""
    )
    filters = filter_form.filters() if request.GET else {}
    sort = selectors.order_sort_key(request.GET.get("sort"))
    orders = selectors.order_list(user=request.user, filters=filters, sort=sort).select_related("created_by")
    return filter_form, orders, sort


def _blotter_sorts(request, sort: str) -> dict[str, dict[str, str]]:
    """Each sortable column's link (this order reversed, or this column ascending —
    newest first for the time — with the filters kept, from the first page) and its
    arrow when the blotter is sorted by it."""
    columns = {}
    for key, title in BLOTTER_SORT_COLUMNS.items():
        query = request.GET.copy()
        query.pop("page", None)
        if sort.removeprefix("-") == key:
            query["sort"] = key if sort.startswith("-") else f"-{key}"
            arrow, state = ("▼", "descending") if sort.startswith("-") else ("▲", "ascending")
        else:
            query["sort"] = f"-{key}" if key == "created" else key
            arrow, state = "", "none"
        columns[key] = {"href": f"?{query.urlencode()}", "arrow": arrow, "aria": state, "title": title}
    return columns


def _blotter_context(request) -> dict[str, Any]:
    filter_form, orders, sort = _blotter_orders(request)
    page = Paginator(orders, BLOTTER_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    return {
        "filter_form": filter_form,
        "page": page,
        # Children under their parent in the default order; in the order asked for otherwise.
        "orders": selectors.orders_nested(rows) if sort == selectors.ORDER_SORT_DEFAULT else rows,
        "cancellable": selectors.orders_cancellable(user=request.user, orders=rows),
        "totals": selectors.blotter_totals(orders=orders),
        "sort": sort,
        "sorts": _blotter_sorts(request, sort),
        "query": query.urlencode(),
        "live_query": request.GET.urlencode(),
        "here": request.GET.urlencode(),
    }


@login_required
@require_GET
def blotter(request):
    return render(request, "orders/blotter.html", _blotter_context(request))


@login_required
@require_GET
def blotter_live(request):
    version = selectors.blotter_version(orders=_blotter_orders(request)[1])
    return live_fragment(request, "orders/_blotter_live.html", lambda: _blotter_context(request), *version)


# --------------------------------------------------------------------------- ticket
# The ticket itself is views_ticket.order_new; its symbol search is here.
@login_required
@require_GET
def security_search(request):
    # NUL cannot reach PostgreSQL in a string; nothing in the master contains one.
    found = selectors.security_search(query=request.GET.get("q", "").replace("\x00", "")[:32])
    return JsonResponse(
        {
            "results": [
                {
                    "symbol": s.symbol,
                    "name": s.name,
                    "currency": s.currency,
                    "reference_price": price(s.reference_price) or None,
                    "lot_size": s.lot_size,
                }
                for s in found
            ]
        }
    )


# --------------------------------------------------------------------- order detail
PRICE_FIELDS = frozenset({"limit_price", "stop_price", "avg_fill_price", "last_px", "price"})


def _plain(key: str, value: Any) -> str:
    """An audit value as a person reads it: prices trimmed, lists and maps in words."""
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_plain(k, v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(_plain(key, v) for v in value)
    if key in PRICE_FIELDS:
        return price(value) or "—"
    return str(value)


def _field_changes(before: dict | None, after: dict | None) -> list[tuple[str, str, str]]:
    before, after = before or {}, after or {}
    return [
        (key, _plain(key, before.get(key)), _plain(key, value))
        for key, value in after.items()
        if before.get(key) != value
    ]


def _timeline(events) -> list[dict[str, Any]]:
    rows = []
    for event in events:
        details = event.details or {}
        rows.append(
            {
                "event": event,
                "changes": _field_changes(event.before, event.after) if event.before else [],
                "details": [
                    (key, _plain(key, value))
                    for key, value in details.items()
                    if value not in (None, "", [], {}) and key != "results"
                ],
                "results": details.get("results") or [],
            }
        )
    return rows


def _evaluations(results) -> list[dict[str, Any]]:
    """Compliance results grouped by evaluation (one time, one stage): what did not
    pass in full, what passed by name."""
    groups: dict[tuple, dict[str, Any]] = {}
    for result in results:
        group = groups.setdefault(
            (result.evaluated_at, result.stage),
            {"at": result.evaluated_at, "stage": result.stage, "flagged": [], "passed": []},
        )
        (group["passed"] if result.outcome == "pass" else group["flagged"]).append(result)
    for group in groups.values():
        group["outcome"] = compliance_engine.combined_outcome(group["flagged"])
    return list(groups.values())


def _fix_messages(events) -> list[dict[str, Any]]:
    rows = []
    for event in events:
        details = event.details or {}
        msg_type = details.get("msg_type", "")
        rows.append(
            {
                "event": event,
                "direction": "out" if event.action == "fix.sent" else "in",
                "msg_type": msg_type,
                "msg_name": codec.MSG_TYPE_NAMES.get(msg_type, ""),
                "seq": details.get("seq"),
                "text": details.get("message", ""),
            }
        )
    return rows


def _detail_context(request, order: Order, **extra) -> dict[str, Any]:
    actions = selectors.order_actions(user=request.user, order=order)
    events, fix_events = selectors.order_timeline(order=order)
    results = list(selectors.order_compliance_results(order=order))
    latest = max((r.evaluated_at for r in results), default=None)
    context = {
        "order": order,
        "actions": actions,
        "executions": selectors.execution_list(user=request.user, order_id=order.pk).order_by("id"),
        "evaluations": _evaluations(results),
        "latest_results": [r for r in results if r.evaluated_at == latest and r.outcome != "pass"],
        "overrides": selectors.order_override_requests(order=order),
        "timeline": _timeline(events),
        "fix_messages": _fix_messages(fix_events),
        "amend_form": OrderAmendForm(
            initial={"quantity": order.quantity, "limit_price": price(order.limit_price)}, label_suffix=""
        ),
        "override_form": OverrideRequestForm(label_suffix=""),
        **_desk_context(request, order),
        **_block_context(order),
    }
    context.update(extra)
    return context


def _desk_context(request, order: Order) -> dict[str, Any]:
    """A desk order's family on its page: its children (or its parent), and what this
    user may do with it."""
    if not order.desk_order and order.parent_id is None:
        return {}
    actions = selectors.order_desk_actions(user=request.user, order=order)
    return {
        "desk": True,
        "children": list(order.children.select_related("venue").order_by("id")) if order.desk_order else [],
        "placed_quantity": order.placed_quantity_read() if order.desk_order else None,
        "can_accept": actions.can_accept,
        "can_place_child": actions.can_place_child,
        "child_form": ChildOrderForm(label_suffix="", venues=routing_selectors.venues_enabled())
        if actions.can_place_child
        else None,
    }


ALLOC_STATUS_NAMES = {
    codec.ALLOC_STATUS_ACCEPTED: "accepted",
    codec.ALLOC_STATUS_BLOCK_REJECT: "block rejected",
    codec.ALLOC_STATUS_ACCOUNT_REJECT: "account rejected",
    codec.ALLOC_STATUS_RECEIVED: "received",
    codec.ALLOC_STATUS_INCOMPLETE: "incomplete",
    codec.ALLOC_STATUS_REJECTED_BY_INTERMEDIARY: "rejected by intermediary",
}


def _block_context(order: Order) -> dict[str, Any]:
    """A block order's funds, what it executed and has not allocated, and each
    allocation with its lines and the FIX messages about it (35=J out, 35=P in, told
    apart by AllocID: the allocation's own, or that of its cancel)."""
    if not order.block_order:
        return {}
    outbound = [
        {
            "alloc_id": m.cl_ord_id,
            "state": m.get_state_display(),
            "seq": m.msg_seq_num,
            "sent_at": m.sent_at,
            "text": "|".join(f"{tag}={value}" for tag, value in m.fields),
        }
        for m in routing_selectors.outbox_messages_for_order(
            order_id=order.pk, msg_type=codec.MSG_ALLOCATION_INSTRUCTION
        )
    ]
    inbound = [
        {"alloc_id": selectors.ack_alloc_id(event), "at": event.occurred_at, "text": event.details.get("message", "")}
        for event in selectors.order_allocation_acks(order_id=order.pk)
    ]
    allocations, matched = [], set()
    for allocation in selectors.order_allocations(order=order):
        ids = {allocation.alloc_id, allocation.cancel_alloc_id} - {""}
        matched |= ids
        allocations.append(
            {
                "allocation": allocation,
                "lines": list(allocation.lines.all()),
                "ack_name": ALLOC_STATUS_NAMES.get(allocation.ack_status, ""),
                "outbound": [m for m in outbound if m["alloc_id"] in ids],
                "inbound": [m for m in inbound if m["alloc_id"] in ids],
            }
        )
    targets = order.allocation_targets or []
    return {
        "block_view": {
            "targets": targets,
            "accounts": ", ".join(str(t.get("account", "")) for t in targets),
            "by_percent": bool(targets) and "percent" in targets[0],
            "unallocated": services.block_unallocated_quantity(order),
            "allocations": allocations,
            "other_outbound": [m for m in outbound if m["alloc_id"] not in matched],
            "other_inbound": [m for m in inbound if m["alloc_id"] not in matched],
        }
    }


@login_required
@require_GET
def order_detail(request, order_id: int):
    order = _order_for(request, order_id)
    return render(request, "orders/detail.html", _detail_context(request, order))


@login_required
@require_GET
def order_live(request, order_id: int):
    order = _order_for(request, order_id)
    version = selectors.order_version(order=order)
    if order.block_order:
        version += selectors.order_allocations_version(order=order)
    return live_fragment(request, "orders/_detail_live.html", lambda: _detail_context(request, order), *version)


def _refused(request, order_id: int, exc: ApplicationError, **forms_with_errors) -> HttpResponse:
    """The order page again, with what the service said and its status code."""
    if isinstance(exc, NotFound):
        raise Http404(exc.message)
    order = _order_for(request, order_id)
    status = exc.http_status
    context = _detail_context(request, order, action_error=exc.message, **forms_with_errors)
    if isinstance(exc, InvalidStateTransition) and getattr(exc, "compliance_results", None):
        context["refused_results"] = [r for r in exc.compliance_results if not r.internal and r.outcome != "pass"]
    return render(request, "orders/detail.html", context, status=status)


@login_required
@require_POST
def order_cancel(request, order_id: int):
    try:
        order = services.order_cancel(user=request.user, order_id=order_id)
    except ApplicationError as exc:
        return _refused(request, order_id, exc)
    if order.status == OrderStatus.CANCELLED:
        messages.success(request, f"Order #{order.pk} cancelled (it had not reached the venue).")
    else:
        messages.success(request, f"Cancel requested for order #{order.pk}; waiting for the venue.")
    return redirect("orders:detail", order_id=order.pk)


def _form_action(
    request, order_id: int, form, *, form_name: str, invalid: str, perform, done: str, refusal_redirects: bool = False
) -> HttpResponse:
    """A form posted from the order page: shape it, call the service, and either go
    back to the page with ``done`` or show the page again with what was wrong. With
    ``refusal_redirects``, a refusal in the order's state (409) goes back to the order
    page too (post/redirect/get), its reason said once; field errors stay beside the
    fields."""
    if not form.is_valid():
        _order_for(request, order_id)  # 404 before saying anything about the input
        return _refused(request, order_id, InvalidInput(invalid), **{form_name: form})
    try:
        perform(form.cleaned_data)
    except ApplicationError as exc:
        if refusal_redirects and isinstance(exc, InvalidStateTransition):
            messages.error(request, exc.message)
            return redirect("orders:detail", order_id=order_id)
        if isinstance(exc, InvalidInput):
            errors_to_form(form, exc.details)
        return _refused(request, order_id, exc, **{form_name: form})
    if done:
        messages.success(request, done)
    return redirect("orders:detail", order_id=order_id)


@login_required
@require_POST
def order_amend(request, order_id: int):
    return _form_action(
        request,
        order_id,
        OrderAmendForm(request.POST, label_suffix=""),
        form_name="amend_form",
        invalid="Invalid amendment.",
        perform=lambda data: services.order_amend(
            user=request.user, order_id=order_id, quantity=data["quantity"], limit_price=data["limit_price"]
        ),
        done=f"Amendment requested for order #{order_id}; the terms change when the venue confirms.",
        refusal_redirects=True,
    )


@login_required
@require_POST
def order_override(request, order_id: int):
    return _form_action(
        request,
        order_id,
        OverrideRequestForm(request.POST, label_suffix=""),
        form_name="override_form",
        invalid="Invalid override request.",
        perform=lambda data: services.order_override_request(
            user=request.user, order_id=order_id, justification=data["justification"]
        ),
        done="Override requested: compliance will approve or deny it.",
    )


# ------------------------------------------------------------------------ positions
def _positions_context(request) -> dict[str, Any]:
    accounts = list(selectors.accounts_visible_to(user=request.user))
    account = request.GET.get("account") or None
    if account and account not in {a.code for a in accounts}:
        account = None
    return {
        "accounts": accounts,
        "account": account,
        "groups": selectors.position_totals(selectors.position_rows(user=request.user, account=account)),
        "query": f"account={account}" if account else "",
    }


@login_required
@require_GET
def positions(request):
    return render(request, "orders/positions.html", _positions_context(request))


@login_required
@require_GET
def positions_live(request):
    return render(request, "orders/_positions_rows.html", _positions_context(request))


# ----------------------------------------------------------------------- the desk
def _incoming_context(request) -> dict[str, Any]:
    orders = selectors.order_list(user=request.user, filters={"incoming": True}).select_related("created_by")
    return {"orders": orders[:200]}


@login_required
@require_GET
def incoming(request):
    """The desk's queue: portfolio managers' orders no trader has accepted yet, in the
    accounts this trader trades, newest first."""
    return render(request, "orders/incoming.html", _incoming_context(request))


@login_required
@require_POST
def order_accept(request, order_id: int):
    try:
        order = services.order_accept(user=request.user, order_id=order_id)
    except ApplicationError as exc:
        return _refused(request, order_id, exc)
    messages.success(request, f"Order #{order.pk} is yours to work: place child orders below.")
    return redirect("orders:detail", order_id=order.pk)


@login_required
@require_POST
def order_child_new(request, order_id: int):
    form = ChildOrderForm(request.POST, label_suffix="", venues=routing_selectors.venues_enabled())

    def place(data: dict[str, Any]) -> None:
        child = services.order_child_place(
            user=request.user,
            order_id=order_id,
            quantity=data["quantity"],
            order_type=data["order_type"],
            limit_price=data["limit_price"] if data["order_type"] in PRICED_TYPES else None,
            time_in_force=data["time_in_force"],
            venue=data["venue"] or None,
        )
        messages.success(request, f"Child order #{child.pk} placed: {child.status.replace('_', ' ')}.")

    return _form_action(
        request,
        order_id,
        form,
        form_name="child_form",
        invalid="The child order has errors.",
        perform=place,
        done="",
    )
