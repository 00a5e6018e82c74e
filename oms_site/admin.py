"""Admin building blocks shared by every app."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import transaction
from django.db.models import Model

from audit.services import actor_name, audit_event_record


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records that change only through services (orders, executions, FIX messages,
    audit events, compliance results): the admin shows them and never edits them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
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
def _related_name(obj: Model) -> str:
    """A many-to-many member as the audit trail names it: a permission as
    ``app_label.codename`` (the has_perm form), anything else by its str()."""
    if isinstance(obj, Permission):
        return f"{obj.content_type.app_label}.{obj.codename}"
    return str(obj)


def reference_snapshot(obj: Model, *, secret_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every concrete field (foreign keys as ids) and every many-to-many as a sorted list
    of names; ``secret_fields`` (password hashes) never appear."""
    snapshot: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name not in secret_fields:
            snapshot[field.name] = field.value_from_object(obj)
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            related = getattr(obj, field.name).all()
            if field.related_model is Permission:
                related = related.select_related("content_type")
            snapshot[field.name] = sorted(_related_name(member) for member in related)
    return snapshot


class AuditedModelAdmin(admin.ModelAdmin):
    """Reference data edited in the admin (venues, accounts, securities, users, groups):
    every add, change and delete writes an audit event with who, before and after, in
    the admin's own transaction (``changeform_view`` and ``delete_view`` are atomic).

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
        audit_event_record(
            actor=actor_name(request.user),
            action=f"{self._audit_type()}.{action}",
            object_type=self._audit_type(),
            object_id=object_id,
            before=before,
            after=after,
            details=details,
        )

    # ---------------------------------------------------------------- add, change
    def save_model(self, request, obj, form, change):
        stored = self.audit_stored(obj) if change else None
        form._audit_before = reference_snapshot(stored, secret_fields=self.audit_secret_fields) if stored else None
        form._audit_secrets = self._audit_secrets(stored)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Read back as stored, so before and after render alike (a Decimal's places).
        obj = self.model._default_manager.get(pk=form.instance.pk)
        before = getattr(form, "_audit_before", None)
        after = reference_snapshot(obj, secret_fields=self.audit_secret_fields)
        details: dict[str, Any] = {"via": "admin"}
        if before is not None:
            details["changed_fields"] = sorted(k for k in after if before.get(k) != after[k])
        secrets_before = getattr(form, "_audit_secrets", None) or self._audit_secrets(None)
        for name, value in self._audit_secrets(obj).items():
            details[f"{name}_changed"] = value != secrets_before.get(name, "")
        self.audit_record(
            request,
            action="changed" if change else "created",
            object_id=self._audit_key(obj),
            before=before,
            after=after,
            details=details,
        )

    # --------------------------------------------------------------------- delete
    def delete_model(self, request, obj):
        key, before = self._audit_key(obj), reference_snapshot(obj, secret_fields=self.audit_secret_fields)
        super().delete_model(request, obj)
        self.audit_record(request, action="deleted", object_id=key, before=before, after=None, details={"via": "admin"})

    def delete_queryset(self, request, queryset):
        # The "delete selected" action runs outside the admin's atomic views.
        with transaction.atomic(using=queryset.db):
            befores = [
                (self._audit_key(obj), reference_snapshot(obj, secret_fields=self.audit_secret_fields))
                for obj in queryset
            ]
            super().delete_queryset(request, queryset)
            for key, before in befores:
                self.audit_record(
                    request, action="deleted", object_id=key, before=before, after=None, details={"via": "admin"}
                )


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
