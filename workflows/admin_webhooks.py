"""Admin for inbound webhooks: tokens are never shown (only their last characters); rotate shows the new URL once."""

from django.contrib import admin, messages

from workflows.models import WebhookTrigger
from workflows.services.webhooks import webhook_rotate


@admin.register(WebhookTrigger)
class WebhookTriggerAdmin(admin.ModelAdmin):
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
        "created_by",
        "created_at",
        "rotated_at",
    ]
    actions = ["rotate"]

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
        for hook in queryset.select_related("workflow__workspace"):
            token = webhook_rotate(hook=hook, actor=request.user, request=request)
            url = request.build_absolute_uri(f"/hooks/{token}/")
            self.message_user(request, f"{hook.workflow.name}: new address {url} (shown once)", messages.WARNING)
