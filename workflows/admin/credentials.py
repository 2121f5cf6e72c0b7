"""Credentials: write-only values, deleted through the credential service (audited)."""

from django import forms
from django.contrib import admin

from audit.admin_writes import ServiceDeleteAdminMixin
from audit.services import REDACTED, audit_record, diff
from workflows.credentials import credential_fields
from workflows.credentials import encrypt as encrypt_credential
from workflows.credentials import value_errors as credential_value_errors
from workflows.models import Credential
from workflows.services.credentials import KIND_NEEDS_VALUE as CREDENTIAL_KIND_NEEDS_VALUE
from workflows.services.credentials import NAME_TAKEN as CREDENTIAL_NAME_TAKEN
from workflows.services.credentials import credential_delete


class WriteOnlyTextarea(forms.Textarea):
    """Never renders a value: not the stored one, nor one typed into a form sent back with errors."""

    def format_value(self, value):
        return None


class CredentialForm(forms.ModelForm):
    """The value is write-only: it is never shown, and left empty it keeps the stored one."""

    value = forms.JSONField(
        required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "cols": 60, "autocomplete": "off"}),
        help_text='A JSON object, e.g. {"token": "…"} for http_bearer. It is never shown again; '
        "leave blank to keep the current value.",
    )

    class Meta:
        model = Credential
        fields = ["workspace", "name", "kind", "expires_at"]

    def clean(self):
        cleaned = super().clean()
        value, kind = cleaned.get("value"), cleaned.get("kind")
        if value in (None, "") and self.instance._state.adding:
            self.add_error("value", "A new credential needs a value.")
        elif value in (None, "") and kind and "kind" in self.changed_data:
            self.add_error("value", CREDENTIAL_KIND_NEEDS_VALUE)
        elif value not in (None, "") and kind:
            for problem in credential_value_errors(kind, value):
                self.add_error("value", problem)
        name = cleaned.get("name")
        if not self.instance._state.adding and name and "name" in self.changed_data:
            # The workspace is read-only here, so the form's own unique check skips (workspace, name).
            taken = Credential.objects.filter(workspace_id=self.instance.workspace_id, name=name)
            if taken.exclude(pk=self.instance.pk).exists():
                self.add_error("name", CREDENTIAL_NAME_TAKEN)
        return cleaned


@admin.register(Credential)
class CredentialAdmin(ServiceDeleteAdminMixin, admin.ModelAdmin):
    form = CredentialForm
    list_display = ["name", "kind", "workspace", "stored_keys", "expires_at", "created_by", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace", "created_by"]
    autocomplete_fields = ["workspace"]
    delete_select_related = ["workspace"]

    def get_fields(self, request, obj=None):
        fields = ["workspace", "name", "kind", "expires_at", "value"]
        return [*fields[:4], "stored_keys", "value"] if obj else fields

    def get_readonly_fields(self, request, obj=None):
        # Node configs name credentials within their workspace: moving one would break them silently.
        return ["workspace", "stored_keys"] if obj is not None else []

    @admin.display(description="value keys")
    def stored_keys(self, obj: Credential) -> str:
        keys = credential_fields(obj)
        return "(cannot be decrypted with CREDENTIALS_KEY)" if keys is None else ", ".join(keys)

    def save_model(self, request, obj, form, change):
        value = form.cleaned_data.get("value")
        if value not in (None, ""):  # validated by the form; empty keeps the stored value
            obj.encrypted_value = encrypt_credential(value)
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        fields = [name for name in ("name", "kind", "expires_at") if name in form.changed_data]
        changes = diff({name: form.initial.get(name) for name in fields}, {name: getattr(obj, name) for name in fields})
        if value not in (None, ""):  # the value itself never reaches the audit trail
            changes["value"] = [REDACTED if change else None, REDACTED]
        if changes:
            audit_record(
                action="credential.updated" if change else "credential.created",
                actor=request.user,
                workspace=obj.workspace,
                target=obj,
                changes=changes,
                request=request,
            )

    # Deleting goes through the API's service. Forced: an operator may delete a credential that nodes
    # still name (the API asks for ?force=true); the event then says it was forced.
    def delete_through_service(self, request, obj):
        credential_delete(credential=obj, actor=request.user, force=True, request=request)
