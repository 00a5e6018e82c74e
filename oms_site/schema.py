"""The OpenAPI schema's error answers: every operation documents the statuses it can
answer with besides success, each with the one error body (``oms_site.errors``), so a
client (and schemathesis, tests/test_schemathesis.py) knows them all. A library
module: it imports no app."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers
from rest_framework.settings import api_settings


class ErrorSerializer(serializers.Serializer):
    """``{"message", "code", "details"}``: ``details`` maps a field to its messages."""

    message = serializers.CharField()
    code = serializers.CharField()
    details = serializers.DictField()


ERRORS = {
    "400": "invalid input (details name the fields)",
    "401": "no credentials, or a bad token",
    "403": "not permitted for this user's role or accounts",
    "404": "no such object for this user (or no such page of a list)",
    "409": "not allowed in the object's current state",
    "415": "the body is not JSON",
    "429": "too many bad tokens from this address: locked for a while (Retry-After)",
}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema with the error answers each operation can give:
    401, 403 and 429 always (every operation needs a user); 400 when it reads input
    (a body or query parameters); 404 when its path names an object or it lists by
    page; 409 and 415 when it writes. A view's own description of one is kept.
    And a decimal sent as a string has at least one digit each side of its point
    (drf-spectacular's pattern lets "" and "." through, which DRF refuses)."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            isinstance(field, serializers.DecimalField)
            and getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)
            and field.max_whole_digits is not None
            and not field.localize
        ):
            sign = "" if field.min_value is not None and field.min_value >= 0 else "-?"
            whole = rf"\d{{1,{field.max_whole_digits}}}" if field.max_whole_digits else "0"
            fraction = rf"(?:\.\d{{1,{field.decimal_places}}})?" if field.decimal_places else ""
            schema["pattern"] = f"^{sign}{whole}{fraction}$"
        return schema

    def _error_codes(self) -> list[str]:
        codes = ["401", "403", "429"]
        parameters = self._get_parameters()
        writes = self.method in ("POST", "PUT", "PATCH", "DELETE")
        has_body = self._get_request_body() is not None
        if has_body or any(p.get("in") == "query" for p in parameters):
            codes.append("400")
        if any(p.get("in") == "path" for p in parameters) or self._is_list_view():
            codes.append("404")
        if writes:
            codes.append("409")
        if has_body:
            codes.append("415")
        return sorted(codes)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if "content" in responses.get(code, {}):
                continue
            answer = self._get_response_for_code(ErrorSerializer, code, direction=direction)
            answer["description"] = responses.get(code, {}).get("description") or ERRORS[code]
            responses[code] = answer
        return responses
