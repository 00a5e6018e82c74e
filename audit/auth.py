"""Sign-ins, failed sign-ins and sign-outs on the audit trail.

Connected to django.contrib.auth's signals in ``AuditConfig.ready()``. This is auth
bookkeeping, not business logic: Django's login machinery has no service to call, and
its signals are the documented hook (STYLE.md bans signals for business logic only).

Credentials are never recorded: only the username that was tried."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from .services import audit_event_record

MAX_NAME = 150  # AuditEvent.actor; object_id takes 100


def _ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def _details(request) -> dict[str, Any]:
    details: dict[str, Any] = {"ip": _ip(request)}
    if request is not None and getattr(request, "path", None):
        details["path"] = request.path
    return details


def user_logged_in_record(sender, request, user, **kwargs) -> None:
    name = user.get_username()
    # Its own transaction (atomic joins the request's if there is one): the sign-in
    # has happened once the session is created, whatever the view does next.
    with transaction.atomic():
        audit_event_record(
            actor=name, action="auth.login", object_type="user", object_id=name[:100], details=_details(request)
        )


def user_login_failed_record(sender, credentials, request=None, **kwargs) -> None:
    # ``credentials`` come cleansed by Django (secrets as ********); keep the name only.
    field = get_user_model().USERNAME_FIELD
    name = str(credentials.get(field) or credentials.get("username") or "")
    details = _details(request)
    if len(name) > 100:
        details["username_truncated"] = True
    with transaction.atomic():
        audit_event_record(
            actor=name[:MAX_NAME] or "anonymous",
            action="auth.login_failed",
            object_type="user",
            object_id=name[:100],
            details=details,
        )


def user_logged_out_record(sender, request, user, **kwargs) -> None:
    if user is None:  # nobody was signed in
        return
    name = user.get_username()
    with transaction.atomic():
        audit_event_record(
            actor=name, action="auth.logout", object_type="user", object_id=name[:100], details=_details(request)
        )
