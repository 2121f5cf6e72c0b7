"""Conditions that several apps put in front of one write statement, so that a change that needs a
permission check, an audit event and its own rows costs one round trip to PostgreSQL.

A `Gate` is a run of common table expressions and the name of the one among them that yields a row
when the writes may go ahead: the caller's role in a workspace (`accounts.access.role_gate`), then
the audit chain's append (`audit.services.audit_gate`), which happens only behind an open role gate.
`workflows.engine.prepared.insert_together` puts a gate before its inserts. Behind a closed gate
nothing at all is written, and insert_together raises GateClosed; the caller then takes its
ordinary path, whose separate checks say what was wrong.
"""

from typing import NamedTuple


class Gate(NamedTuple):
    ctes: str  # "name AS (...), ...": later ones may refer to earlier ones
    params: tuple  # their parameters, in order
    name: str  # the CTE that yields a row when the writes may happen


class GateClosed(Exception):
    """A gated statement wrote nothing: a condition of its gate did not hold."""
