"""What the middle-office group may do in the admin console, granted after every
migrate so a fresh installation has a working console without hand-made grants."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q
from django.db.models.signals import post_migrate

from oms_site.roles import MIDDLE_OFFICE_GROUP

from .defaults import firm_defaults_ensure

# Console records middle office maintains (nothing is ever deleted: entries end).
MAINTAINED = ("rulesetting", "restrictedentry", "watchentry", "locate", "killswitch")
# Records it decides or resolves but does not create by hand.
DECIDED = ("overriderequest", "reviewitem")


def role_permissions_grant(**_kwargs) -> None:
    group, _ = Group.objects.get_or_create(name=MIDDLE_OFFICE_GROUP)
    wanted = Permission.objects.filter(
        content_type__app_label__in=["orders", "compliance", "routing", "audit"], codename__startswith="view_"
    )
    maintained = Permission.objects.filter(
        content_type__app_label="compliance",
        codename__in=[f"{verb}_{model}" for model in MAINTAINED for verb in ("add", "change")],
    )
    decided = Permission.objects.filter(
        content_type__app_label="compliance",
        codename__in=[f"change_{model}" for model in DECIDED] + ["decide_overriderequest"],
    )
    # Audit retention: policies and legal holds (never deleted; holds are released).
    audit_maintained = Permission.objects.filter(
        content_type__app_label="audit",
        codename__in=["add_retentionpolicy", "change_retentionpolicy", "add_legalhold", "change_legalhold"],
    )
    # Operations, each through a service with a reason and audited: FIX sessions
    # (reset, reconnect, disconnect) and closing an order the venue no longer knows.
    # Not the right to change those rows.
    operations = Permission.objects.filter(
        Q(content_type__app_label="routing", codename="operate_venuesession")
        | Q(content_type__app_label="orders", codename="close_order_locally")
        # A block's allocations: changed, confirmed and cancelled through the services.
        | Q(content_type__app_label="orders", codename="confirm_allocation")
    )
    # Sign-in lockouts (django-axes' counters): seen, and cleared by deleting them
    # (audit.admin_lockouts records each clearing).
    lockouts = Permission.objects.filter(
        content_type__app_label="axes", codename__in=["view_accessattempt", "delete_accessattempt"]
    )
    group.permissions.add(*wanted, *maintained, *decided, *audit_maintained, *operations, *lockouts)


def role_permissions_connect(app_config) -> None:
    # After auth has created the permissions of every app (post_migrate runs per app;
    # running on each is idempotent and cheap). The firm's default rule settings are
    # ensured the same way (compliance.defaults).
    post_migrate.connect(role_permissions_grant, dispatch_uid="compliance.role_permissions_grant")
    post_migrate.connect(firm_defaults_ensure, sender=app_config, dispatch_uid="compliance.firm_defaults_ensure")
