"""Budgets on language-model spending (workflows.services.budgets).

    GET/POST          /api/v3/budgets              list (members; filters workspace, workflow), create (admins)
    GET/PATCH/DELETE  /api/v3/budgets/{id}         PATCH, DELETE: admins and owners
    GET               /api/v3/budgets/{id}/usage   the current period: spent, reserved, remaining (?run=)

A budget of a workspace the caller is not a member of does not exist (404); members below admin get 403
on changes.
"""

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.access import Role, ensure_role, workspace_named_or_default
from core.openapi import NOT_ONLY_SPACES
from workflows.models import Budget
from workflows.services import budgets

UUID_PATTERN = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class BudgetSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)
    limit = serializers.DecimalField(max_digits=20, decimal_places=6, coerce_to_string=True)
    threshold = serializers.DecimalField(max_digits=4, decimal_places=3, coerce_to_string=True)

    class Meta:
        model = Budget
        fields = [
            "id",
            "workspace",
            "workflow",
            "name",
            "metric",
            "period",
            "limit",
            "threshold",
            "active",
            "created_by",
            "created_at",
            "updated_at",
        ]


class BudgetWriteSerializer(serializers.Serializer):
    """Documents the body of POST and PATCH; the service checks it."""

    unknown_fields_refused = True
    ignored_fields = budgets.IGNORED_FIELDS
    ignored_when_partial = ("workspace",)

    name = serializers.CharField(max_length=budgets.NAME_MAX_LENGTH, help_text="Unique in the workspace.")
    metric = serializers.ChoiceField(choices=Budget.Metric.choices, help_text="Tokens (in and out), or cost.")
    period = serializers.ChoiceField(
        choices=Budget.Period.choices, help_text="A UTC day, a calendar month (UTC), or each run on its own."
    )
    limit = serializers.DecimalField(max_digits=20, decimal_places=6, min_value=0, max_value=budgets.LIMIT_MAX)
    threshold = serializers.DecimalField(
        max_digits=4,
        decimal_places=3,
        min_value=0,
        max_value=1,
        required=False,
        help_text="The share of the limit that raises budget.threshold once per period (default 0.8).",
    )
    workflow = serializers.UUIDField(required=False, allow_null=True, help_text="Null: the whole workspace.")
    active = serializers.BooleanField(required=False)
    workspace = serializers.UUIDField(required=False, help_text="POST only: a workspace of the caller's.")

    # Decimal strings with at least one digit (the generated pattern also matches an empty string).
    request_schema_rules = {
        "properties": {
            "name": {"pattern": NOT_ONLY_SPACES},
            "limit": {"pattern": r"^\d{1,14}(?:\.\d{1,6})?$"},
            "threshold": {"pattern": r"^(?:0(?:\.\d{1,3})?|1(?:\.0{1,3})?)$"},
        }
    }


class BudgetUsageSerializer(serializers.Serializer):
    budget = serializers.UUIDField()
    period = serializers.ChoiceField(choices=Budget.Period.choices)
    period_key = serializers.CharField(help_text="2026-12-07, 2026-12, or the run's id.")
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)
    metric = serializers.ChoiceField(choices=Budget.Metric.choices)
    limit = serializers.DecimalField(max_digits=20, decimal_places=6)
    spent = serializers.DecimalField(max_digits=20, decimal_places=6)
    reserved = serializers.DecimalField(
        max_digits=20, decimal_places=6, help_text="Held by calls in flight until they settle."
    )
    remaining = serializers.DecimalField(max_digits=20, decimal_places=6)
    calls = serializers.IntegerField(help_text="Generations counted in the period.")
    refused = serializers.IntegerField(help_text="Steps failed with budget_exceeded in the period.")
    threshold_reached_at = serializers.DateTimeField(allow_null=True)


class BudgetUsageQuerySerializer(serializers.Serializer):
    run = serializers.UUIDField(required=False, help_text="A run budget's run.")


class BudgetFilter(django_filters.FilterSet):
    workspace = django_filters.UUIDFilter(field_name="workspace_id")
    workflow = django_filters.UUIDFilter(field_name="workflow_id")

    class Meta:
        model = Budget
        fields = ["workspace", "workflow"]


class BudgetViewSet(viewsets.GenericViewSet):
    serializer_class = BudgetSerializer
    filterset_class = BudgetFilter
    search_fields = ["name"]
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["name"]
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Budget.objects.none()
        return budgets.budgets_for_user(self.request.user)

    def _get(self) -> Budget:
        return budgets.budget_get(self.request.user, self.kwargs["pk"])

    def list(self, request: Request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(BudgetSerializer(page, many=True).data)

    @extend_schema(request=BudgetWriteSerializer, responses={201: BudgetSerializer})
    def create(self, request: Request):
        data = request.data
        workspace = workspace_named_or_default(request.user, data.get("workspace") if isinstance(data, dict) else None)
        # The service checks the role too; asked first here, a member's bad body is a 403, not a 400.
        ensure_role(request.user, workspace, Role.ADMIN)
        budget = budgets.budget_create(actor=request.user, workspace=workspace, data=data, request=request)
        return Response(BudgetSerializer(budget).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk=None):
        return Response(BudgetSerializer(self._get()).data)

    @extend_schema(request=BudgetWriteSerializer(partial=True))
    def partial_update(self, request: Request, pk=None):
        budget = self._get()
        ensure_role(request.user, budget.workspace, Role.ADMIN)
        budget = budgets.budget_update(budget=budget, actor=request.user, data=request.data, request=request)
        return Response(BudgetSerializer(budget).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk=None):
        budgets.budget_delete(budget=self._get(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[OpenApiParameter("run", str, description="A run budget's run (its id).")],
        responses=BudgetUsageSerializer,
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def usage(self, request: Request, pk=None):
        """The budget's current period (a run budget: the run's): spent, reserved by calls in flight, remaining."""
        budget = self._get()
        query = BudgetUsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        usage = budgets.budget_usage(budget, run_id=query.validated_data.get("run"))
        return Response(BudgetUsageSerializer(usage).data)
