"""Reads compiled once per process (STYLE "set-based on hot paths"). A library module:
it imports no app.

Building a queryset and compiling it to SQL costs more in Python than PostgreSQL takes
to run the small indexed reads of the submit path: a dozen such reads were about a
third of a single order's CPU. A ``PreparedRead`` is such a read written as an
ordinary queryset, built and compiled by the ORM once per process and database vendor
(so the embedded SQLite database gets its own SQL), then sent again with new
parameter values, its results converted by the ORM's own converters.

Where each parameter goes is found, not guessed: the read is compiled with the sample
values, then once per parameter with a different value, and the positions that
change are that parameter's. A read whose text changes with a value (an ``__in``
list), or whose parameters are not the value as the ORM sends it (``__contains``, a
value computed from a parameter), is refused when first compiled, not sent wrong. A
list parameter (for ``__in``; its sample is a one-item list) is compiled once per
length seen, its items deduplicated as the ORM does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable, ValuesListIterable
from django.db.transaction import TransactionManagementError
from psycopg import _queries as psycopg_queries

# psycopg keeps how it parsed a statement's placeholders only for statements of at most
# 4 KB and 50 parameters (its ``_queries`` module); the reads sent together here and
# one order's rows sent together by ``oms_site.db.rows_batch`` are longer, and parsing
# them again on every call was a sixth of a submission's Python. Its cache holds 128
# statements, least recently used first out.
psycopg_queries.MAX_CACHED_STATEMENT_LENGTH = max(psycopg_queries.MAX_CACHED_STATEMENT_LENGTH, 64 * 1024)
psycopg_queries.MAX_CACHED_STATEMENT_PARAMS = max(psycopg_queries.MAX_CACHED_STATEMENT_PARAMS, 1000)


def _adapt(value: Any) -> Any:
    """A parameter as the ORM sends it in a lookup on a field of its type."""
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, dt.date):
        return connection.ops.adapt_datefield_value(value)
    if isinstance(value, Decimal):
        return connection.ops.adapt_decimalfield_value(value)
    return value


def _other(value: Any) -> Any:
    """A different value of the same type, to find where a parameter goes."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | Decimal):
        return value + 1
    if isinstance(value, str):
        return value + "~"
    if isinstance(value, dt.datetime):
        return value + dt.timedelta(seconds=1)
    if isinstance(value, dt.date):
        return value + dt.timedelta(days=1)
    raise ImproperlyConfigured(f"A prepared read takes int, str, bool, Decimal, date or datetime, not {type(value)}.")


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple
    slots: dict[tuple[str, int | None], tuple[int, ...]]  # (name, list index) -> positions
    converters: dict[int, tuple[list, Any]]
    model: type[Model] | None  # for a read of model instances: the model, and its attnames
    field_names: list[str] | None
    locks: bool  # SELECT ... FOR UPDATE: only inside a transaction, as the ORM insists


class PreparedRead:
    """A read of value tuples (``build`` returns a ``values_list`` queryset) or of
    model instances (``build`` returns a plain queryset of one model: no
    ``select_related``, no deferred fields), its parameters named by the keyword
    arguments of ``build``, with one sample value each. The arguments named in
    ``shape`` change the statement itself (a side's list of opposite sides, whether
    a price is NULL): the read is compiled once per value of them seen, and a
    parameter a shape does not use is ignored in it."""

    def __init__(self, build: Callable[..., QuerySet], *, shape: tuple[str, ...] = (), **samples: Any):
        self._build = build
        self._shape = shape
        self._samples = samples
        self._compiled: dict[tuple, _Compiled] = {}

    def rows(self, **arguments: Any) -> list[tuple]:
        """The result rows as ``values_list`` gives them."""
        return self._read(arguments, models=False)

    def models(self, **arguments: Any) -> list[Model]:
        """The result rows as model instances, as the queryset would give them."""
        return self._read(arguments, models=True)

    def _read(self, arguments: dict[str, Any], *, models: bool) -> list:
        if (self._compiled_for(dict(arguments))[0].model is not None) != models:
            raise ImproperlyConfigured(
                "This read gives model instances: use models()."
                if not models
                else "This read gives value tuples: use rows()."
            )
        return reads_together((self, arguments))[0]

    def _statement(self, arguments: dict[str, Any]) -> tuple[_Compiled, list[Any]]:
        compiled, params = self._compiled_for(dict(arguments))
        if compiled.locks and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        values = list(compiled.params)
        for (name, index), positions in compiled.slots.items():
            adapted = _adapt(params[name] if index is None else params[name][index])
            for position in positions:
                values[position] = adapted
        return compiled, values

    def _result(self, compiled: _Compiled, rows: list[tuple]) -> list:
        if compiled.converters:
            rows = [self._convert(row, compiled.converters) for row in rows]
        if compiled.model is None:
            return rows
        model, alias = compiled.model, connection.alias
        return [model.from_db(alias, compiled.field_names, row) for row in rows]

    @staticmethod
    def _convert(row: tuple, converters: dict[int, tuple[list, Any]]) -> tuple:
        row = list(row)
        for position, (functions, expression) in converters.items():
            value = row[position]
            for function in functions:
                value = function(value, expression, connection)
            row[position] = value
        return tuple(row)

    def _compiled_for(self, arguments: dict[str, Any]) -> tuple[_Compiled, dict[str, Any]]:
        shape = {name: arguments.pop(name) for name in self._shape if name in arguments}
        if len(shape) != len(self._shape) or arguments.keys() != self._samples.keys():
            raise TypeError(
                f"A prepared read takes {sorted([*self._shape, *self._samples])}, given {sorted(arguments)}."
            )
        lengths = []
        for name, sample in self._samples.items():
            if isinstance(sample, list):
                arguments[name] = items = list(dict.fromkeys(arguments[name]))
                if not items:
                    raise ValueError(f"List parameter {name!r} of a prepared read is empty: the read matches nothing.")
                lengths.append(len(items))
        key = (connection.vendor, *shape.values(), *lengths)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(shape, arguments)
        return compiled, arguments

    def _queryset(self, values: dict[str, Any]) -> tuple[QuerySet, type[Model] | None, list[str] | None]:
        queryset = self._build(**values)
        if queryset._iterable_class is ModelIterable:
            if queryset.query.select_related or queryset.query.deferred_loading != (frozenset(), True):
                raise ImproperlyConfigured("A prepared read of models reads every field of one model.")
            field_names = [field.attname for field in queryset.model._meta.concrete_fields]
            return queryset.values_list(*field_names), queryset.model, field_names
        if queryset._iterable_class is not ValuesListIterable:
            raise ImproperlyConfigured("A prepared read is a values_list queryset or a queryset of models.")
        return queryset, None, None

    def _sql(self, values: dict[str, Any]):
        queryset, model, field_names = self._queryset(values)
        query = queryset.query
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        if list(queryset._fields or names) != names:
            raise ImproperlyConfigured("A prepared read gives its columns in the order the query selects them.")
        compiler = query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        return sql, tuple(params), compiler, model, field_names

    def _compile(self, shape: dict[str, Any], arguments: dict[str, Any]) -> _Compiled:
        # Distinct sample values: one per item of a list as long as the one given,
        # and one more for each, to vary it by.
        samples: dict[str, Any] = {}
        variants: dict[tuple[str, int | None], tuple[Any, Any]] = {}
        for name, sample in self._samples.items():
            if isinstance(sample, list):
                items = [sample[0]]
                while len(items) <= len(arguments[name]):
                    items.append(_other(items[-1]))
                samples[name] = items[:-1]
                for index in range(len(items) - 1):
                    variants[(name, index)] = (items[index], items[-1])
            else:
                samples[name] = sample
                variants[(name, None)] = (sample, _other(sample))
        sql, params, compiler, model, field_names = self._sql({**shape, **samples})
        slots: dict[tuple[str, int | None], tuple[int, ...]] = {}
        for (name, index), (sample, other) in variants.items():
            varied = other if index is None else [*samples[name][:index], other, *samples[name][index + 1 :]]
            other_sql, other_params, *_ = self._sql({**shape, **samples, name: varied})
            if other_sql != sql or len(other_params) != len(params):
                raise ImproperlyConfigured(f"Parameter {name!r} of a prepared read changes the statement's text.")
            changed = tuple(i for i, (a, b) in enumerate(zip(params, other_params, strict=True)) if a != b)
            exact = all(params[i] == _adapt(sample) and other_params[i] == _adapt(other) for i in changed)
            if not exact or (index is not None and not changed):
                raise ImproperlyConfigured(f"Parameter {name!r} of a prepared read is not sent as it is given.")
            slots[(name, index)] = changed
        columns = [selected[0] for selected in compiler.select[: compiler.col_count]]
        return _Compiled(
            sql=sql,
            params=params,
            slots=slots,
            converters=compiler.get_converters(columns),
            model=model,
            field_names=field_names,
            locks=bool(compiler.query.select_for_update),
        )


@dataclass(frozen=True)
class RawRead:
    """A statement of the caller's own (``%s`` placeholders), to send with prepared
    reads; its rows as the cursor gives them."""

    sql: str
    params: tuple = ()


def reads_together(*reads: tuple[PreparedRead, dict[str, Any]] | RawRead) -> list[list]:
    """Several reads (each a prepared read with its arguments, or a ``RawRead``) in
    one round trip on PostgreSQL, run in the order given: one execute of their
    statements, each result as ``rows()`` or ``models()`` of that read gives it.
    Elsewhere one after the other."""
    if not reads:
        return []
    statements: list[tuple[str, list[Any], Callable[[list[tuple]], list]]] = []
    for read in reads:
        if isinstance(read, RawRead):
            statements.append((read.sql, list(read.params), list))
        else:
            prepared, arguments = read
            compiled, values = prepared._statement(arguments)
            statements.append((compiled.sql, values, partial(prepared._result, compiled)))
    results: list[list] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(statements) > 1:
            cursor.execute(
                ";\n".join(sql for sql, _, _ in statements), [value for _, values, _ in statements for value in values]
            )
            for index, (_, _, result) in enumerate(statements):
                if index:
                    cursor.nextset()
                results.append(result(cursor.fetchall()))
            return results
        for sql, values, result in statements:
            cursor.execute(sql, values)
            results.append(result(cursor.fetchall()))
    return results
