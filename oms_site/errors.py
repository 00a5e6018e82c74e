"""Domain exceptions and the one API error body shape: {"message", "code", "details"}.

Services raise these; the DRF exception handler below maps each to its HTTP status so
every interface (API, pages, commands) reports the same failure the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A domain error with a stable machine-readable code."""

    http_status = status.HTTP_400_BAD_REQUEST
    default_code = "application_error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details if details is not None else {}


class InvalidInput(ApplicationError):
    """Input that fails validation; ``details`` maps field names to messages."""

    default_code = "invalid"


class NotPermitted(ApplicationError):
    http_status = status.HTTP_403_FORBIDDEN
    default_code = "permission_denied"


class NotFound(ApplicationError):
    http_status = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


class InvalidStateTransition(ApplicationError):
    """The request is well-formed but not allowed in the object's current state."""

    http_status = status.HTTP_409_CONFLICT
    default_code = "invalid_state"


def _field_errors(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _field_errors(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_field_errors(item) for item in detail]
    return str(detail)


def error_body(message: str, code: str, details: Any = None) -> dict[str, Any]:
    return {"message": message, "code": code, "details": details if details is not None else {}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.message, exc.code, exc.details), status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(error_body("Invalid input.", "invalid", details), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        details = _field_errors(exc.detail)
        if not isinstance(details, dict):
            details = {"non_field_errors": details}
        response.data = error_body("Invalid input.", "invalid", details)
    elif isinstance(exc, drf_exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        response.data = error_body(str(exc.detail), code)
    return response


def is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None):
    """400 for what Django refuses before any view (a body over the size limit, too
    many fields, a bad host): the API's error body under /api/, HTML elsewhere."""
    from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
    from django.http import JsonResponse
    from django.views import defaults

    if is_api(request):
        if isinstance(exception, RequestDataTooBig):
            message = "Request body too large."
        elif isinstance(exception, TooManyFieldsSent):
            message = "Too many fields in the request."
        else:
            message = "Bad request."
        return JsonResponse(error_body(message, "bad_request"), status=400)
    return defaults.bad_request(request, exception)


def page_not_found(request, exception=None):
    """404 for URLs no view matched: the API's error body under /api/, HTML elsewhere."""
    from django.http import JsonResponse
    from django.views import defaults

    if is_api(request):
        return JsonResponse(error_body("Not found.", "not_found"), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    from django.http import JsonResponse
    from django.views import defaults

    if is_api(request):
        return JsonResponse(error_body("Internal error; it has been logged.", "server_error"), status=500)
    return defaults.server_error(request)
