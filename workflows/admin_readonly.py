from django.contrib import admin


class ReadOnlyAdminMixin:
    """For a ModelAdmin of records written by the engine: browsing only, no add, change or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    """An inline that shows history: nothing can be added, changed or deleted through it."""

    extra = 0
    can_delete = False
