"""API tokens (DRF's ``authtoken``) issued from the command line (``manage.py
api_token``), each creation or rotation on the audit trail. The key itself is never
recorded: it is a password. ``audit.api_auth`` checks them on each request."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from oms_site.errors import InvalidStateTransition, NotFound

from .services import audit_event_record


def api_token_issue(*, username: str, actor: str, rotate: bool = False) -> str:
    """The key of ``username``'s API token, created when they have none; ``rotate``
    replaces an existing one (the old key stops working at once). NotFound for an
    unknown user, InvalidStateTransition for an inactive one (a token would not
    authenticate them)."""
    User = get_user_model()
    with transaction.atomic():
        # Locked: two concurrent first calls give one token, not an IntegrityError.
        user = User.objects.select_for_update().filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise NotFound(f"no user {username!r}")
        if not user.is_active:
            raise InvalidStateTransition(f"user {username!r} is inactive: activate the account first")
        token = Token.objects.filter(user=user).first()
        if token is not None and not rotate:
            return token.key
        action = "auth.token_rotated" if token is not None else "auth.token_created"
        if token is not None:
            token.delete()
        token = Token.objects.create(user=user)
        audit_event_record(
            actor=actor,
            action=action,
            object_type="user",
            object_id=user.get_username()[:100],
            details={"via": "api_token"},
        )
    return token.key
