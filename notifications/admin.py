"""Channels (written through the channel services, so validated and audited like the API's changes),
deliveries (history, with a resend action) and inbox notifications (history)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from audit.admin_writes import ReadOnlyAdminMixin, ServiceDeleteAdminMixin
from core.problems import Conflict
from notifications.models import Channel, Delivery, Notification
from notifications.services.channels import channel_check, channel_create, channel_delete, channel_update
from notifications.services.deliveries import delivery_resend

FORM_FIELDS = ("name", "kind", "config", "credential", "enabled")


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["workspace", *FORM_FIELDS]

    def clean(self):
        cleaned = super().clean()
        workspace = cleaned.get("workspace") or (self.instance.workspace if self.instance.pk else None)
        if workspace is None or self.errors:
            return cleaned
        channel = None if self.instance._state.adding else Channel.objects.get(pk=self.instance.pk)
        data = {name: cleaned.get(name) for name in FORM_FIELDS if name in cleaned}
        data["config"] = data.get("config") or {}
        data["credential"] = data.get("credential") or ""
        try:
            channel_check(workspace_id=workspace.pk, data=data, channel=channel)
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                name = field.split(".", 1)[0]
                self.add_error(name if name in self.fields else None, [f"{field}: {problem}" for problem in problems])
        return cleaned


@admin.register(Channel)
class ChannelAdmin(ServiceDeleteAdminMixin, admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "workspace", "enabled", "last_status", "last_delivery_at"]
    list_filter = ["kind", "enabled", "last_status"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace"]
    autocomplete_fields = ["workspace"]
    delete_select_related = ["workspace"]
    readonly_fields = ["last_status", "last_delivery_at", "created_by", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # A channel keeps its workspace (its credential is named there) and its kind (its config's schema).
        return [*self.readonly_fields, "workspace", "kind"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in FORM_FIELDS if name in form.cleaned_data}
        data["config"] = data.get("config") or {}
        data["credential"] = data.get("credential") or ""
        if change:
            data.pop("kind", None)
            saved = channel_update(
                channel=Channel.objects.get(pk=obj.pk), actor=request.user, data=data, request=request
            )
        else:
            saved = channel_create(actor=request.user, workspace=obj.workspace, data=data, request=request)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_through_service(self, request, obj):
        channel_delete(channel=obj, actor=request.user, request=request)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "channel", "subject", "status", "attempts", "response_code", "sent_at"]
    list_filter = ["status", "channel__kind", "may_have_been_delivered"]
    search_fields = ["=id", "=idempotency_key", "subject", "channel__name"]
    list_select_related = ["channel"]
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
