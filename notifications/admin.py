"""Channels, rules and templates (written through their services, so validated and audited like the
API's changes), deliveries (history, with a resend action), matches and inbox notifications (history)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from audit.admin_writes import ReadOnlyAdminMixin, ServiceDeleteAdminMixin
from core.problems import Conflict
from notifications.models import Channel, Delivery, Match, Notification, Rule, Template
from notifications.services.channels import channel_check, channel_create, channel_delete, channel_update
from notifications.services.deliveries import delivery_resend
from notifications.services.rules import WRITABLE_FIELDS as RULE_WRITABLE_FIELDS
from notifications.services.rules import rule_check, rule_create, rule_delete, rule_update
from notifications.services.templates import template_check, template_create, template_delete, template_update

FORM_FIELDS = ("name", "kind", "config", "credential", "enabled")


class ServiceCheckedForm(forms.ModelForm):
    """A form whose data the service checks as it would the API's body (`service_data`, `service_check`):
    its errors are shown on the fields they name."""

    def service_data(self, cleaned: dict) -> dict:
        raise NotImplementedError

    def service_check(self, workspace, data: dict) -> None:
        raise NotImplementedError

    def clean(self):
        cleaned = super().clean()
        workspace = cleaned.get("workspace") or (self.instance.workspace if self.instance.pk else None)
        if workspace is None or self.errors:
            return cleaned
        try:
            self.service_check(workspace, self.service_data(cleaned))
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                name = field.split(".", 1)[0]
                self.add_error(name if name in self.fields else None, [f"{field}: {problem}" for problem in problems])
        return cleaned


class ChannelForm(ServiceCheckedForm):
    class Meta:
        model = Channel
        fields = ["workspace", *FORM_FIELDS]

    def service_data(self, cleaned: dict) -> dict:
        data = {name: cleaned.get(name) for name in FORM_FIELDS if name in cleaned}
        data["config"] = data.get("config") or {}
        data["credential"] = data.get("credential") or ""
        return data

    def service_check(self, workspace, data: dict) -> None:
        channel = None if self.instance._state.adding else Channel.objects.get(pk=self.instance.pk)
        channel_check(workspace_id=workspace.pk, data=data, channel=channel)


TEMPLATE_FIELDS = ("name", "subject", "body", "formats")


class TemplateForm(ServiceCheckedForm):
    class Meta:
        model = Template
        fields = ["workspace", *TEMPLATE_FIELDS]

    def service_data(self, cleaned: dict) -> dict:
        data = {name: cleaned.get(name) for name in TEMPLATE_FIELDS if name in cleaned}
        data["subject"] = data.get("subject") or ""
        data["formats"] = data.get("formats") or {}
        return data

    def service_check(self, workspace, data: dict) -> None:
        template_check(data, template=None if self.instance._state.adding else self.instance)


# The rule service's body fields, as the model names them (the workflow by its id).
RULE_FIELDS = tuple("workflow_id" if name == "workflow" else name for name in RULE_WRITABLE_FIELDS)


class RuleForm(ServiceCheckedForm):
    class Meta:
        model = Rule
        fields = ["workspace", *RULE_FIELDS]

    def service_data(self, cleaned: dict) -> dict:
        data = {name: cleaned.get(name) for name in RULE_FIELDS if name in cleaned}
        workflow_id = data.pop("workflow_id", None)
        data["workflow"] = str(workflow_id) if workflow_id else None
        data["template"] = str(data["template"].pk) if data.get("template") else None
        data["channels"] = [str(channel.pk) for channel in data.get("channels") or []]
        data["members"] = [str(user.pk) for user in data.get("members") or []]
        for name in ("tags", "roles", "member_kinds", "events"):
            data[name] = list(data.get(name) or [])
        return data

    def service_check(self, workspace, data: dict) -> None:
        rule_check(workspace, data, rule=None if self.instance._state.adding else Rule.objects.get(pk=self.instance.pk))


class ServiceWrittenAdmin(ServiceDeleteAdminMixin, admin.ModelAdmin):
    """Saved through the model's create and update services with the form's `service_data` as their body
    (checked, audited, as the API's changes are) and deleted through its delete service. The fields of
    `fixed_fields` (the workspace) cannot change once the object exists."""

    fixed_fields: tuple[str, ...] = ("workspace",)
    readonly_fields = ["created_by", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, *self.fixed_fields] if obj is not None else self.readonly_fields

    def create(self, request, workspace, data: dict):
        raise NotImplementedError(f"{type(self).__name__} must say which service creates its objects")

    def update(self, request, obj, data: dict):
        raise NotImplementedError(f"{type(self).__name__} must say which service changes its objects")

    def save_model(self, request, obj, form, change):
        data = form.service_data(form.cleaned_data)
        if change:
            saved = self.update(request, type(obj).objects.get(pk=obj.pk), data)
        else:
            saved = self.create(request, obj.workspace, data)
        obj.pk = saved.pk
        obj.refresh_from_db()


@admin.register(Channel)
class ChannelAdmin(ServiceWrittenAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "workspace", "enabled", "last_status", "last_delivery_at"]
    list_filter = ["kind", "enabled", "last_status"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace"]
    autocomplete_fields = ["workspace"]
    delete_select_related = ["workspace"]
    readonly_fields = ["last_status", "last_delivery_at", "created_by", "created_at", "updated_at"]
    # A channel keeps its workspace (its credential is named there) and its kind (its config's schema).
    fixed_fields = ("workspace", "kind")

    def create(self, request, workspace, data: dict):
        return channel_create(actor=request.user, workspace=workspace, data=data, request=request)

    def update(self, request, obj, data: dict):
        data.pop("kind", None)
        return channel_update(channel=obj, actor=request.user, data=data, request=request)

    def delete_through_service(self, request, obj):
        channel_delete(channel=obj, actor=request.user, request=request)


@admin.register(Template)
class TemplateAdmin(ServiceWrittenAdmin):
    form = TemplateForm
    list_display = ["name", "workspace", "subject", "updated_at"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace"]
    autocomplete_fields = ["workspace"]

    def create(self, request, workspace, data: dict):
        return template_create(actor=request.user, workspace=workspace, data=data, request=request)

    def update(self, request, obj, data: dict):
        return template_update(template=obj, actor=request.user, data=data, request=request)

    def delete_through_service(self, request, obj):
        template_delete(template=obj, actor=request.user, request=request)


@admin.register(Rule)
class RuleAdmin(ServiceWrittenAdmin):
    form = RuleForm
    list_display = ["name", "workspace", "enabled", "events", "throttle_count", "digest_window_seconds"]
    list_filter = ["enabled"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace"]
    autocomplete_fields = ["workspace", "members"]
    filter_horizontal = ["channels"]

    def create(self, request, workspace, data: dict):
        return rule_create(actor=request.user, workspace=workspace, data=data, request=request)

    def update(self, request, obj, data: dict):
        return rule_update(rule=obj, actor=request.user, data=data, request=request)

    def save_related(self, request, form, formsets, change):
        # The service set the channels and members; the form's own m2m save would do it again.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_through_service(self, request, obj):
        rule_delete(rule=obj, actor=request.user, request=request)


@admin.register(Match)
class MatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "rule", "event_type", "subject", "outcome", "digest_due_at"]
    list_filter = ["outcome", "event_type"]
    search_fields = ["=event_id", "rule__name", "subject"]
    list_select_related = ["rule"]
    show_full_result_count = False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "channel", "direct_kind", "rule", "subject", "status", "attempts", "sent_at"]
    list_filter = ["status", "channel__kind", "direct_kind", "may_have_been_delivered"]
    search_fields = ["=id", "=idempotency_key", "subject", "channel__name"]
    list_select_related = ["channel", "rule"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["resend"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_operate_permission(self, request) -> bool:
        # The admin never edits a delivery's fields, so the change permission means "may resend".
        return request.user.has_perm("notifications.change_delivery")

    @admin.action(description="Resend selected deliveries (dead or failed ones)", permissions=["operate"])
    def resend(self, request, queryset):
        count = 0
        for delivery in queryset.select_related("workspace"):
            try:
                delivery_resend(delivery=delivery, actor=request.user, request=request)
            except (Conflict, PermissionDenied, Http404) as error:
                self.message_user(request, f"Delivery {delivery.pk}: {error}", messages.ERROR)
            else:
                count += 1
        if count:
            self.message_user(request, f"Queued {count} delivery(ies) again.", messages.SUCCESS)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "user", "title", "level", "read_at"]
    list_filter = ["level", ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "user__email"]
    list_select_related = ["user"]
    show_full_result_count = False
