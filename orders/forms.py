"""Forms of the trader pages. They only shape input (a number of shares from what a
person types, a UTC time from a datetime-local box); the services validate the order
itself, and their field errors are put back beside the fields (``errors_to_form``)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

from django import forms

from .allocation import FIELD as ALLOCATIONS
from .models import OrderStatus, OrderType, Side, TimeInForce

_WHOLE_NUMBER = re.compile(r"^\d{1,15}$")
# A row of the ticket's "Allocate to funds" grid, as the page posts it.
_ALLOCATION_KEY = re.compile(r"^alloc_(account|value)_(\d{1,4})$")
# A service error about one line of a block: "allocations[1].percent".
_ALLOCATION_LINE_ERROR = re.compile(r"^allocations\[(\d+)\]\.(account|quantity|percent)$")
ALLOCATION_MODES = (("percent", "By percent"), ("quantity", "By shares"))
# The ticket field a service check of another field reads (for one round of errors).
_CHECK_READS = {
    "limit_price": "order_type",
    "stop_price": "order_type",
    "expire_at": "time_in_force",
    "short_exempt_reason": "side",
}


def parse_quantity(text: str) -> int:
    """A whole number of shares as typed: "10000", "10,000" or "10 000"."""
    cleaned = re.sub(r"[,\s_]", "", text or "")
    if not _WHOLE_NUMBER.match(cleaned):
        raise forms.ValidationError("Enter a whole number of shares.")
    return int(cleaned)


def parse_price(text: str) -> str | None:
    """A price as typed, thousands separators removed; the service checks the value."""
    cleaned = re.sub(r"[,\s]", "", text or "")
    return cleaned or None


def new_client_order_id() -> str:
    """Each ticket gets its own id when it is shown, so a double submit of one ticket
    creates one order (the service is idempotent per account and id)."""
    return f"WEB-{secrets.token_hex(8).upper()}"


class OrderTicketForm(forms.Form):
    client_order_id = forms.CharField(widget=forms.HiddenInput, max_length=64)
    account = forms.ChoiceField(label="Account")
    symbol = forms.CharField(
        label="Symbol",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "off", "list": "symbol-options", "spellcheck": "false"}),
    )
    side = forms.ChoiceField(label="Side", choices=Side.choices)
    quantity = forms.CharField(label="Quantity", max_length=24, widget=forms.TextInput(attrs={"inputmode": "numeric"}))
    order_type = forms.ChoiceField(label="Order type", choices=OrderType.choices, initial=OrderType.LIMIT)
    limit_price = forms.CharField(
        label="Limit price", required=False, max_length=32, widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    stop_price = forms.CharField(
        label="Stop price", required=False, max_length=32, widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    time_in_force = forms.ChoiceField(label="Time in force", choices=TimeInForce.choices, initial=TimeInForce.DAY)
    expire_at = forms.DateTimeField(
        label="Expire at (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    venue = forms.ChoiceField(label="Venue", required=False)
    short_exempt_reason = forms.CharField(
        label="Short exempt reason",
        required=False,
        max_length=500,
        help_text="Only for a short sale exempt from the locate requirement.",
    )

    def __init__(self, *args, accounts=(), venues=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = [(a.code, f"{a.code} — {a.name}") for a in accounts]
        # A block order names its funds in the grid instead (checked in ``clean``).
        self.fields["account"].required = False
        self.fields["venue"].choices = [("", "Best venue (router)")] + [
            (v.code, f"{v.code} — {v.name}" if v.name else v.code) for v in venues
        ]
        self.allocation_mode, self.allocation_rows = self._allocation_grid()
        self.allocation_errors: list[str] = []

    # ---- the "Allocate to funds" grid: rows posted as alloc_account_N / alloc_value_N
    def _allocation_grid(self) -> tuple[str, list[dict[str, Any]]]:
        """The grid's mode and its filled rows in the order posted (blank rows, as
        the page adds them, are left out): row i is line i of the service's
        ``allocations``, so its errors come back by that index."""
        data = self.data if self.is_bound else {}
        mode = data.get("alloc_mode") if data.get("alloc_mode") in dict(ALLOCATION_MODES) else "percent"
        indexes = sorted({int(match.group(2)) for key in data if (match := _ALLOCATION_KEY.match(key))})
        rows = []
        for index in indexes:
            account = str(data.get(f"alloc_account_{index}", "")).strip()
            value = str(data.get(f"alloc_value_{index}", "")).strip()
            if account or value:
                rows.append({"account": account, "value": value, "account_errors": [], "value_errors": []})
        return mode, rows

    @property
    def allocation_modes(self) -> tuple[tuple[str, str], ...]:
        return ALLOCATION_MODES

    @property
    def account_choices(self) -> list[tuple[str, str]]:
        return list(self.fields["account"].choices)

    def allocations(self) -> list[dict[str, Any]] | None:
        """The grid as the service's ``allocations`` (None when it has no rows): shares
        as whole numbers where they read as one, else as typed, for the service to
        say what is wrong with them."""
        if not self.allocation_rows:
            return None
        lines = []
        for row in self.allocation_rows:
            if self.allocation_mode == "percent":
                lines.append({"account": row["account"], "percent": row["value"].rstrip("%").strip()})
            else:
                try:
                    quantity: int | str = parse_quantity(row["value"])
                except forms.ValidationError:
                    quantity = row["value"]
                lines.append({"account": row["account"], "quantity": quantity})
        return lines

    def allocation_errors_take(self, details: dict | None) -> dict:
        """Put the service's errors about the grid beside it (the whole grid) or its
        rows (one line); the other field errors are returned for ``errors_to_form``."""
        rest = {}
        for key, messages in (details or {}).items():
            texts = [str(m) for m in (messages if isinstance(messages, list) else [messages])]
            line = _ALLOCATION_LINE_ERROR.match(key)
            if line and int(line.group(1)) < len(self.allocation_rows):
                row = self.allocation_rows[int(line.group(1))]
                row["account_errors" if line.group(2) == "account" else "value_errors"].extend(texts)
            elif key == ALLOCATIONS or key.startswith(f"{ALLOCATIONS}["):
                self.allocation_errors.extend(texts)
            else:
                rest[key] = messages
        return rest

    def has_allocation_errors(self) -> bool:
        return bool(self.allocation_errors) or any(
            row["account_errors"] or row["value_errors"] for row in self.allocation_rows
        )

    def clean(self) -> dict:
        cleaned = super().clean()
        lines = self.allocations()
        if lines is None and not cleaned.get("account") and "account" not in self.errors:
            self.add_error("account", "This field is required.")
        # The grid itself is the service's to check, in the same round as the form's
        # errors (``service_errors_add``).
        return cleaned

    def clean_symbol(self) -> str:
        return self.cleaned_data["symbol"].strip().upper()

    def clean_quantity(self) -> int:
        return parse_quantity(self.cleaned_data["quantity"])

    def clean_limit_price(self) -> str | None:
        return parse_price(self.cleaned_data["limit_price"])

    def clean_stop_price(self) -> str | None:
        return parse_price(self.cleaned_data["stop_price"])

    def clean_expire_at(self) -> dt.datetime | None:
        value = self.cleaned_data.get("expire_at")
        # The box has no time zone: the label says UTC, and so it is read.
        return value.astimezone(dt.UTC) if value is not None else None

    def submission(self) -> dict:
        """The service's keyword arguments. On a form with errors, those of its valid
        fields (None for the others), for the service to check them in the same round
        (``service_errors_add``)."""
        data = self.cleaned_data
        allocations = self.allocations()
        return {
            "client_order_id": data.get("client_order_id"),
            "account": data.get("account") or "",
            **({"allocations": allocations} if allocations is not None else {}),
            "symbol": data.get("symbol"),
            "side": data.get("side"),
            "quantity": data.get("quantity"),
            "order_type": data.get("order_type"),
            "limit_price": data.get("limit_price"),
            "stop_price": data.get("stop_price"),
            "time_in_force": data.get("time_in_force"),
            "expire_at": data.get("expire_at"),
            "venue": data.get("venue") or None,
            "short_exempt_reason": data.get("short_exempt_reason") or "",
        }

    def service_errors_add(self, details: dict | None) -> None:
        """The service's errors about the valid fields beside the form's own, so that
        every error shows in one round: none on a field the form already flagged (the
        service saw it empty), none whose check reads a flagged field (a limit price
        against an unreadable order type)."""
        rest = {}
        for field, messages in self.allocation_errors_take(details).items():
            if field in self.errors or _CHECK_READS.get(field) in self.errors:
                continue
            rest[field] = messages
        errors_to_form(self, rest)


class OrderAmendForm(forms.Form):
    quantity = forms.CharField(
        label="New quantity", max_length=24, widget=forms.TextInput(attrs={"inputmode": "numeric"})
    )
    limit_price = forms.CharField(
        label="New limit price", required=False, max_length=32, widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )

    def clean_quantity(self) -> int:
        return parse_quantity(self.cleaned_data["quantity"])

    def clean_limit_price(self) -> str | None:
        return parse_price(self.cleaned_data["limit_price"])


class ChildOrderForm(forms.Form):
    """A slice of a desk order its owner places: the parent gives account, security
    and side; the service validates the rest as for any order."""

    quantity = forms.CharField(label="Quantity", max_length=24, widget=forms.TextInput(attrs={"inputmode": "numeric"}))
    order_type = forms.ChoiceField(label="Type", choices=OrderType.choices, initial=OrderType.LIMIT)
    limit_price = forms.CharField(
        label="Limit price", required=False, max_length=32, widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    time_in_force = forms.ChoiceField(label="Time in force", choices=TimeInForce.choices, initial=TimeInForce.DAY)
    venue = forms.ChoiceField(label="Venue", required=False)

    def __init__(self, *args, venues=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["venue"].choices = [("", "Router's choice"), *((v.code, v.code) for v in venues)]

    def clean_quantity(self) -> int:
        return parse_quantity(self.cleaned_data["quantity"])

    def clean_limit_price(self) -> str | None:
        return parse_price(self.cleaned_data["limit_price"])


class OverrideRequestForm(forms.Form):
    justification = forms.CharField(
        label="Justification",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Why this order should go ahead despite the warnings"}),
    )


class BlotterFilterForm(forms.Form):
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *OrderStatus.choices])
    symbol = forms.CharField(label="Symbol", required=False, max_length=32)
    account = forms.ChoiceField(label="Account", required=False)
    created_on = forms.DateField(label="Date", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    # The order the blotter is sorted in, kept when the filters change (the view reads it).
    sort = forms.CharField(required=False, max_length=32, widget=forms.HiddenInput)

    def __init__(self, *args, accounts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = [("", "All accounts")] + [(a.code, a.code) for a in accounts]

    def filters(self) -> dict:
        """The filters that are valid (a bad one is shown with its error, not applied)."""
        self.is_valid()
        return {key: value for key, value in self.cleaned_data.items() if value and key != "sort"}


# Service field names -> form field names (the same, but the service may report on
# fields the form does not show, which then go to the top of the form).
def errors_to_form(form: forms.Form, details: dict) -> None:
    for field, messages in (details or {}).items():
        target = field if field in form.fields and field != "client_order_id" else None
        for message in messages if isinstance(messages, list) else [messages]:
            form.add_error(target, str(message))
