"""Display filters for the trader pages: prices as traders read them, quantities with
thousands separators, statuses as words."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


@register.filter
def price(value) -> str:
    """175.50000000 -> 175.50; 0.12345000 -> 0.12345; None -> an empty cell."""
    if value in (None, ""):
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    normalized = number.normalize()
    if normalized.as_tuple().exponent > -2:
        normalized = number.quantize(Decimal("0.01"))
    return f"{normalized:,f}"


@register.filter
def money(value) -> str:
    """An amount to the cent with thousands separators: -1234.5 -> -1,234.50; None ->
    an empty cell."""
    if value in (None, ""):
        return ""
    try:
        number = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return str(value)
    return f"{number:,f}"


@register.filter
def qty(value) -> str:
    if value in (None, ""):
        return ""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def words(value) -> str:
    """pending_new -> pending new."""
    return str(value or "").replace("_", " ")


@register.filter
def signed_qty(value) -> str:
    if value in (None, ""):
        return ""
    number = int(value)
    return f"{number:+,}" if number else "0"
