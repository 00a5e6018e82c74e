"""The API's JSON parser: DRF's, refusing (400, the API's error shape through the
exception handler) a body over the size limit, JSON nested deeper than any request of
ours needs, and NUL bytes in any string (PostgreSQL cannot store them in text). Imports
nothing of the project: DRF loads it while its own settings load."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

NUL = "\x00"
# Far deeper than any body of the API (a basket is three levels), far shallower than
# the interpreter's recursion limit.
MAX_JSON_DEPTH = 32


def _check(value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
    if isinstance(value, str):
        if NUL in value:
            raise ParseError("NUL bytes are not allowed in a request.")
    elif isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                raise ParseError("NUL bytes are not allowed in a request.")
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing (400) a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``,
    JSON nested too deeply (which would otherwise exhaust the recursion limit) and
    NUL bytes in any string."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request is not None and limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                raise ParseError(f"Request body too large: at most {limit:,} bytes.")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from None
        _check(data, 0)
        return data
