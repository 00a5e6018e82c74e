"""Set-based writes for hot paths (STYLE "set-based on hot paths"): many rows in one
statement. A library module: it imports no app.

Django's ``bulk_update`` builds a CASE per field and row, and on PostgreSQL
``bulk_create`` sends every column as an array literal that psycopg quotes value by
value on the client; both cost more in Python than the statement costs the database.
These send one array per column instead (``unnest``: a statement whose text does not
grow with the rows, so psycopg parses it once per process), plain multi-row VALUES
where a column is JSON, and COPY for rows nobody needs the ids of (or, inside
``rows_batch``, a few such rows of several tables in one round trip). On other databases
(the embedded demo database) they fall back to Django's bulk methods."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import contextmanager
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from django.db import connection
from django.db.models import Model, fields
from django.db.models.fields.json import JSONField
from django.db.models.fields.related import ForeignKey

# PostgreSQL takes at most 65,535 parameters in one statement.
MAX_PARAMETERS = 60_000


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _chunks(objs: list[Model], per_row: int):
    size = max(MAX_PARAMETERS // per_row, 1)
    for start in range(0, len(objs), size):
        yield objs[start : start + size]


# Field classes whose database value is the Python value itself when it already has
# the right type (Django's preparation only converts other types), by the types taken
# as they are.
_AS_IS: tuple[tuple[type, tuple[type, ...]], ...] = (
    (fields.BooleanField, (bool,)),
    (fields.IntegerField, (int,)),  # BigInteger, PositiveInteger, Small, and the Auto fields
    (fields.CharField, (str,)),  # Slug, Email and other text
    (fields.TextField, (str,)),
    (fields.DecimalField, (Decimal,)),
)


def _field_value(field) -> Callable[[Model], Any]:
    """How ``rows_insert`` reads one field's database value from an unsaved object:
    Django's ``get_db_prep_save(pre_save(obj, add=True))`` in general, which costs
    more than the COPY itself on a wide row; for the common field types with a value
    of the expected type, the value as it is (what that preparation returns for it)."""
    attname = field.attname

    def prepared(obj):
        return field.get_db_prep_save(field.pre_save(obj, add=True), connection)

    if isinstance(field, ForeignKey):
        field = field.target_field  # the key's value is the target's (an id)
    if isinstance(field, fields.DateTimeField):
        if connection.ops.adapt_datetimefield_value(_AWARE) is not _AWARE:
            return prepared
        if field.auto_now or field.auto_now_add:  # the time now, also set on the object

            def stamped(obj):
                return field.pre_save(obj, add=True)

            return stamped

        def aware(obj):
            value = getattr(obj, attname)
            return (
                value if value is None or (type(value) is dt.datetime and value.tzinfo is not None) else prepared(obj)
            )

        return aware
    if isinstance(field, JSONField):
        adapt, encoder = connection.ops.adapt_json_value, field.encoder

        def document(obj):
            value = getattr(obj, attname)
            return None if value is None else adapt(value, encoder)

        return document
    for kind, types in _AS_IS:
        if isinstance(field, kind):

            def as_is(obj, types=types):
                value = getattr(obj, attname)
                return value if value is None or type(value) in types else prepared(obj)

            return as_is
    return prepared


_AWARE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@cache
def _row_reader(model: type[Model], keyed: bool) -> Callable[[Model], list[Any]]:
    readers = [_field_value(f) for f in model._meta.concrete_fields if keyed or not f.primary_key]
    return lambda obj: [read(obj) for read in readers]


def rows_insert(model: type[Model], objs: list[Model], *, ids: bool = True, keyed: bool = False) -> None:
    """INSERT the unsaved ``objs`` in one statement, their primary keys set from
    RETURNING in the order given; with ``ids=False`` (nobody needs them)
    by COPY, which is cheaper still; with ``keyed`` the objects carry primary keys
    reserved before, which are written as they are (by COPY)."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs)
        if keyed:
            for obj in objs:
                obj._state.adding = False
        return
    meta = model._meta
    fields = [f for f in meta.concrete_fields if keyed or not f.primary_key]
    batch = getattr(connection, "_oms_rows_batch", None)
    if batch is not None and (keyed or not ids) and len(objs) <= BATCHED_ROWS:
        row = _row_reader(model, keyed)  # read now, as COPY would: later changes are not sent
        batch.append((model, keyed, [row(obj) for obj in objs]))
        _stored_mark(objs, keyed)
        return
    if keyed or not ids:  # COPY: no statement text to build and parse, whatever the count
        columns = ", ".join(_quote(f.column) for f in fields)
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {_quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
                row = _row_reader(model, keyed)  # auto_now(_add) fields take the time, as save() does
                for obj in objs:
                    copy.write_row(row(obj))
        _stored_mark(objs, keyed)
        return
    values = _row_reader(model, False)  # auto_now(_add) fields take the time, as save() does
    if _arrays_fit(fields):  # one array per column: a short statement, parsed once per process
        rows = [values(obj) for obj in objs]
        columns = ", ".join(_quote(f.column) for f in fields)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_quote(meta.db_table)} ({columns}) SELECT * FROM {_unnest(fields)} "
                f"RETURNING {_quote(meta.pk.column)}",
                [list(column) for column in zip(*rows, strict=True)],
            )
            _ids_set(objs, cursor.fetchall())
        return
    for chunk in _chunks(objs, len(fields)):
        params: list[Any] = []
        for obj in chunk:
            params.extend(values(obj))
        with connection.cursor() as cursor:
            cursor.execute(f"{_values_insert(model, False, len(chunk))} RETURNING {_quote(meta.pk.column)}", params)
            _ids_set(chunk, cursor.fetchall())


def _stored_mark(objs: list[Model], keyed: bool) -> None:
    if keyed:
        for obj in objs:
            obj._state.adding = False
            obj._state.db = connection.alias


# A batch takes the inserts of at most this many rows; more go by COPY at once.
BATCHED_ROWS = 20


@contextmanager
def rows_batch():
    """Send the inserts ``rows_insert`` is asked for in the block (those of rows
    nobody needs ids back for: ``ids=False`` or ``keyed``, a few rows each) together,
    in one round trip when the block ends, instead of one COPY (two round trips)
    each: what one order's submission writes. PostgreSQL only (elsewhere they go as
    they come). Django's foreign keys on PostgreSQL are checked at commit
    (DEFERRABLE INITIALLY DEFERRED), so the order of the inserts does not matter;
    nothing in the block may read the rows back. A block that raises sends nothing
    (its transaction is rolled back)."""
    if connection.vendor != "postgresql" or getattr(connection, "_oms_rows_batch", None) is not None:
        yield
        return
    connection._oms_rows_batch = []
    try:
        yield
        rows_batch_send()
    finally:
        connection._oms_rows_batch = None


def rows_batch_send() -> None:
    """Send what the enclosing ``rows_batch`` holds now: before a write that does not
    go through it, where the order of the rows matters (the audit trail's)."""
    batch = getattr(connection, "_oms_rows_batch", None)
    if not batch:
        return
    statements: list[str] = []
    params: list[Any] = []
    for model, keyed, rows in batch:
        statements.append(_values_insert(model, keyed, len(rows)))
        for row in rows:
            params.extend(row)
    batch.clear()
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(statements), params)


@lru_cache(maxsize=256)  # one statement per model and row count: few for batches, more for chunks
def _values_insert(model: type[Model], keyed: bool, count: int) -> str:
    fields = [f for f in model._meta.concrete_fields if keyed or not f.primary_key]
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return (
        f"INSERT INTO {_quote(model._meta.db_table)} ({', '.join(_quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([placeholders] * count)}"
    )


def _ids_set(objs: list[Model], rows: list[tuple]) -> None:
    for obj, (pk,) in zip(objs, rows, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias


def _arrays_fit(fields) -> bool:
    """Whether the columns can travel as one array parameter each (``unnest``): every
    type but JSON, whose values psycopg would have to nest in an array literal."""
    return not any(isinstance(f, JSONField) for f in fields)


def _unnest(fields) -> str:
    return "unnest(" + ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields) + ")"


def rows_update(model: type[Model], objs: list[Model], fields: list[str]) -> None:
    """UPDATE ``fields`` of many saved rows in one statement: UPDATE ... FROM unnest of
    one array per column (a statement whose text does not grow with the rows, so psycopg
    parses it once per process rather than once per batch), or FROM VALUES for JSON."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objs, fields)
        return
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    pk = meta.pk
    names = ", ".join(_quote(field.column) for field in columns)
    assignments = ", ".join(f"{_quote(field.column)} = v.{_quote(field.column)}" for field in columns)
    target = f"UPDATE {_quote(meta.db_table)} AS t SET {assignments} FROM"
    match = f"AS v({_quote(pk.column)}, {names}) WHERE t.{_quote(pk.column)} = v.{_quote(pk.column)}"
    if _arrays_fit(columns):  # one array per column: a short statement, parsed once per process
        params = [[pk.get_db_prep_save(obj.pk, connection) for obj in objs]]
        params += [[f.get_db_prep_save(getattr(obj, f.attname), connection) for obj in objs] for f in columns]
        with connection.cursor() as cursor:
            cursor.execute(f"{target} {_unnest([pk, *columns])} {match}", params)
        return
    row = "(" + ", ".join([f"%s::{pk.db_type(connection)}", *(f"%s::{f.db_type(connection)}" for f in columns)]) + ")"
    for chunk in _chunks(objs, len(columns) + 1):
        params = []
        for obj in chunk:
            params.append(pk.get_db_prep_save(obj.pk, connection))
            params.extend(field.get_db_prep_save(getattr(obj, field.attname), connection) for field in columns)
        with connection.cursor() as cursor:
            cursor.execute(f"{target} (VALUES {', '.join([row] * len(chunk))}) {match}", params)
