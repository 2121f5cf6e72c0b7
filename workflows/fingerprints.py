"""Digests of what the API's displays are made of: a workflow (its row, its creator's email, its
tags, nodes and edges), a workflow's list row (the same, with the number of nodes for the graph), a
run (its row, its version's number, its creator's email, its steps). No two states of those rows share
a digest, so a display cached under one (workflows.api.displays) needs no invalidating: any change, by
any path (the API, the admin, a bulk action, the engine, a migration), is a different digest.

PostgreSQL computes each from the rows' text, where it costs microseconds, in the query that also
authorizes the read: reading a digest asks the caller's access every time, as the uncached read did.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from django.db import connection, transaction
from django.db.models import Model, QuerySet
from django.db.models.expressions import RawSQL
from django.http import Http404

from accounts.access import Role, ensure_role
from accounts.models import Membership, User, Workspace
from workflows.models import Edge, Node, Run, StepRun, Workflow, WorkflowTag, WorkflowVersion

# The 404s of an unknown id and of one the caller may not see, alike (workflows.selectors uses them too).
NO_SUCH_WORKFLOW = "No such workflow."
NO_SUCH_RUN = "No such run."


def workflow_fingerprint(user: User, workflow_id) -> str:
    """The digest of the workflow's display, if `user` may read it: Http404 as workflows.selectors.workflow_get."""
    return _authorized_digest(user, Workflow, workflow_id, NO_SUCH_WORKFLOW)


def run_fingerprint(user: User, run_id) -> str:
    """The digest of the run's display, if `user` may read it: Http404 as workflows.selectors.run_get."""
    return _authorized_digest(user, Run, run_id, NO_SUCH_RUN)


def with_row_fingerprint(workflows: QuerySet[Workflow]) -> QuerySet[Workflow]:
    """Each workflow with `row_fingerprint`, the digest of its list row (not authorized: for a query of
    the caller's workflows)."""
    table = connection.ops.quote_name(Workflow._meta.db_table)
    digest = RawSQL(workflow_digest_sql(table, graph=False), ())  # noqa: S611 - names from the models
    return workflows.annotate(row_fingerprint=digest)


@contextmanager
def one_snapshot() -> Iterator[None]:
    """Reads inside see one state of the database (REPEATABLE READ), not each a newer one: a display
    and its digest read inside are of the same state. Inside a transaction already begun (the
    tests'), its own rules apply."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


# --- the digests, as SQL -------------------------------------------------------------------------


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _column(model: type[Model], field: str) -> str:
    return _quote(model._meta.get_field(field).column)


def _rows_of(model: type[Model], owner_field: str, owner: str) -> str:
    """Every row of `model` whose `owner_field` is the row `owner`, as text, in a stable order."""
    return (
        f"(SELECT string_agg(x::text, '|' ORDER BY x.id) FROM {_quote(model._meta.db_table)} x "  # noqa: S608
        f"WHERE x.{_column(model, owner_field)} = {owner}.id)"
    )


def _value_of(model: type[Model], field: str, key: str) -> str:
    return f"(SELECT {_column(model, field)} FROM {_quote(model._meta.db_table)} WHERE id = {key})"  # noqa: S608


def _digest(parts: list[str]) -> str:
    return f"md5(concat_ws('|', {', '.join(parts)}))"


def workflow_digest_sql(workflow: str, *, graph: bool = True) -> str:
    """The digest of the workflow row named `workflow` in the query it goes in; without the `graph`,
    of its list row (the number of nodes in place of the nodes and edges)."""
    creator = _value_of(User, "email", f"{workflow}.{_column(Workflow, 'created_by')}")
    node_count = (
        f"(SELECT count(*) FROM {_quote(Node._meta.db_table)} "  # noqa: S608 - names from the models
        f"WHERE {_column(Node, 'workflow')} = {workflow}.id)"
    )
    nodes = [_rows_of(Node, "workflow", workflow), _rows_of(Edge, "workflow", workflow)] if graph else [node_count]
    return _digest([f"{workflow}::text", creator, _rows_of(WorkflowTag, "workflow", workflow), *nodes])


def run_digest_sql(run: str) -> str:
    """The digest of the run row named `run` in the query it goes in."""
    version = _value_of(WorkflowVersion, "number", f"{run}.{_column(Run, 'version')}")
    creator = _value_of(User, "email", f"{run}.{_column(Run, 'created_by')}")
    return _digest([f"{run}::text", version, creator, _rows_of(StepRun, "run", run)])


# --- reading one, authorized ---------------------------------------------------------------------


def _authorized_digest(user: User, model: type[Workflow | Run], object_id, not_found: str) -> str:
    try:
        pk = uuid.UUID(str(object_id))
    except ValueError as error:
        raise Http404(not_found) from error
    sql, workspace_fields = _authorized_digest_sql(model)
    with connection.cursor() as cursor:
        cursor.execute(sql, [user.pk, pk])
        row = cursor.fetchone()
    if row is None:
        raise Http404(not_found)
    *workspace_values, membership_role, deleted, digest = row
    if deleted:
        raise Http404(not_found)
    workspace = Workspace.from_db(connection.alias, workspace_fields, workspace_values)
    ensure_role(user, workspace, Role.VIEWER, not_found=not_found, membership_role=membership_role)
    return digest


@cache
def _authorized_digest_sql(model: type[Workflow | Run]) -> tuple[str, list[str]]:
    """The object's workspace and the caller's role there (what ensure_role needs), whether it is
    deleted, and its digest, in one query. Every display asks: built once per process, names from
    the models."""
    workspace_fields = Workspace._meta.concrete_fields
    columns = ", ".join(f"ws.{_quote(field.column)}" for field in workspace_fields)
    deleted = f"o.{_column(Workflow, 'deleted_at')} IS NOT NULL" if model is Workflow else "false"
    digest = workflow_digest_sql("o") if model is Workflow else run_digest_sql("o")
    role = (
        f"(SELECT {_column(Membership, 'role')} FROM {_quote(Membership._meta.db_table)} "  # noqa: S608
        f"WHERE {_column(Membership, 'workspace')} = ws.id AND {_column(Membership, 'user')} = %s)"
    )
    sql = (
        f"SELECT {columns}, {role}, {deleted}, {digest} FROM {_quote(model._meta.db_table)} o "  # noqa: S608
        f"JOIN {_quote(Workspace._meta.db_table)} ws ON ws.id = o.{_column(model, 'workspace')} WHERE o.id = %s"
    )
    return sql, [field.attname for field in workspace_fields]
