"""The engine's hot statements, built by the ORM once per process instead of on every call.

Building a statement costs more than running it on a warm connection (0.5 ms against 0.4 ms for the
run lock of `scheduler.locked_run`), and the engine runs several per step: reading the run and its
steps, saving a step, appending events and updating the run. The SQL still comes from the ORM (or
from the model's fields); only the values change between calls, and PostgreSQL keeps the statement
prepared (see DATABASE_PREPARED_STATEMENTS).
"""

import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, models
from psycopg import _queries

from config.gates import Gate, GateClosed

# psycopg parses a query's %s placeholders again on every call when the query has more than 50
# parameters or 4 KB (it caches the rest). A run's start (run_trigger) has about 70 and its text
# never changes: parsing it was a tenth of the call's CPU.
_queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, 100)
_queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, 8192)

# Stands for the varying value while the queryset is compiled; found again among the parameters.
_MARKER = uuid.UUID("00000000-0000-4000-8000-00000000d0c5")


class PreparedQuery:
    """`PreparedQuery(lambda value: Model.objects.filter(pk=value))(an_id)` runs that query for `an_id`.

    `build` must use its argument exactly once, as a UUID compared with a UUID column, and select
    the model's rows whole (annotations may follow). Returns the model instances, with annotations
    set as attributes, as iterating the queryset would.
    """

    def __init__(self, build: Callable[[uuid.UUID], models.QuerySet]):
        self._build = build
        self._lock = threading.Lock()
        self._compiled: tuple[type[models.Model], str, tuple, int] | None = None
        self._plan: _ResultPlan | None = None

    def _compile(self) -> tuple[type[models.Model], str, tuple, int]:
        queryset = self._build(_MARKER)
        sql, params = queryset.query.sql_with_params()
        found = [index for index, param in enumerate(params) if param in (_MARKER, _MARKER.hex, str(_MARKER))]
        if len(found) != 1:
            raise ValueError(f"the query must use its value exactly once, not {len(found)} times")
        return queryset.model, sql, tuple(params), found[0]

    def __call__(self, value: uuid.UUID | str) -> list[models.Model]:
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = self._compile()
        model, sql, params, index = self._compiled
        bound = list(params)
        bound[index] = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        with connection.cursor() as cursor:
            cursor.execute(sql, bound)
            rows = cursor.fetchall()
            if self._plan is None:
                self._plan = _ResultPlan(model, [column.name for column in cursor.description])
        return [self._plan.instance(row) for row in rows]


class _ResultPlan:
    """How a result row of a PreparedQuery becomes an instance, worked out once from its columns."""

    def __init__(self, model: type[models.Model], names: list[str]):
        fields = model._meta.concrete_fields
        if [field.column for field in fields] != names[: len(fields)]:
            raise ValueError("the query must select the model's fields, in order, before any annotation")
        self.model = model
        self.attnames = [field.attname for field in fields]
        self.annotations = names[len(fields) :]
        # (position, converter, expression) for the columns whose database value needs converting.
        self.converters = []
        for position, field in enumerate(fields):
            expression = field.get_col(model._meta.db_table)
            for converter in connection.ops.get_db_converters(expression) + expression.get_db_converters(connection):
                self.converters.append((position, converter, expression))

    def instance(self, row: tuple) -> models.Model:
        values = list(row)
        for position, converter, expression in self.converters:
            values[position] = converter(values[position], expression, connection)
        field_count = len(self.attnames)
        instance = self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, values[:field_count])
        for name, annotation in zip(self.annotations, values[field_count:], strict=True):
            setattr(instance, name, annotation)
        return instance


@lru_cache(maxsize=64)
def _update_sql(model: type[models.Model], names: tuple[str, ...]) -> tuple[str, tuple[models.Field, ...]]:
    quote = connection.ops.quote_name
    fields = tuple(model._meta.get_field(name) for name in names)
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    pk = quote(model._meta.pk.column)
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {pk} = %s", fields  # noqa: S608


def save_fields(instance: models.Model, names: Iterable[str]) -> None:
    """`instance.save(update_fields=names)` for models without save signals, as one prepared UPDATE.

    Raises DatabaseError when no row was updated, as save() does.
    """
    sql, fields = _update_sql(type(instance), tuple(sorted(names)))
    params = [field.get_db_prep_save(getattr(instance, field.attname), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, instance.pk])
        if cursor.rowcount != 1:
            raise DatabaseError(f"{type(instance).__name__} {instance.pk} did not update one row.")


@lru_cache(maxsize=16)
def _update_many_sql(model: type[models.Model], names: tuple[str, ...]) -> tuple[str, tuple[models.Field, ...]]:
    quote = connection.ops.quote_name
    fields = (model._meta.pk, *(model._meta.get_field(name) for name in names))
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
    aliases = ", ".join(f"value_{index}" for index in range(len(fields)))
    assignments = ", ".join(f"{quote(field.column)} = rows.value_{index}" for index, field in enumerate(fields[1:], 1))
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    rows = f"unnest({arrays}) AS rows({aliases})"
    return f"UPDATE {table} SET {assignments} FROM {rows} WHERE {table}.{pk} = rows.value_0", fields  # noqa: S608


def save_fields_many(changes: Sequence[tuple[models.Model, set[str]]]) -> None:
    """save_fields for several instances: one UPDATE for all those of a model whose fields are the
    same (arrays unnested, so that the statement stays prepared whatever their number).

    Raises DatabaseError when a row was not updated, as save_fields does.
    """
    groups: dict[tuple, list[models.Model]] = {}
    for instance, names in changes:
        groups.setdefault((type(instance), tuple(sorted(names))), []).append(instance)
    for (model, names), instances in groups.items():
        if len(instances) == 1:
            for instance in instances:
                save_fields(instance, names)
            continue
        sql, fields = _update_many_sql(model, names)
        columns = [
            [field.get_db_prep_save(getattr(instance, field.attname), connection) for instance in instances]
            for field in fields
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, columns)
            if cursor.rowcount != len(instances):
                raise DatabaseError(
                    f"{len(instances) - cursor.rowcount} of {len(instances)} {model.__name__} rows did not update."
                )


@lru_cache(maxsize=32)
def _insert_sql(model: type[models.Model], many: bool, gate: str | None) -> tuple[str, tuple[models.Field, ...]]:
    quote = connection.ops.quote_name
    fields = tuple(field for field in model._meta.concrete_fields if not isinstance(field, models.AutoField))
    columns = ", ".join(quote(field.column) for field in fields)
    if many:
        arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
        rows = f"unnest({arrays}) AS rows"
        source = f"SELECT rows.* FROM {gate}, {rows}" if gate else f"SELECT * FROM {rows}"  # noqa: S608 - types only
    elif gate:
        # Unlike VALUES, a SELECT list does not take its types from the columns: each value is cast.
        values = ", ".join(f"%s::{field.db_type(connection)}" for field in fields)
        source = f"SELECT {values} FROM {gate}"  # noqa: S608 - column types and a CTE's name only
    else:
        source = "VALUES ({})".format(", ".join(["%s"] * len(fields)))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) {source}", fields


def _insert(model: type[models.Model], instances: Sequence[models.Model], gate: str | None = None) -> tuple[str, list]:
    """The INSERT statement for `instances` (at least one) and its parameters; with `gate`, it selects
    them from that CTE's row, so that it inserts nothing when the CTE yields none."""
    many = len(instances) > 1
    sql, fields = _insert_sql(model, many, gate)
    rows = [
        [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
        for instance in instances
    ]
    return sql, [list(column) for column in zip(*rows, strict=True)] if many else rows[0]


def insert_rows(model: type[models.Model], instances: Sequence[models.Model]) -> None:
    """`Model.objects.bulk_create(instances)` with a statement whose text does not depend on how many
    there are (one row, or arrays unnested), so that it stays prepared.

    Unlike bulk_create, an auto-increment primary key is not read back: the instances keep none.
    """
    if not instances:
        return
    with connection.cursor() as cursor:
        cursor.execute(*_insert(model, instances))


def insert_together(
    groups: Sequence[tuple[type[models.Model], Sequence[models.Model]]], *, gate: Gate | None = None
) -> None:
    """insert_rows for several models in one statement, in one round trip: a run with its steps and events.

    Foreign keys between the rows are checked at commit (Django makes them deferrable on PostgreSQL),
    so the groups may refer to each other in any order. Empty groups are left out.

    With a `gate` (see config.gates), its CTEs come first and the rows are inserted
    only when it is open; when it is closed nothing is, and GateClosed is raised.
    """
    groups = [(model, instances) for model, instances in groups if instances]
    if gate is None and len(groups) < 2:
        for model, instances in groups:
            insert_rows(model, instances)
        return
    name = gate.name if gate else None
    *first, last = [_insert(model, instances, name) for model, instances in groups]
    ctes = [*([gate.ctes] if gate else []), *(f"inserted_{index} AS ({sql})" for index, (sql, _) in enumerate(first))]
    params = [*(gate.params if gate else ()), *(param for _, params in [*first, last] for param in params)]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} {last[0]}", params)
        if gate is not None and cursor.rowcount == 0:
            raise GateClosed
