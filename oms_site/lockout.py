"""Sign-in lockout through django-axes, on the three ways in: the trader pages' login,
the admin's login and the API's tokens. A library module: it imports no app.

Policy (settings ``AXES_*``, README "Security"):

- ``AXES_FAILURE_LIMIT`` (10) failed sign-ins lock a *username*, from any address,
  for ``AXES_COOLOFF_TIME`` (15 minutes). Not the address: a trading desk signs in
  from one NAT address, and an address lock would shut the whole desk out after a few
  colleagues' typos. The price is that someone who knows a username can lock it out
  for the cool-off; every lockout is on the audit trail and middle office clears one
  in the admin (Axes › Access attempts).
- While locked, a sign-in is refused before its password is checked (so guessing
  stops), with HTTP 429 and ``Retry-After``; refused attempts do not extend the lock.
- A bad API token counts against its client *address* (a token names no user): after
  the limit, bad tokens from that address get 429 in the API's error shape. A valid
  token is still accepted from it: tokens are 160 random bits, so the lock is there to
  throttle and flag the hammering, not to protect a guessable secret, and a
  misconfigured script on a shared host must not cut off the good clients there.

The address is ``REMOTE_ADDR`` (no forwarded header is trusted). The 429 answer is
``oms_site.hardening.lockout_response``: this module is imported while DRF loads its
settings, before ``oms_site.errors`` can be.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django.contrib.auth.signals import user_login_failed
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

# What a bad API token is recorded under: not a possible username (it has a space),
# and only a token failure carries the ``api_token`` key that selects the address lock.
API_TOKEN_USERNAME = "API token"
API_TOKEN_CREDENTIALS = {"username": API_TOKEN_USERNAME, "api_token": True}


def is_api_token_attempt(credentials: dict[str, Any] | None) -> bool:
    return bool(credentials) and credentials.get("api_token") is True


def lockout_parameters(request_or_attempt, credentials: dict[str, Any] | None = None) -> list:
    """``AXES_LOCKOUT_PARAMETERS``: a username for sign-ins; the address (among bad
    tokens only, so sign-in typos behind the same address do not count) for tokens."""
    if is_api_token_attempt(credentials):
        return [["ip_address", "username"]]
    return ["username"]


def cool_off_seconds(request=None) -> int:
    cool_off = get_cool_off(request)
    return int(cool_off.total_seconds()) if cool_off else 0


class LockoutBackend(AxesStandaloneBackend):
    """Axes' backend, first in ``AUTHENTICATION_BACKENDS``. A call without a request
    (a management command, a test client's ``login``) is no sign-in from the web, the
    only way an attacker has in: there is no address to count, so it passes to the
    next backend instead of failing (axes would raise)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class LockedOut(exceptions.Throttled):
    default_detail = "Too many failed authentications from this address; try again later."
    default_code = "locked_out"


class LockoutTokenAuthentication(TokenAuthentication):
    """DRF's token authentication with every bad token counted by axes (through
    Django's ``user_login_failed`` signal, as for a failed sign-in, so it is audited the
    same way): past the limit a bad token from that address is a 429."""

    def authenticate(self, request):
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            self._failure_record(request._request)
            raise

    @staticmethod
    def _failure_record(request) -> None:
        credentials = dict(API_TOKEN_CREDENTIALS)
        if not AxesProxyHandler.is_allowed(request, credentials):
            # Already locked: refused without counting again, as the backend does.
            request.axes_locked_out = True
            user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            raise LockedOut(wait=cool_off_seconds(request))
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        if getattr(request, "axes_locked_out", False):  # this failure reached the limit
            raise LockedOut(wait=cool_off_seconds(request))
