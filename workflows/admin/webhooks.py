"""Admin for inbound webhooks: tokens are never shown (only their last characters); rotate shows the new URL once,
on the page it answers with.

Rotating and deleting go through the webhook services; a change of the delivery options (some of which
the API does not offer) or of the IP allow-list is audited here as webhook.updated."""

from django.contrib import admin
from django.template.response import TemplateResponse

from accounts.ip_allow_lists import IpAllowListAdminForm
from audit.admin_writes import AuditedAdminMixin, ServiceDeleteAdminMixin
from workflows.models import WebhookTrigger
from workflows.services.webhooks import webhook_delete, webhook_rotate


@admin.register(WebhookTrigger)
class WebhookTriggerAdmin(ServiceDeleteAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["masked_address", "workflow", "signed", "dedupe_header", "created_at", "rotated_at"]
    list_select_related = ["workflow"]
    search_fields = ["workflow__name", "token_hint"]
    readonly_fields = ["masked_address", "signed", "created_by", "created_at", "rotated_at"]
    fields = [
        "workflow",
        "masked_address",
        "signed",
        "dedupe_header",
        "include_headers",
        "allowed_ips",
        "created_by",
        "created_at",
        "rotated_at",
    ]
    form = IpAllowListAdminForm
    actions = ["rotate"]
    audit_prefix = audit_target_type = "webhook"
    audit_fields = ["dedupe_header", "include_headers", "allowed_ips"]
    delete_select_related = ["workflow__workspace"]

    def audit_workspace(self, obj: WebhookTrigger):
        return obj.workflow.workspace

    def delete_through_service(self, request, obj):
        webhook_delete(hook=obj, actor=request.user, request=request)

    def has_add_permission(self, request):
        # A new webhook's token is shown once, by the API that creates it.
        return False

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "workflow"]

    @admin.display(description="Address")
    def masked_address(self, hook: WebhookTrigger) -> str:
        return f"/hooks/…{hook.token_hint}/"

    @admin.display(description="Signed", boolean=True)
    def signed(self, hook: WebhookTrigger) -> bool:
        return hook.encrypted_secret is not None

    @admin.action(description="Rotate the token (the old address stops working at once)", permissions=["change"])
    def rotate(self, request, queryset):
        # The new addresses go on this response's page only: a flash message would sit in the
        # messages cookie (signed, not encrypted) until the next page.
        rotated = []
        for hook in queryset.select_related("workflow__workspace"):
            token = webhook_rotate(hook=hook, actor=request.user, request=request)
            rotated.append((hook.workflow.name, request.build_absolute_uri(f"/hooks/{token}/")))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "rotated": rotated}
        # (The changelist view that answers with it is never_cache: Cache-Control includes no-store.)
        return TemplateResponse(request, "admin/workflows/webhooktrigger/rotated.html", context)
