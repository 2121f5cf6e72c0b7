"""One kind of workspace object created, changed and deleted with its audit event in the same
transaction (budgets, reports, notification templates and channels share it)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from audit.services import AnyRequest, audit_record, diff

M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class AuditedChanges(Generic[M]):
    """Create, change and delete one kind of workspace object (it has a `workspace`), each change in one
    transaction with its audit event (`<action_prefix>.created|updated|deleted`, its changes a diff of
    `snapshot`). The services check roles and bodies first; this is what they then share.

    The objects' names are unique in their scope: the database's refusal becomes a ValidationError on
    `name` saying `name_taken`. `check`, if given, raises ValidationError for what the object may not
    be once the body is applied (a PATCH's fields together with the kept ones)."""

    action_prefix: str
    snapshot: Callable[[M], dict]
    name_taken: str
    check: Callable[[M], None] | None = None

    def created(self, obj: M, *, actor: Any, request: AnyRequest | None = None) -> M:
        with transaction.atomic():
            obj = self._saved(obj)
            self._record(obj, "created", diff({}, self.snapshot(obj)), actor, request)
        return obj

    def updated(self, obj: M, fields: dict, *, actor: Any, request: AnyRequest | None = None) -> M:
        """Set `fields` on the object's row, locked; saved and audited only if something changed."""
        with transaction.atomic():
            obj = type(obj).objects.select_for_update(of=("self",)).select_related("workspace").get(pk=obj.pk)
            before = self.snapshot(obj)
            for name, value in fields.items():
                setattr(obj, name, value)
            if changes := diff(before, self.snapshot(obj)):
                obj = self._saved(obj)
                self._record(obj, "updated", changes, actor, request)
        return obj

    def deleted(self, obj: M, *, actor: Any, request: AnyRequest | None = None) -> None:
        with transaction.atomic():
            self._record(obj, "deleted", diff(self.snapshot(obj), {}), actor, request)
            obj.delete()

    def _saved(self, obj: M) -> M:
        if self.check is not None:
            self.check(obj)
        try:
            with transaction.atomic():
                obj.save()
        except IntegrityError as error:
            raise ValidationError({"name": [self.name_taken]}) from error
        return obj

    def _record(self, obj: M, verb: str, changes: dict, actor: Any, request: AnyRequest | None) -> None:
        audit_record(
            action=f"{self.action_prefix}.{verb}",
            actor=actor,
            workspace=obj.workspace,
            target=obj,
            changes=changes,
            request=request,
        )
