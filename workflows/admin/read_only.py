from django.contrib import admin

from audit.admin_writes import ReadOnlyAdminMixin

__all__ = ["ReadOnlyAdminMixin", "ReadOnlyTabularInline"]


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    """An inline that shows history: nothing can be added, changed or deleted through it."""

    extra = 0
    can_delete = False
