"""The auth admin (users, groups) with every change audited: django.contrib.auth's own
admins re-registered on AuditedModelAdmin. Imported by ``AuditConfig.ready()``, after
``django.contrib.auth.admin`` registered the stock ones."""

from __future__ import annotations

import django.contrib.auth.admin as auth_admin  # registers the stock admins first
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import router, transaction

from .admin_base import AuditedModelAdmin

User = get_user_model()


class AuditedUserAdmin(AuditedModelAdmin, auth_admin.UserAdmin):
    """Users: fields, is_staff/is_active/is_superuser, groups and permissions (as
    sorted names). The password hash is never recorded, only ``password_changed``."""

    audit_object_type = "user"
    audit_key_field = "username"
    audit_secret_fields = ("password",)

    def user_change_password(self, request, id, form_url=""):
        # The stock view is not atomic: make the password and its event one commit.
        with transaction.atomic(using=router.db_for_write(self.model)):
            stored = self.model._default_manager.select_for_update().filter(pk=unquote(id)).first()
            response = super().user_change_password(request, id, form_url)
            if stored is not None and request.method == "POST":
                now = self.model._default_manager.filter(pk=stored.pk).first()
                if now is not None and now.password != stored.password:
                    self.audit_record(
                        request,
                        action="password_changed",
                        object_id=now.get_username(),
                        before=None,
                        after=None,
                        details={"via": "admin", "password_changed": True, "usable": now.has_usable_password()},
                    )
        return response


class AuditedGroupAdmin(AuditedModelAdmin, auth_admin.GroupAdmin):
    """Groups and their permissions (``app_label.codename``, sorted)."""

    audit_object_type = "group"
    audit_key_field = "name"


for model, model_admin in ((User, AuditedUserAdmin), (Group, AuditedGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
