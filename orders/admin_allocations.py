"""The middle-office allocation queue: every block order's allocations, newest first.

Rows are read-only here: every change goes through ``orders.services`` (audited with
before, after and who), from the allocation's page: change the funds' quantities
(with a reason), confirm (books the positions, sends the broker the 35=J), cancel and
propose afresh (with a reason). Each step has a page of its own (the shared
``admin/oms_form_page.html``) and needs ``orders.confirm_allocation``. The page also
shows the allocation's FIX messages: the instructions queued for the broker and the
broker's acks (35=P) recorded on the block's audit trail."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from audit.admin_base import ReadOnlyAdmin, application_error_text
from audit.models import AuditEvent
from oms_site.errors import ApplicationError, InvalidInput, NotFound, NotPermitted
from routing import selectors as routing_selectors
from routing.fix import codec
from routing.models import OutboundMessage

from . import selectors as order_selectors
from . import services
from .models import Allocation
from .services.allocations import PERMISSION

ALLOCATION_INSTRUCTION = codec.MSG_ALLOCATION_INSTRUCTION
FORM_PAGE = "admin/oms_form_page.html"


def utc_text(moment: dt.datetime | None) -> str:
    """A time as the admin shows every time (oms_site/formats: 24-hour UTC)."""
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT") if moment else "-"


def lines_summary(allocation: Allocation) -> str:
    """ "ACC-1 500 / ACC-2 500": the funds and their quantities, in line order."""
    return " / ".join(f"{line.account.code} {line.quantity}" for line in allocation.lines.all())


def allocation_ids(allocation: Allocation) -> set[str]:
    """The AllocIDs of an allocation's instructions: its own and, once cancelled after
    confirmation, its cancel's."""
    return {allocation.alloc_id, allocation.cancel_alloc_id} - {""}


def allocation_instructions(allocation: Allocation) -> list[OutboundMessage]:
    """The AllocationInstructions (35=J) queued for this allocation."""
    ids = allocation_ids(allocation)
    messages = routing_selectors.outbox_messages_for_order(
        order_id=allocation.order_id, msg_type=ALLOCATION_INSTRUCTION
    )
    return [m for m in messages if m.cl_ord_id in ids]


def allocation_acks(allocation: Allocation) -> list[AuditEvent]:
    """The broker's AllocationInstructionAcks (35=P) naming this allocation's AllocIDs,
    as received on the block's audit trail."""
    return order_selectors.order_allocation_acks(order_id=allocation.order_id, alloc_ids=allocation_ids(allocation))


# --------------------------------------------------------------------------- forms
class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why: recorded on the block's audit trail with your name.",
    )


class ConfirmForm(forms.Form):
    """Nothing to fill in: the page says what confirming does and asks to go ahead."""


class LinesForm(ReasonForm):
    """One whole-number quantity per fund of the allocation, then the reason."""

    def __init__(self, *args, allocation: Allocation, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines = list(allocation.lines.all())
        quantities = {}
        for line in self.lines:
            quantities[self.field_name(line)] = forms.IntegerField(
                label=line.account.code,
                min_value=0,
                initial=line.quantity,
                help_text=f"proposed {line.proposed_quantity}",
            )
        # The funds first, the reason last.
        self.fields = {**quantities, "reason": self.fields["reason"]}

    @staticmethod
    def field_name(line) -> str:
        return f"line_{line.line}"

    def lines_wanted(self) -> list[dict]:
        return [
            {"account": line.account.code, "quantity": self.cleaned_data[self.field_name(line)]} for line in self.lines
        ]

    def field_for(self, key: str) -> str | None:
        """The form field an error of the service names: "reason", or "lines[i]..."
        (the i-th line as sent, which is the i-th field); None for the form."""
        if key in self.fields:
            return key
        if key.startswith("lines[") and "]" in key:
            index = key[len("lines[") : key.index("]")]
            if index.isdigit() and int(index) < len(self.lines):
                return self.field_name(self.lines[int(index)])
        return None


def form_errors_add(form: forms.Form, exc: ApplicationError) -> None:
    """A refusal of the service on the page: InvalidInput's field errors on their
    fields (the rest, and any other refusal, above the form)."""
    details = exc.details if isinstance(exc, InvalidInput) and isinstance(exc.details, dict) else {}
    field_for = getattr(form, "field_for", lambda key: key if key in form.fields else None)
    for key, value in details.items():
        field = field_for(key)
        for text in value if isinstance(value, list | tuple) else [value]:
            form.add_error(field, str(text) if field or key in ("lines", "non_field_errors") else f"{key}: {text}")
    if not details:
        form.add_error(None, application_error_text(exc))


# --------------------------------------------------------------------------- admin
@admin.register(Allocation)
class AllocationAdmin(ReadOnlyAdmin):
    """The allocation queue. Nothing is added, edited or deleted here: the steps of
    middle office are the links on an allocation's page, each through its service."""

    list_display = [
        "alloc_id",
        "block_order",
        "symbol",
        "side",
        "venue",
        "quantity",
        "avg_price",
        "status",
        "fund_lines",
        "confirmed_by",
        "ack_status",
        "created_at",
    ]
    list_filter = ["status", "venue"]
    search_fields = ["alloc_id", "=order__id"]
    ordering = ["-created_at", "-id"]
    readonly_fields = [
        "alloc_id",
        "block_order",
        "symbol",
        "side",
        "venue",
        "status",
        "quantity",
        "avg_price",
        "trade_date",
        "replaces_link",
        "created_at",
        "updated_at",
        "confirmed_by",
        "confirmed_at",
        "cancel_alloc_id",
        "ack_status",
        "ack_text",
        "acked_at",
        "lines_table",
        "middle_office",
        "instructions",
        "acks",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "alloc_id",
                    "block_order",
                    ("symbol", "side"),
                    "venue",
                    "status",
                    ("quantity", "avg_price"),
                    "trade_date",
                    "replaces_link",
                    ("created_at", "updated_at"),
                ]
            },
        ),
        ("Funds", {"fields": ["lines_table"]}),
        (
            "Confirmation and the broker's ack",
            {"fields": [("confirmed_by", "confirmed_at"), "cancel_alloc_id", ("ack_status", "acked_at"), "ack_text"]},
        ),
        ("FIX messages", {"fields": ["instructions", "acks"]}),
    ]
    ACTIONS_FIELDSET = ("Middle office", {"fields": ["middle_office"]})

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("order__security", "venue", "confirmed_by", "replaces")
            .prefetch_related("lines__account")
        )

    def get_fieldsets(self, request, obj=None):
        if obj is not None and self.has_confirm_permission(request):
            return [self.fieldsets[0], self.fieldsets[1], self.ACTIONS_FIELDSET, *self.fieldsets[2:]]
        return self.fieldsets

    def has_confirm_permission(self, request) -> bool:
        return request.user.has_perm(PERMISSION)

    # ---------------------------------------------------------------- columns
    @admin.display(description="block order", ordering="order_id")
    def block_order(self, obj):
        return format_html(
            '<a href="{}">#{}</a>', reverse("admin:orders_order_change", args=[obj.order_id]), obj.order_id
        )

    @admin.display(description="symbol", ordering="order__security__symbol")
    def symbol(self, obj):
        return obj.order.security.symbol

    @admin.display(description="side", ordering="order__side")
    def side(self, obj):
        return obj.order.side

    @admin.display(description="lines")
    def fund_lines(self, obj):
        return format_html('<span class="nowrap">{}</span>', lines_summary(obj))

    @admin.display(description="replaces")
    def replaces_link(self, obj):
        if obj.replaces is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:orders_allocation_change", args=[obj.replaces_id]),
            obj.replaces.alloc_id,
        )

    # ------------------------------------------------------------- the page
    @admin.display(description="lines")
    def lines_table(self, obj):
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td class="account">{}</td><td>{}</td><td class="quantity">{}</td></tr>',
            (
                (line.line, line.account.code, line.account.name, line.proposed_quantity, line.quantity)
                for line in obj.lines.all()
            ),
        )
        return format_html(
            '<table id="allocation-lines"><thead><tr><th>line</th><th>account</th><th>fund</th>'
            "<th>proposed quantity</th><th>quantity</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="actions")
    def middle_office(self, obj):
        """The steps the allocation's status allows (shown only to middle office)."""
        links = []
        if obj.status in Allocation.OPEN:
            links.append(("change-lines", "Change quantities…"))
            links.append(("confirm", "Confirm and send…"))
        if obj.status in Allocation.CANCELLABLE:
            links.append(("cancel", "Cancel and propose afresh…"))
        if not links:
            return f"None: the allocation is {obj.get_status_display().lower()}."
        return format_html_join(
            " ",
            '<a class="button" id="allocation-{}" href="{}">{}</a>',
            (
                (step, reverse(f"admin:orders_allocation_{step.replace('-', '_')}", args=[obj.pk]), title)
                for step, title in links
            ),
        )

    @admin.display(description="instructions sent (35=J)")
    def instructions(self, obj):
        sent = allocation_instructions(obj)
        if not sent:
            return "None yet: the instruction is sent when the allocation is confirmed."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    message.cl_ord_id,
                    message.get_state_display(),
                    message.msg_seq_num if message.msg_seq_num is not None else "-",
                    utc_text(message.sent_at),
                    "|".join(f"{tag}={value}" for tag, value in message.fields),
                )
                for message in sent
            ),
        )
        return format_html(
            '<table id="allocation-instructions"><thead><tr><th>AllocID</th><th>state</th><th>MsgSeqNum</th>'
            "<th>sent at (UTC)</th><th>fields</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="broker's acks (35=P)")
    def acks(self, obj):
        received = allocation_acks(obj)
        if not received:
            return "None received."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            ((utc_text(event.occurred_at), event.details.get("message", "")) for event in received),
        )
        return format_html(
            '<table id="allocation-acks"><thead><tr><th>received at (UTC)</th><th>message</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            rows,
        )

    # ------------------------------------------------------ middle-office steps
    def get_urls(self):
        steps = [
            ("change-lines", self.change_lines_view, "change_lines"),
            ("confirm", self.confirm_view, "confirm"),
            ("cancel", self.cancel_view, "cancel"),
        ]
        return [
            *(
                path(
                    f"<path:object_id>/{step}/",
                    self.admin_site.admin_view(view),
                    name=f"{self.opts.app_label}_{self.opts.model_name}_{name}",
                )
                for step, view, name in steps
            ),
            *super().get_urls(),
        ]

    def _allocation_for_step(self, request, object_id) -> Allocation:
        if not self.has_confirm_permission(request):
            raise PermissionDenied
        allocation = self.get_object(request, unquote(object_id))
        if allocation is None:
            raise Http404("No such allocation.")
        return allocation

    def _step(self, request, allocation: Allocation, *, form, title: str, intro: str, perform):
        """The page of one step: on a confirmed, valid form run ``perform(data)`` (the
        service; it returns where to go and the success message); a refusal is shown
        on the page."""
        if "confirm" in request.POST and form.is_valid():
            try:
                target, message = perform(form.cleaned_data)
            except (NotPermitted, NotFound) as exc:
                raise PermissionDenied(exc.message) from exc
            except ApplicationError as exc:
                form_errors_add(form, exc)
            else:
                self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:orders_allocation_change", args=[target.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "intro": intro,
            "opts": self.opts,
            "original": allocation,
            "form": form,
        }
        return TemplateResponse(request, FORM_PAGE, context)

    @staticmethod
    def _about(allocation: Allocation) -> str:
        order = allocation.order
        return (
            f"Allocation {allocation.alloc_id} of block order #{order.pk} ({order.side} {allocation.quantity} "
            f"{order.security.symbol} at {allocation.venue.code}, average price {allocation.avg_price}): "
            f"{lines_summary(allocation)}."
        )

    def change_lines_view(self, request, object_id):
        allocation = self._allocation_for_step(request, object_id)
        form = LinesForm(request.POST if "confirm" in request.POST else None, allocation=allocation)

        def perform(data):
            changed = services.allocation_change(
                user=request.user,
                order_id=allocation.order_id,
                allocation_id=allocation.pk,
                lines=form.lines_wanted(),
                reason=data["reason"],
            )
            return changed, f"Changed allocation {changed.alloc_id}: {lines_summary(changed)}."

        return self._step(
            request,
            allocation,
            form=form,
            title="Change allocation quantities",
            intro=f"{self._about(allocation)} Give every fund's quantity: whole numbers, zero or more, "
            f"summing to the executed {allocation.quantity}.",
            perform=perform,
        )

    def confirm_view(self, request, object_id):
        allocation = self._allocation_for_step(request, object_id)

        def perform(_data):
            confirmed = services.allocation_confirm(
                user=request.user, order_id=allocation.order_id, allocation_id=allocation.pk
            )
            return confirmed, (
                f"Confirmed allocation {confirmed.alloc_id}: positions booked, instruction (35=J) queued for "
                f"{confirmed.venue.code}."
            )

        return self._step(
            request,
            allocation,
            form=ConfirmForm(request.POST if "confirm" in request.POST else None),
            title="Confirm allocation",
            intro=f"{self._about(allocation)} Confirming books each fund's position at the average price and "
            "sends the broker the allocation instruction (35=J).",
            perform=perform,
        )

    def cancel_view(self, request, object_id):
        allocation = self._allocation_for_step(request, object_id)

        def perform(data):
            proposal = services.allocation_cancel(
                user=request.user, order_id=allocation.order_id, allocation_id=allocation.pk, reason=data["reason"]
            )
            return proposal, f"Cancelled allocation {allocation.alloc_id}; proposed {proposal.alloc_id} afresh."

        return self._step(
            request,
            allocation,
            form=ReasonForm(request.POST if "confirm" in request.POST else None),
            title="Cancel allocation and propose afresh",
            intro=f"{self._about(allocation)} Cancelling reverses any positions it booked and, once sent, sends "
            "the broker a cancel; a fresh proposal by the allocation rule takes its place.",
            perform=perform,
        )
