"""The engine's drain, for operators: one page that tells whether it drains and drains or resumes it
(through the same services as the API and `manage.py engine`)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from core.problems import Conflict
from workflows.models import EngineDrain
from workflows.services import run_control


@admin.register(EngineDrain)
class EngineDrainAdmin(admin.ModelAdmin):
    """The drain's one row is never edited: the page's buttons make and lift it, audited."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_staff and request.user.has_perm("workflows.view_enginedrain")

    def has_operate_permission(self, request) -> bool:
        return request.user.is_staff and request.user.has_perm("workflows.add_enginedrain")

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_operate_permission(request):
                raise PermissionDenied
            try:
                if request.POST.get("operation") == "drain":
                    run_control.engine_drain(actor=request.user, reason=request.POST.get("reason", ""), request=request)
                    self.message_user(request, "The engine drains: workers start no new steps.", messages.SUCCESS)
                elif request.POST.get("operation") == "resume":
                    run_control.engine_resume(actor=request.user, request=request)
                    self.message_user(request, "The drain ended: the held steps were sent.", messages.SUCCESS)
            except Conflict as error:
                self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "title": "Engine",
            "subtitle": None,
            "opts": self.model._meta,
            "engine": run_control.engine_status(actor=request.user),
            "may_operate": self.has_operate_permission(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/workflows/enginedrain/engine.html", context)
