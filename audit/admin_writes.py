"""Auditing what operators change through the Django admin, as the services audit the API's changes.

The admin's add, change and delete views each run in one transaction, and the events are written in
it: a form that does not validate writes nothing, and a save that fails takes its events with it. The
changelist's "delete selected" action is not atomic by itself; `delete_queryset` makes it so here.

Admins whose writes go through a service (schedules, the webhook and credential deletions, every
workflow and run action) leave the recording to the service; this mixin is for the writes that have
none, because the admin offers more than the API does (editing users and memberships directly).
"""

from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.db import models, transaction

from audit.services import audit_record_many, diff


def field_state(obj: models.Model, names: Sequence[str]) -> dict:
    """{name: value} of model fields as the audit trail compares them: a foreign key as its id, a
    many-to-many field as the sorted names of what it holds."""
    state = {}
    for name in names:
        field = obj._meta.get_field(name)
        if field.many_to_many:
            state[name] = sorted(str(item) for item in getattr(obj, name).all()) if obj.pk is not None else []
        else:
            state[name] = field.value_from_object(obj)
    return state


class AuditedAdminMixin:
    """Records `<audit_prefix>.created`, `.updated` and `.deleted` for a ModelAdmin's writes.

    `changes` is the diff of `audit_fields` (a value in `audit_secret_fields` shows only as "***"); the
    actor is the operator, and the request gives the address, user agent and request id. Rows that an
    inline edits and that have events of their own (memberships, nodes) come in through
    `audit_related_state`, a snapshot taken before and after the save, and `audit_related_records`.
    """

    audit_prefix = ""
    audit_target_type = ""  # empty: the model's name
    audit_fields: Sequence[str] = ()
    audit_secret_fields: Sequence[str] = ()

    # --- what an admin says about its model -------------------------------------------------------

    def audit_state(self, obj) -> Any:
        return field_state(obj, self.audit_fields)

    def audit_workspace(self, obj):
        """The workspace an event belongs to, if any."""
        return None

    def audit_related_state(self, obj) -> Any:
        """A snapshot of what the inlines edit that has events of its own; None: nothing."""
        return None

    def audit_related_records(self, obj, before: Any, after: Any) -> list[dict]:
        """Records for the difference between two `audit_related_state` snapshots (before is None when
        `obj` is new)."""
        return []

    def related_saved(self, request, obj, change: bool) -> None:
        """Work that follows the inlines' saves and is part of the audited change (a new version)."""

    # --- the records ------------------------------------------------------------------------------

    def _target(self, obj) -> dict:
        return {"target": obj, "target_type": self.audit_target_type}

    def audit_saved_records(self, obj, before: Any) -> list[dict]:
        """`.created` (before is None) or `.updated` if an audited field changed."""
        changes = diff(before or {}, self.audit_state(obj), secret_fields=self.audit_secret_fields)
        if not self.audit_prefix or (before is not None and not changes):
            return []
        action = f"{self.audit_prefix}.{'created' if before is None else 'updated'}"
        return [{"action": action, "workspace": self.audit_workspace(obj), **self._target(obj), "changes": changes}]

    def audit_deleted_records(self, obj) -> list[dict]:
        """Built before the deletion, while `obj` still has its id."""
        changes = diff(self.audit_state(obj), {}, secret_fields=self.audit_secret_fields)
        action = f"{self.audit_prefix}.deleted"
        return [{"action": action, "workspace": self.audit_workspace(obj), **self._target(obj), "changes": changes}]

    def audit_change(self, request, obj, before: Any) -> None:
        """Record a change made outside the change form (an action) against the state read before it."""
        audit_record_many(records=self.audit_saved_records(obj, before), actor=request.user, request=request)

    # --- ModelAdmin hooks -------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        # The stored row, locked until the change view's transaction ends: a concurrent write (the API's)
        # queues behind this one instead of slipping in between the snapshot and the save.
        stored = type(obj)._base_manager.select_for_update().filter(pk=obj.pk).first() if change else None
        form.audit_before = (
            None if stored is None else self.audit_state(stored),
            None if stored is None else self.audit_related_state(stored),
        )
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        self.related_saved(request, obj, change)
        before, related_before = getattr(form, "audit_before", (None, None))
        records = [
            *self.audit_saved_records(obj, before),
            *self.audit_related_records(obj, related_before, self.audit_related_state(obj)),
        ]
        audit_record_many(records=records, actor=request.user, request=request)

    def delete_model(self, request, obj):
        audit_record_many(records=self.audit_deleted_records(obj), actor=request.user, request=request)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        # One event per object, written with the deletion or not at all.
        with transaction.atomic():
            records = [record for obj in queryset for record in self.audit_deleted_records(obj)]
            audit_record_many(records=records, actor=request.user, request=request)
            super().delete_queryset(request, queryset)


class ServiceDeleteAdminMixin:
    """For a ModelAdmin whose deletes must go through the model's delete service (which checks roles and
    audits): the delete page calls it, and the changelist's "delete selected" action calls it for each
    object, all in one transaction (the action is not atomic by itself). Put it before
    AuditedAdminMixin, whose own recording the service replaces."""

    delete_select_related: Sequence[str] = ()  # what the service reads of each object

    def delete_through_service(self, request, obj) -> None:
        raise NotImplementedError(f"{type(self).__name__} must say which service deletes its objects")

    def delete_model(self, request, obj):
        self.delete_through_service(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset.select_related(*self.delete_select_related):
                self.delete_through_service(request, obj)


class ReadOnlyAdminMixin:
    """For a ModelAdmin of records written by the engine: browsing only, no add, change or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def register_read_only(*models) -> None:
    """Re-register models whose admin another package provides (django-celery-beat, simplejwt's
    blacklist) for browsing only: a write there would bypass our services and the audit trail (a
    PeriodicTask edited by hand no longer follows its Schedule; a deleted blacklist entry revives a
    revoked session). Their own actions go too; their list, filters and search stay."""
    for model in models:
        try:
            base = type(admin.site.get_model_admin(model))
            admin.site.unregister(model)
        except admin.sites.NotRegistered:
            base = admin.ModelAdmin
        read_only = type(
            f"ReadOnly{base.__name__}", (ReadOnlyAdminMixin, base), {"actions": (), "__module__": __name__}
        )
        admin.site.register(model, read_only)
