"""Admin building blocks shared by every app: read-only and never-deleted bases, the
audited reference-data admin, and a yes/no filter on a timestamp. They live in
``audit`` because the reference-data admin records through ``audit.services``; this
module imports no domain app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Model

from oms_site.errors import ApplicationError

from .reference import reference_change_record, reference_snapshot
from .services import actor_name, audit_event_record


def application_error_text(exc: ApplicationError) -> str:
    """An application error as one line: the message and its field details."""
    details = exc.details if isinstance(exc.details, dict) else {}
    parts = []
    for key, value in details.items():
        text = " ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
        parts.append(text if key == "non_field_errors" else f"{key}: {text}")
    return f"{exc.message} {'; '.join(parts)}".strip() if parts else exc.message


class KeptAdmin(admin.ModelAdmin):
    """Records that are never deleted, from the change page or the bulk action (the
    "delete selected" action needs the delete permission): entries end, holds and
    switches are released, requests are decided."""

    def has_delete_permission(self, request, obj=None):
        return False

    def _each(self, request, queryset, label: str, call, *, done: Callable[[int], str]) -> int:
        """Run ``call(obj)`` (a service) for every selected row; a refusal is reported
        for that row and the others still go ahead. ``done(n)`` is the success message
        when any succeeded. Returns how many succeeded."""
        succeeded = 0
        for obj in queryset:
            try:
                call(obj)
            except ApplicationError as exc:
                self.message_user(request, f"{label} #{obj.pk}: {application_error_text(exc)}", messages.ERROR)
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, done(succeeded), messages.SUCCESS)
        return succeeded


class ReadOnlyAdmin(KeptAdmin):
    """Records that change only through services (orders, executions, FIX messages,
    audit events, compliance results): the admin shows them and never edits them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    """Rows shown with their parent (an order's requests, executions, compliance
    results): every listed field read-only, nothing added or removed."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


# ------------------------------------------------------------- audited reference data
class AuditedModelAdmin(admin.ModelAdmin):
    """Reference data edited in the admin (venues, accounts, securities, users, groups):
    every add, change and delete writes an audit event with who, before and after, in
    the admin's own transaction (``changeform_view`` and ``delete_view`` are atomic) —
    the event ``audit.reference.reference_change_record`` writes for the apps' services
    (``venue_save``, ``security_save``, ``account_save``), with ``via`` "admin".

    ``before`` is read from the database row (locked) before the form's values are
    saved; the event is written in ``save_related``, after the many-to-many fields
    (saved there) are in place. Secret fields (a password hash) are left out and only
    ``<field>_changed`` true/false is recorded."""

    audit_object_type: str = ""  # default: the model name
    audit_key_field: str = "pk"  # what object_id holds (a code, a symbol, a username)
    audit_secret_fields: tuple[str, ...] = ()

    # -------------------------------------------------------------------- helpers
    def _audit_type(self) -> str:
        return self.audit_object_type or self.model._meta.model_name

    def _audit_key(self, obj: Model) -> Any:
        return getattr(obj, self.audit_key_field)

    def _audit_snapshot(self, obj: Model) -> dict[str, Any]:
        return reference_snapshot(obj, secret_fields=self.audit_secret_fields)

    def _audit_secrets(self, obj: Model | None) -> dict[str, Any]:
        if obj is None:
            return {name: "" for name in self.audit_secret_fields}
        return {name: getattr(obj, name) for name in self.audit_secret_fields}

    def audit_stored(self, obj: Model) -> Model | None:
        """The row as stored, locked for the rest of the transaction."""
        if obj.pk is None:
            return None
        return self.model._default_manager.select_for_update().filter(pk=obj.pk).first()

    def audit_record(
        self, request, *, action: str, object_id: Any, before: dict | None, after: dict | None, details: dict
    ) -> None:
        """An event other than a created/changed/deleted row (a password change)."""
        audit_event_record(
            actor=actor_name(request.user),
            action=f"{self._audit_type()}.{action}",
            object_type=self._audit_type(),
            object_id=object_id,
            before=before,
            after=after,
            details=details,
        )

    def _audit_change_record(self, request, *, key: Any, before: dict | None, after: dict | None, details=None):
        reference_change_record(
            actor=actor_name(request.user),
            object_type=self._audit_type(),
            object_id=key,
            before=before,
            after=after,
            via="admin",
            details=details,
        )

    # ---------------------------------------------------------------- add, change
    def save_model(self, request, obj, form, change):
        stored = self.audit_stored(obj) if change else None
        form._audit_before = self._audit_snapshot(stored) if stored else None
        form._audit_secrets = self._audit_secrets(stored)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Read back as stored, so before and after render alike (a Decimal's places).
        obj = self.model._default_manager.get(pk=form.instance.pk)
        secrets_before = getattr(form, "_audit_secrets", None) or self._audit_secrets(None)
        self._audit_change_record(
            request,
            key=self._audit_key(obj),
            before=getattr(form, "_audit_before", None),
            after=self._audit_snapshot(obj),
            details={
                f"{name}_changed": value != secrets_before.get(name, "")
                for name, value in self._audit_secrets(obj).items()
            },
        )

    # --------------------------------------------------------------------- delete
    def delete_model(self, request, obj):
        key, before = self._audit_key(obj), self._audit_snapshot(obj)
        super().delete_model(request, obj)
        self._audit_change_record(request, key=key, before=before, after=None)

    def delete_queryset(self, request, queryset):
        # The "delete selected" action runs outside the admin's atomic views.
        with transaction.atomic(using=queryset.db):
            befores = [(self._audit_key(obj), self._audit_snapshot(obj)) for obj in queryset]
            super().delete_queryset(request, queryset)
            for key, before in befores:
                self._audit_change_record(request, key=key, before=before, after=None)


def timestamp_filter(
    *, field: str, title: str, parameter: str, yes_when_set: bool, yes: str = "Yes", no: str = "No"
) -> type[admin.SimpleListFilter]:
    """A yes/no list filter on whether a timestamp is set: "released" and "resolved"
    records keep their rows and mark the time instead."""

    class TimestampFilter(admin.SimpleListFilter):
        def lookups(self, request, model_admin):
            return [("yes", yes), ("no", no)]

        def queryset(self, request, queryset):
            if self.value() in ("yes", "no"):
                is_set = (self.value() == "yes") == yes_when_set
                return queryset.filter(**{f"{field}__isnull": not is_set})
            return queryset

    TimestampFilter.title = title
    TimestampFilter.parameter_name = parameter
    return TimestampFilter
