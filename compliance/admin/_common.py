"""Shared by the console pages: the base admin (nothing deleted, actions with a note
page), add pages handed to a service, and the note forms."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from audit.admin_base import KeptAdmin, application_error_text
from oms_site.errors import ApplicationError, InvalidInput

from .. import services


class ConsoleAdmin(KeptAdmin):
    """A console page: nothing is deleted, ever; a record saved from its form goes
    through ``console_record_save`` (audited, before and after); actions may ask for a
    note first."""

    def save_model(self, request, obj, form, change):
        stored = self.model._default_manager.filter(pk=obj.pk).first() if change else None
        before = services.record_snapshot(stored) if stored is not None else None
        services.console_record_save(user=request.user, instance=obj, before=before)

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
                form.add_error(None, application_error_text(exc))
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
