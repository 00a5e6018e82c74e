"""Input refused before a view or the database sees it: NUL bytes in the API's and
the admin's paths and query strings (PostgreSQL cannot store them in text, so they
would surface as a server error). A 400 in the interface's own shape: the API's error
body under /api/, a plain page in the admin. JSON bodies are checked by
``oms_site.parsers.StrictJSONParser``. And the answer to a locked-out sign-in
(``oms_site.lockout``). A library module: it imports no app."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBadRequest, JsonResponse
from django.template.response import TemplateResponse

from .errors import error_body, is_api
from .lockout import LockedOut, cool_off_seconds
from .parsers import NUL


def _refuse(request, message: str, details: dict[str, Any] | None = None):
    if is_api(request):
        return JsonResponse(error_body(message, "invalid", details), status=400)
    return HttpResponseBadRequest(f"<h1>Bad request</h1><p>{message}</p>".encode(), content_type="text/html")


class RejectNulBytes:
    """400 for a NUL byte in the path or query string of the API and the admin, whose
    filters and searches go straight into queries. The pages validate their own
    parameters (a NUL is ignored or a field error there, as their tests show), Django's
    form fields refuse NULs in every form body, and JSON bodies are checked by
    ``StrictJSONParser``."""

    PREFIXES = ("/api/", "/admin/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(self.PREFIXES):
            where = self._nul_in(request)
            if where is not None:
                return _refuse(request, "NUL bytes are not allowed in a request.", {where: ["Contains a NUL byte."]})
        return self.get_response(request)

    @staticmethod
    def _nul_in(request) -> str | None:
        if NUL in request.path:
            return "path"
        for key, values in request.GET.lists():
            if NUL in key or any(NUL in value for value in values):
                return key.replace(NUL, "") or "non_field_errors"
        return None


def lockout_response(request, original_response=None, credentials: dict[str, Any] | None = None):
    """``AXES_LOCKOUT_CALLABLE``: 429 with ``Retry-After``; the API's error body under
    /api/ (only bad tokens lock there), a page saying so elsewhere (the trader pages'
    and the admin's login)."""
    seconds = cool_off_seconds(request)
    if is_api(request):
        body = error_body(str(LockedOut.default_detail), "locked_out", {"retry_after_seconds": seconds})
        response = JsonResponse(body, status=429)
    else:
        response = TemplateResponse(
            request, "registration/locked_out.html", {"cool_off_minutes": max(1, round(seconds / 60))}, status=429
        )
        response.render()
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
