"""The restricted and the watch list: entries added by symbol or issuer, imported from
CSV, ended rather than deleted. One admin serves both lists."""

from __future__ import annotations

import csv
import io

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from audit.admin_base import application_error_text
from oms_site.errors import InvalidInput

from .. import services
from ..models import RestrictedEntry, WatchEntry
from ._common import ConsoleAdmin, ServiceAddMixin


class InForceFilter(admin.SimpleListFilter):
    title = "in force now"
    parameter_name = "in_force"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        in_force = queryset.model.in_force_q(timezone.now())
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
    """Shared by the restricted and the watch list: a subclass names its list and the
    services that add and end its entries."""

    list_name = ""  # "restricted" | "watch" for list_entries_import
    add_service = None  # services.<list>_entry_add
    end_service = None  # services.<list>_entry_end
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
        self._each(
            request,
            queryset,
            "Entry",
            lambda entry: self.end_service(user=request.user, entry_id=entry.pk),
            done=lambda n: f"Ended {n} entr{'y' if n == 1 else 'ies'}.",
        )

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
            return self._import_refused(
                request, form, "The file is not UTF-8 text; save it as CSV UTF-8 and try again."
            )
        try:
            report = services.list_entries_import(
                list_name=self.list_name, handle=io.StringIO(text, newline=""), user=request.user
            )
        except InvalidInput as exc:
            return self._import_refused(request, form, application_error_text(exc))
        except csv.Error as exc:
            return self._import_refused(request, form, f"The file is not readable CSV: {exc}")
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

    def _import_refused(self, request, form, problem: str) -> None:
        form.add_error("file", problem)
        self.message_user(request, problem, messages.ERROR)


@admin.register(RestrictedEntry)
class RestrictedEntryAdmin(ListEntryAdmin):
    list_name = "restricted"
    add_title = "Add a restricted list entry"
    add_service = staticmethod(services.restricted_entry_add)
    end_service = staticmethod(services.restricted_entry_end)


@admin.register(WatchEntry)
class WatchEntryAdmin(ListEntryAdmin):
    list_name = "watch"
    add_title = "Add a watch list entry"
    add_service = staticmethod(services.watch_entry_add)
    end_service = staticmethod(services.watch_entry_end)
