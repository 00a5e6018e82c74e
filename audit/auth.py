"""Sign-ins, failed sign-ins and sign-outs on the audit trail.

Connected to django.contrib.auth's signals in ``AuditConfig.ready()``. This is auth
bookkeeping, not business logic: Django's login machinery has no service to call, and
its signals are the documented hook (STYLE.md bans signals for business logic only).

Lockouts (django-axes, ``oms_site.lockout``) too: the failure that locks a username
(or an address, for bad API tokens) is an ``auth.locked_out`` event, and an attempt
refused while locked is a failed sign-in marked ``locked_out``.

Credentials are never recorded: only the username that was tried."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from oms_site.lockout import cool_off_seconds, is_api_token_attempt

from .services import audit_event_record, audit_event_record_independent

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


def _refused_while_locked(request) -> bool:
    """Refused by the lockout before any password was checked: axes flags the request
    locked without counting it (a counted failure sets ``axes_failures_since_start``),
    whichever of the two receivers runs first."""
    return (
        bool(getattr(request, "axes_locked_out", False)) and getattr(request, "axes_failures_since_start", None) is None
    )


def _subject(credentials: dict[str, Any] | None, request) -> tuple[str, str, str, dict[str, Any]]:
    """(actor, object_type, object_id, details) of a failed sign-in or a lockout: the
    username tried, or, for a bad API token (no user), the address it came from."""
    details = _details(request)
    if is_api_token_attempt(credentials):
        return "anonymous", "api_token", (_ip(request) or "unknown")[:100], details
    # ``credentials`` come cleansed by Django (secrets as ********); keep the name only.
    field = get_user_model().USERNAME_FIELD
    credentials = credentials or {}
    name = str(credentials.get(field) or credentials.get("username") or "")
    if len(name) > 100:
        details["username_truncated"] = True
    return name[:MAX_NAME] or "anonymous", "user", name[:100], details


def user_login_failed_record(sender, credentials, request=None, **kwargs) -> None:
    actor, object_type, object_id, details = _subject(credentials, request)
    if _refused_while_locked(request):
        details["locked_out"] = True
    with transaction.atomic():
        audit_event_record(
            actor=actor, action="auth.login_failed", object_type=object_type, object_id=object_id, details=details
        )


def user_locked_out_record(sender, request, username=None, ip_address=None, **kwargs) -> None:
    """axes' ``user_locked_out``: sent for the failure that reaches the limit, and again
    for each attempt refused while locked (those are failed sign-ins marked
    ``locked_out``, recorded above): only the first is a lockout."""
    if request is None or _refused_while_locked(request):
        return
    credentials = getattr(request, "axes_credentials", None)
    actor, object_type, object_id, details = _subject(credentials, request)
    details.update(
        failures=getattr(request, "axes_failures_since_start", None), cool_off_seconds=cool_off_seconds(request)
    )
    # Outside whatever the request does next: the lockout holds whether or not it commits.
    audit_event_record_independent(
        actor=actor, action="auth.locked_out", object_type=object_type, object_id=object_id, details=details
    )


def user_logged_out_record(sender, request, user, **kwargs) -> None:
    if user is None:  # nobody was signed in
        return
    name = user.get_username()
    with transaction.atomic():
        audit_event_record(
            actor=name, action="auth.logout", object_type="user", object_id=name[:100], details=_details(request)
        )
