import django_filters

from core.filters import DateTimeFilter
from workflows.models import Workflow


class WorkflowFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Workflow.Status.choices)
    tag = django_filters.CharFilter(field_name="tag_set__name", distinct=True)
    workspace = django_filters.UUIDFilter(field_name="workspace_id")
    created_by = django_filters.UUIDFilter(field_name="created_by_id")
    updated_after = DateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Workflow
        fields = ["status", "tag", "workspace", "created_by", "updated_after"]
