"""The API's authentication: DRF's token authentication with bad tokens counted by
axes (``oms_site.lockout``), the token and its user read by one read compiled once per
process (``oms_site.prepared``) instead of a queryset built on every request. Imported
by DRF while it loads its settings: it imports no module that imports DRF's views."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authtoken.models import Token

from oms_site.lockout import LockoutTokenAuthentication
from oms_site.prepared import PreparedRead

_USER_FIELDS = [field.attname for field in get_user_model()._meta.concrete_fields]
_TOKEN_USER = PreparedRead(
    lambda key: Token.objects.filter(key=key).values_list("created", *(f"user__{name}" for name in _USER_FIELDS)),
    key="k",
)


class ApiTokenAuthentication(LockoutTokenAuthentication):
    """DRF's ``TokenAuthentication`` as the lockout counts it, with the same answers:
    an unknown key or an inactive user is a failed authentication."""

    def authenticate_credentials(self, key):
        rows = _TOKEN_USER.rows(key=key)
        if not rows:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        created, *values = rows[0]
        user = get_user_model().from_db(connection.alias, _USER_FIELDS, values)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token = Token.from_db(connection.alias, ["key", "user_id", "created"], [key, user.pk, created])
        token.user = user
        return user, token
