"""The middle-office compliance console.

Every change made here goes through ``compliance.services`` (the same functions the
API calls), which write the audit event with who, before and after. Nothing is ever
deleted: entries and locates are ended, switches released, overrides decided.

Adds that have a service of their own (list entries, kill switches) use a small add
page of their own instead of the model form, so the service, not the form, writes the
row, and it runs in its own transactions (the kill switch must commit its latch before
it sweeps the working orders)."""

from __future__ import annotations

import csv
import datetime as dt
import io

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from oms_site.admin import ReadOnlyAdmin, timestamp_filter
from oms_site.errors import ApplicationError, InvalidInput
from orders.selectors import TRADER_GROUP

from . import services
from .models import (
    RULE_PARAMETERS,
    ComplianceResult,
    KillSwitch,
    Locate,
    OverrideRequest,
    RestrictedEntry,
    ReviewItem,
    RuleSetting,
    WatchEntry,
)
from .rules import locate_unused


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _problem(exc: ApplicationError) -> str:
    """An application error as one line: the message and its field details."""
    details = exc.details if isinstance(exc.details, dict) else {}
    parts = []
    for key, value in details.items():
        text = " ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
        parts.append(text if key == "non_field_errors" else f"{key}: {text}")
    return f"{exc.message} {'; '.join(parts)}".strip() if parts else exc.message


class ConsoleAdmin(admin.ModelAdmin):
    """Shared by the console pages: nothing is deleted, ever."""

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def _each(self, request, queryset, label: str, call) -> int:
        """Run ``call(obj)`` for every selected row; a refusal is reported for that row
        and the others still go ahead. Returns how many succeeded."""
        done = 0
        for obj in queryset:
            try:
                call(obj)
            except ApplicationError as exc:
                self.message_user(request, f"{label} #{obj.pk}: {_problem(exc)}", messages.ERROR)
            else:
                done += 1
        return done

    def _note_step(self, request, queryset, *, action: str, title: str, form_class, perform, intro: str = ""):
        """An action with an intermediate page that asks for a note (or reason).
        ``perform(note)`` runs on the confirmed, valid form; the page is shown until then."""
        form = form_class(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            perform(form.cleaned_data["note"])
            return None  # back to the change list, with the messages
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "intro": intro,
            "opts": self.model._meta,
            "objects": list(queryset),
            "action": action,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/compliance/action_note.html", context)


class ServiceAddMixin:
    """An add page whose form is handed to a service instead of saved as a model form.
    Subclasses set ``add_form`` and implement ``add_through_service(request, data)``
    returning (object, message); an InvalidInput becomes form errors."""

    add_form: type[forms.Form]
    add_title = ""

    def add_through_service(self, request, data):  # pragma: no cover - abstract
        raise NotImplementedError

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        opts = self.model._meta
        form = self.add_form(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                obj, message = self.add_through_service(request, form.cleaned_data)
            except InvalidInput as exc:
                details = exc.details if isinstance(exc.details, dict) else {}
                for key, value in details.items():
                    field = key if key in form.fields else None
                    for text in value if isinstance(value, list | tuple) else [value]:
                        if field is None and key != "non_field_errors":
                            text = f"{key}: {text}"
                        form.add_error(field, text)
                if not details:
                    form.add_error(None, exc.message)
            except ApplicationError as exc:
                form.add_error(None, _problem(exc))
            else:
                self.log_addition(request, obj, [{"added": {}}])
                self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        fieldsets = [(None, {"fields": list(form.fields)})]
        admin_form = helpers.AdminForm(form, fieldsets, {}, model_admin=self)
        context = {
            **self.admin_site.each_context(request),
            "title": self.add_title or f"Add {opts.verbose_name}",
            "opts": opts,
            "adminform": admin_form,
            "form": form,
            "media": self.media + admin_form.media,
            "errors": helpers.AdminErrorList(form, []),
        }
        return TemplateResponse(request, "admin/compliance/service_add_form.html", context)


class NoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=True)


class OptionalNoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False)


class ReleaseReasonForm(forms.Form):
    note = forms.CharField(label="Release reason", widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=True)


# ------------------------------------------------------------------------ rule settings
def _rule_help() -> str:
    return format_html(
        "What each rule reads from its setting:<ul>{}</ul>",
        format_html_join("", "<li><b>{}</b>: {}</li>", ((rule.label, text) for rule, text in RULE_PARAMETERS.items())),
    )


class RuleSettingForm(forms.ModelForm):
    class Meta:
        model = RuleSetting
        fields = [
            "rule",
            "scope",
            "account",
            "trader",
            "security",
            "issuer",
            "enabled",
            "severity",
            "threshold",
            "window_seconds",
            "note",
        ]
        help_texts = {
            "scope": "The most specific scope with a setting decides: security > issuer > account > trader > firm.",
            "account": "Only for scope account.",
            "trader": "Only for scope trader.",
            "security": "Only for scope security.",
            "issuer": "Only for scope issuer.",
            "enabled": "A disabled setting switches the rule off for its scope.",
            "severity": "Warn holds the order for an override; block rejects it.",
            "threshold": "See the rule's parameters above; inclusive (at the limit passes).",
            "window_seconds": "See the rule's parameters above.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rule"].help_text = _rule_help()


@admin.register(RuleSetting)
class RuleSettingAdmin(ConsoleAdmin):
    form = RuleSettingForm
    list_display = [
        "rule",
        "target",
        "enabled",
        "severity",
        "threshold",
        "window_seconds",
        "updated_by",
        "updated_at",
    ]
    list_filter = ["rule", "scope", "enabled", "severity"]
    list_select_related = ["account", "trader", "security", "updated_by"]
    search_fields = ["issuer", "security__symbol", "account__code", "trader__username"]
    autocomplete_fields = ["account", "security"]
    readonly_fields = ["updated_by", "updated_at"]

    @admin.display(description="target", ordering="scope")
    def target(self, obj):
        return obj.target_label

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "trader":
            kwargs["queryset"] = get_user_model().objects.filter(groups__name=TRADER_GROUP).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        stored = RuleSetting.objects.filter(pk=obj.pk).first() if change else None
        before = services.record_snapshot(stored) if stored is not None else None
        services.console_record_save(user=request.user, instance=obj, before=before)


# ----------------------------------------------------------- restricted and watch lists
class InForceFilter(admin.SimpleListFilter):
    title = "in force now"
    parameter_name = "in_force"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        now = _now()
        in_force = queryset.model.in_force_q(now)
        if self.value() == "yes":
            return queryset.filter(in_force)
        if self.value() == "no":
            return queryset.exclude(in_force)
        return queryset


class ListEntryAddForm(forms.Form):
    symbol = forms.CharField(max_length=32, required=False, help_text="A symbol covers its whole issuer.")
    issuer = forms.CharField(max_length=200, required=False, help_text="Or an issuer (leave the symbol empty).")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    effective_from = forms.SplitDateTimeField(
        required=False, widget=admin.widgets.AdminSplitDateTime, help_text="Empty: now (UTC)."
    )
    effective_to = forms.SplitDateTimeField(
        required=False, widget=admin.widgets.AdminSplitDateTime, help_text="Empty: until ended."
    )


class ListImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV, UTF-8, with a header line: symbol or issuer, reason, and optionally "
        "effective_from and effective_to (ISO 8601; a bare date is midnight UTC)."
    )


class ListEntryAdmin(ServiceAddMixin, ConsoleAdmin):
    """Shared by the restricted and the watch list."""

    list_name = ""  # "restricted" | "watch" for list_entries_import
    add_form = ListEntryAddForm
    change_list_template = "admin/compliance/listentry/change_list.html"
    list_display = ["target", "reason", "effective_period", "in_force", "added_by", "ended_by"]
    list_filter = [InForceFilter, "effective_from"]
    list_select_related = ["security", "added_by", "ended_by"]
    search_fields = ["security__symbol", "issuer"]
    fields = [
        "security",
        "issuer",
        "reason",
        "effective_from",
        "effective_to",
        "added_by",
        "added_at",
        "ended_by",
        "ended_at",
    ]
    actions = ["end_entries"]

    def add_service(self, **kwargs):  # pragma: no cover - set by subclasses
        raise NotImplementedError

    def end_service(self, **kwargs):  # pragma: no cover - set by subclasses
        raise NotImplementedError

    @admin.display(description="target", ordering="issuer")
    def target(self, obj):
        return obj.target_label

    @admin.display(description="effective")
    def effective_period(self, obj):
        start = obj.effective_from.strftime("%Y-%m-%d %H:%M")
        end = obj.effective_to.strftime("%Y-%m-%d %H:%M") if obj.effective_to else "open-ended"
        return f"{start} → {end}"

    @admin.display(description="in force", boolean=True)
    def in_force(self, obj):
        return obj.in_force()

    def has_change_permission(self, request, obj=None):
        # Entries are never edited (end them instead); the list-level permission lets
        # middle office use the "end" action.
        return False if obj is not None else super().has_change_permission(request)

    def has_end_permission(self, request):
        return super().has_change_permission(request)

    def add_through_service(self, request, data):
        entry = self.add_service(
            user=request.user,
            symbol=data["symbol"] or None,
            issuer=data["issuer"] or None,
            reason=data["reason"],
            effective_from=data["effective_from"],
            effective_to=data["effective_to"],
        )
        return entry, f"Added {entry.target_label} to the {self.model._meta.verbose_name_plural}."

    @admin.action(description="End selected entries now", permissions=["end"])
    def end_entries(self, request, queryset):
        done = self._each(
            request, queryset, "Entry", lambda entry: self.end_service(user=request.user, entry_id=entry.pk)
        )
        if done:
            self.message_user(request, f"Ended {done} entr{'y' if done == 1 else 'ies'}.", messages.SUCCESS)

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name=f"{opts.app_label}_{opts.model_name}_import",
            ),
            *super().get_urls(),
        ]

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        opts = self.model._meta
        form = ListImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            report = self._import(request, form)
            if report is not None:
                return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import the {opts.verbose_name_plural} from CSV",
            "opts": opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/compliance/listentry/import.html", context)

    def _import(self, request, form):
        """Decode and import; report what was created and every bad line. A file that
        cannot be read at all is a form error and nothing is imported."""
        raw = form.cleaned_data["file"].read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            problem = "The file is not UTF-8 text; save it as CSV UTF-8 and try again."
            form.add_error("file", problem)
            self.message_user(request, problem, messages.ERROR)
            return None
        try:
            report = services.list_entries_import(
                list_name=self.list_name, handle=io.StringIO(text, newline=""), user=request.user
            )
        except InvalidInput as exc:
            problem = _problem(exc)
            form.add_error("file", problem)
            self.message_user(request, problem, messages.ERROR)
            return None
        except csv.Error as exc:
            problem = f"The file is not readable CSV: {exc}"
            form.add_error("file", problem)
            self.message_user(request, problem, messages.ERROR)
            return None
        level = messages.SUCCESS if not report.errors else messages.WARNING
        self.message_user(
            request,
            f"Imported {report.created} entr{'y' if report.created == 1 else 'ies'}; "
            f"{len(report.errors)} bad line{'' if len(report.errors) == 1 else 's'} skipped.",
            level,
        )
        for line, problem in report.errors:
            self.message_user(request, f"Line {line}: {problem}", messages.ERROR)
        return report


@admin.register(RestrictedEntry)
class RestrictedEntryAdmin(ListEntryAdmin):
    list_name = "restricted"
    add_title = "Add a restricted list entry"

    def add_service(self, **kwargs):
        return services.restricted_entry_add(**kwargs)

    def end_service(self, **kwargs):
        return services.restricted_entry_end(**kwargs)


@admin.register(WatchEntry)
class WatchEntryAdmin(ListEntryAdmin):
    list_name = "watch"
    add_title = "Add a watch list entry"

    def add_service(self, **kwargs):
        return services.watch_entry_add(**kwargs)

    def end_service(self, **kwargs):
        return services.watch_entry_end(**kwargs)


# ------------------------------------------------------------------------------ locates
@admin.register(Locate)
class LocateAdmin(ConsoleAdmin):
    list_display = [
        "account",
        "security",
        "broker",
        "reference",
        "quantity",
        "unused",
        "expires_at",
        "ended",
    ]
    list_filter = ["broker", "expires_at"]
    list_select_related = ["account", "security"]
    search_fields = ["reference", "broker", "security__symbol", "account__code"]
    autocomplete_fields = ["account", "security"]
    fields = ["account", "security", "broker", "reference", "quantity", "expires_at", "created_by", "ended_at"]
    readonly_fields = ["created_by", "ended_at"]
    actions = ["end_locates"]

    @admin.display(description="unused")
    def unused(self, obj):
        return locate_unused(obj)

    @admin.display(description="ended", boolean=True)
    def ended(self, obj):
        return obj.ended_at is not None

    def has_change_permission(self, request, obj=None):
        # An ended locate is history.
        if obj is not None and obj.ended_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        stored = Locate.objects.filter(pk=obj.pk).first() if change else None
        before = services.record_snapshot(stored) if stored is not None else None
        if not change:
            obj.created_by = request.user
        services.console_record_save(user=request.user, instance=obj, before=before)

    @admin.action(description="End selected locates", permissions=["change"])
    def end_locates(self, request, queryset):
        done = self._each(
            request, queryset, "Locate", lambda locate: services.locate_end(user=request.user, locate_id=locate.pk)
        )
        if done:
            self.message_user(request, f"Ended {done} locate(s).", messages.SUCCESS)


# -------------------------------------------------------------------------- kill switch
ActiveSwitchFilter = timestamp_filter(
    field="released_at", title="active", parameter="active", yes_when_set=False, no="No (released)"
)


class KillSwitchAddForm(forms.Form):
    scope = forms.ChoiceField(choices=KillSwitch.Scope.choices)
    target = forms.CharField(
        max_length=150, required=False, help_text="Account code, username, venue code or symbol; empty for firm."
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


@admin.register(KillSwitch)
class KillSwitchAdmin(ServiceAddMixin, ConsoleAdmin):
    add_form = KillSwitchAddForm
    add_title = "Activate a kill switch"
    list_display = [
        "scope",
        "target",
        "active",
        "reason",
        "activated_by",
        "activated_at",
        "released_by",
        "released_at",
        "cancels_requested",
    ]
    list_filter = [ActiveSwitchFilter, "scope"]
    list_select_related = ["activated_by", "released_by"]
    search_fields = ["target", "reason"]
    fields = [
        "scope",
        "target",
        "reason",
        "activated_by",
        "activated_at",
        "cancels_requested",
        "released_by",
        "released_at",
        "release_reason",
    ]
    actions = ["release_switches"]

    @admin.display(description="active", boolean=True)
    def active(self, obj):
        return obj.active

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request)

    def has_release_permission(self, request):
        return super().has_change_permission(request)

    def add_through_service(self, request, data):
        result = services.kill_switch_set(
            user=request.user, scope=data["scope"], target=data["target"], active=True, reason=data["reason"]
        )
        if not result.changed:
            raise InvalidInput("Already active.", details={"non_field_errors": [f"{result.switch} is already on."]})
        cancels = len(result.cancelled_order_ids)
        return result.switch, f"Kill switch {result.switch} activated; {cancels} cancel(s) sent."

    @admin.action(description="Release selected switches", permissions=["release"])
    def release_switches(self, request, queryset):
        def perform(reason):
            released = 0
            for switch in queryset:
                if not switch.active:
                    self.message_user(request, f"Switch #{switch.pk} ({switch}) was already released.", messages.INFO)
                    continue
                try:
                    result = services.kill_switch_set(
                        user=request.user, scope=switch.scope, target=switch.target, active=False, reason=reason
                    )
                except ApplicationError as exc:
                    self.message_user(request, f"Switch #{switch.pk}: {_problem(exc)}", messages.ERROR)
                    continue
                released += int(result.changed)
            if released:
                self.message_user(request, f"Released {released} switch(es).", messages.SUCCESS)

        return self._note_step(
            request,
            queryset,
            action="release_switches",
            title="Release kill switches",
            intro="New orders in these scopes will be accepted again. Working orders are not touched.",
            form_class=ReleaseReasonForm,
            perform=perform,
        )


# ---------------------------------------------------------------------- override queue
@admin.register(OverrideRequest)
class OverrideRequestAdmin(ConsoleAdmin):
    list_display = [
        "id",
        "order",
        "symbol",
        "side",
        "quantity",
        "requested_by",
        "justification",
        "warning_rules",
        "requested_at",
        "expires_at",
        "status",
    ]
    list_filter = ["status"]
    list_select_related = ["order", "order__security", "requested_by"]
    search_fields = ["order__client_order_id", "order__security__symbol", "requested_by__username"]
    readonly_fields = [
        "order",
        "requested_by",
        "justification",
        "warnings",
        "requested_at",
        "expires_at",
        "status",
        "decided_by",
        "decided_at",
        "decision_note",
    ]
    fields = readonly_fields
    actions = ["approve", "deny"]

    def get_ordering(self, request):
        pending_first = Case(
            When(status=OverrideRequest.Status.PENDING, then=Value(0)), default=Value(1), output_field=IntegerField()
        )
        return [pending_first.asc(), "-requested_at", "-id"]

    @admin.display(description="symbol", ordering="order__security__symbol")
    def symbol(self, obj):
        return obj.order.security.symbol

    @admin.display(description="warnings")
    def warning_rules(self, obj):
        return ", ".join(obj.warnings) or "-"

    @admin.display(description="side")
    def side(self, obj):
        return obj.order.side

    @admin.display(description="quantity")
    def quantity(self, obj):
        return obj.order.quantity

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_decide_permission(self, request):
        return request.user.has_perm("compliance.decide_overriderequest")

    def _decide(self, request, queryset, *, approve: bool, note: str) -> None:
        service = services.override_approve if approve else services.override_deny
        done = self._each(
            request,
            queryset,
            "Override",
            lambda override: service(user=request.user, override_id=override.pk, note=note),
        )
        if done:
            verb = "Approved" if approve else "Denied"
            self.message_user(request, f"{verb} {done} override request(s).", messages.SUCCESS)

    @admin.action(description="Approve (release the orders)", permissions=["decide"])
    def approve(self, request, queryset):
        return self._note_step(
            request,
            queryset,
            action="approve",
            title="Approve override requests",
            intro="Each approved order is evaluated again with its requested warnings covered and routed.",
            form_class=OptionalNoteForm,
            perform=lambda note: self._decide(request, queryset, approve=True, note=note),
        )

    @admin.action(description="Deny (reject the orders)", permissions=["decide"])
    def deny(self, request, queryset):
        return self._note_step(
            request,
            queryset,
            action="deny",
            title="Deny override requests",
            intro="Each denied order is rejected and never sent.",
            form_class=NoteForm,
            perform=lambda note: self._decide(request, queryset, approve=False, note=note),
        )


# ------------------------------------------------------------------------- review items
ResolvedFilter = timestamp_filter(field="resolved_at", title="resolved", parameter="resolved", yes_when_set=True)


@admin.register(ReviewItem)
class ReviewItemAdmin(ConsoleAdmin):
    list_display = ["id", "kind", "order", "message", "created_at", "resolved"]
    list_filter = [ResolvedFilter, "kind"]
    list_select_related = ["order"]
    search_fields = ["message", "order__client_order_id"]
    fields = ["kind", "order", "message", "details", "created_at", "resolved_by", "resolved_at", "resolution_note"]
    readonly_fields = fields
    actions = ["resolve"]

    @admin.display(description="resolved", boolean=True)
    def resolved(self, obj):
        return obj.resolved_at is not None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request)

    def has_resolve_permission(self, request):
        return super().has_change_permission(request)

    @admin.action(description="Resolve", permissions=["resolve"])
    def resolve(self, request, queryset):
        def perform(note):
            done = self._each(
                request,
                queryset,
                "Review item",
                lambda item: services.review_item_resolve(user=request.user, item_id=item.pk, note=note),
            )
            if done:
                self.message_user(request, f"Resolved {done} review item(s).", messages.SUCCESS)

        return self._note_step(
            request, queryset, action="resolve", title="Resolve review items", form_class=NoteForm, perform=perform
        )


# -------------------------------------------------------------------- compliance results
@admin.register(ComplianceResult)
class ComplianceResultAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "order",
        "account",
        "symbol",
        "stage",
        "rule",
        "outcome",
        "code",
        "internal",
        "overridden",
        "evaluated_at",
    ]
    list_filter = ["evaluated_at", ("order__account", admin.RelatedOnlyFieldListFilter), "rule", "outcome", "stage"]
    list_select_related = ["order", "order__account", "order__security"]
    search_fields = ["order__client_order_id", "order__security__symbol", "code"]
    date_hierarchy = "evaluated_at"
    show_full_result_count = False

    @admin.display(description="account", ordering="order__account__code")
    def account(self, obj):
        return obj.order.account.code

    @admin.display(description="symbol", ordering="order__security__symbol")
    def symbol(self, obj):
        return obj.order.security.symbol

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions
