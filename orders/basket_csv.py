"""A basket as a trader pastes or uploads it: CSV text, one order a line, under a
header row naming the columns (in any order, any case). Pure parsing, no database:
what a line says (its cells, an order's fields shaped for ``order_check`` and
``basket_submit``) and what is wrong with its structure (a missing column, a wrong
number of cells, a quantity that is not a whole number). Whether the account, the
symbol or the venue exist, and what compliance says, is the services' answer."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from .services import BASKET_MAX_LINES

REQUIRED_COLUMNS = ("account", "symbol", "side", "quantity", "order_type", "limit_price", "time_in_force")
OPTIONAL_COLUMNS = ("venue",)
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
HEADER_EXAMPLE = ",".join(REQUIRED_COLUMNS)
# Upper-cased as traders type them in any case (the services take the codes in upper case).
UPPER_COLUMNS = frozenset({"symbol", "side", "order_type", "time_in_force"})
# Whole numbers, with or without thousands separators ("1,000" inside quotes).
QUANTITY = re.compile(r"\d+|\d{1,3}(?:,\d{3})+")
# A CSV of MAX_LINES short lines is far below this; a bigger file is not a basket.
MAX_BYTES = 2 * 1024 * 1024


class NotText(ValueError):
    """An upload that is not UTF-8 text."""


@dataclass
class BasketLine:
    """One order line: its line number in the text (the header is line 1, counting
    blank lines), its cells by column, and either the order's fields or the
    structural errors by field."""

    number: int
    cells: dict[str, str]
    order: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.errors


@dataclass
class ParsedBasket:
    """The lines, and what is wrong with the text as a whole ((line number, message):
    no header, an unknown or missing column, too many lines)."""

    columns: list[str] = field(default_factory=list)
    lines: list[BasketLine] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return bool(self.lines) and not self.errors and all(line.valid for line in self.lines)

    @property
    def invalid_lines(self) -> int:
        return sum(1 for line in self.lines if not line.valid)


def basket_text_decode(data: bytes) -> str:
    """An uploaded file's text: UTF-8, with or without a byte order mark."""
    if len(data) > MAX_BYTES:
        raise NotText(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotText(f"The file is not UTF-8 text (byte {exc.start + 1} is not valid UTF-8).") from None


def basket_csv_parse(text: str, *, max_lines: int = BASKET_MAX_LINES) -> ParsedBasket:
    """Every order line of the text with its fields or its structural errors."""
    parsed = ParsedBasket()
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        parsed.errors.append((1 + text[: text.index("\x00")].count("\n"), "The text contains a NUL character."))
        return parsed
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    last_line = 0
    try:
        for cells in reader:
            number, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            if header is None:
                header = _header(cells, number, parsed)
                if header is None:
                    return parsed
                continue
            if len(parsed.lines) == max_lines:
                parsed.errors.append((number, f"At most {max_lines:,} order lines in a basket."))
                return parsed
            parsed.lines.append(_line(cells, number, header))
    except csv.Error as exc:
        parsed.errors.append((reader.line_num or last_line + 1, f"Not readable as CSV: {exc}."))
        return parsed
    if header is None:
        parsed.errors.append((1, f"No header row: the first line names the columns ({HEADER_EXAMPLE})."))
    elif not parsed.lines:
        parsed.errors.append((last_line, "No order lines under the header."))
    return parsed


def _header(cells: list[str], number: int, parsed: ParsedBasket) -> list[str] | None:
    """The column names, or None with the header's errors in ``parsed``."""
    names = [cell.strip().lower().replace(" ", "_") for cell in cells]
    known = [name for name in names if name in COLUMNS]
    if not known:
        parsed.errors.append(
            (number, f"No header row: the first line must name the columns ({HEADER_EXAMPLE}[,venue]).")
        )
        return None
    unknown = [cell.strip() for cell, name in zip(cells, names, strict=True) if name not in COLUMNS]
    if unknown:
        parsed.errors.append(
            (number, f"Unknown column {', '.join(map(repr, unknown))}: the columns are {', '.join(COLUMNS)}.")
        )
    repeated = sorted({name for name in known if known.count(name) > 1})
    if repeated:
        parsed.errors.append((number, f"Column {', '.join(repeated)} named more than once."))
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        parsed.errors.append((number, f"Missing column {', '.join(missing)}."))
    if parsed.errors:
        return None
    parsed.columns = names
    return names


def _line(cells: list[str], number: int, header: list[str]) -> BasketLine:
    values = {name: cell.strip() for name, cell in zip(header, cells, strict=False)}
    line = BasketLine(number=number, cells=values)
    if len(cells) != len(header):
        line.errors["non_field_errors"] = [
            f"{len(cells)} cells where the header has {len(header)} columns ({', '.join(header)})."
        ]
        return line
    order: dict[str, Any] = {}
    for name in COLUMNS:
        value = values.get(name, "")
        order[name] = value.upper() if name in UPPER_COLUMNS else value
    for name in ("account", "symbol", "side", "quantity", "order_type"):
        if not order[name]:
            line.errors[name] = ["This field is required."]
    if order["quantity"]:
        if QUANTITY.fullmatch(order["quantity"]):
            order["quantity"] = int(order["quantity"].replace(",", ""))
        else:
            line.errors["quantity"] = ["Must be a whole number."]
    order["limit_price"] = order["limit_price"] or None
    order["time_in_force"] = order["time_in_force"] or "DAY"
    order["venue"] = order["venue"] or None
    if not line.errors:
        line.order = order
    return line
