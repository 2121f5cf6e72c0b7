"""Spending limits on language-model generation: budgets, what each period of one has spent, and the
spending reserved by calls in flight."""

import uuid
from decimal import Decimal

from django.conf import settings as django_settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from accounts.models import Workspace
from workflows.models.definitions import Workflow


class Budget(models.Model):
    """A limit on the tokens or the cost of document generation: of a workspace or one workflow, per UTC
    day, per calendar month or per run (each run of them has its own). A document step whose estimated
    cost would cross it fails before calling the model (`budget_exceeded`); crossing `threshold` of it
    raises `budget.threshold` once per period."""

    class Metric(models.TextChoices):
        TOKENS = "tokens"
        COST = "cost"

    class Period(models.TextChoices):
        DAY = "day"
        MONTH = "month"
        RUN = "run"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="budgets")
    workflow = models.ForeignKey(
        Workflow,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="budgets",
        help_text="The workflow it limits; the whole workspace when empty.",
    )
    name = models.CharField(max_length=200)
    metric = models.CharField(max_length=6, choices=Metric.choices)
    period = models.CharField(max_length=5, choices=Period.choices)
    limit = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Tokens (in and out), or cost in the price table's currency (DWC_MODEL_PRICES).",
    )
    threshold = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.8"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
        help_text="The share of the limit that raises budget.threshold (once per period).",
    )
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="budget_unique_name"),
            models.CheckConstraint(condition=models.Q(limit__gte=0), name="budget_limit_not_negative"),
        ]
        indexes = [models.Index(fields=["workspace", "active"], name="budget_active_idx")]

    def __str__(self) -> str:
        return f"{self.name}: {self.limit} {self.metric} per {self.period}"


class BudgetUsage(models.Model):
    """What one period of a budget has spent (a day, a month, or one run: `period_key` says which); what
    calls in flight hold of it are its reservations. The row is locked while a call reserves: two
    workers never both take the last of a budget."""

    id = models.BigAutoField(primary_key=True)
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="usages")
    period_key = models.CharField(max_length=40, help_text="2026-12-07, 2026-12, or a run's id.")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    spent = models.DecimalField(max_digits=20, decimal_places=6, default=Decimal(0))
    calls = models.PositiveIntegerField(default=0, help_text="Generations counted.")
    refused = models.PositiveIntegerField(default=0, help_text="Steps failed with budget_exceeded.")
    threshold_reached_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start"]
        constraints = [models.UniqueConstraint(fields=["budget", "period_key"], name="budget_usage_once")]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.period_key}: {self.spent}"


class BudgetReservation(models.Model):
    """What one attempt of a document step reserved of a budget's period before calling the model,
    until it settles (the actual usage replaces it) or is released (the call failed). A reservation
    whose step is no longer running at its attempt (its worker died) is released by the engine's
    recovery."""

    id = models.BigAutoField(primary_key=True)
    usage = models.ForeignKey(BudgetUsage, on_delete=models.CASCADE, related_name="reservations")
    step = models.ForeignKey("workflows.StepRun", on_delete=models.CASCADE, related_name="+")
    attempt = models.PositiveIntegerField()
    amount = models.DecimalField(max_digits=20, decimal_places=6)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["usage", "step", "attempt"], name="budget_reservation_once")]

    def __str__(self) -> str:
        return f"{self.amount} for {self.step_id}#{self.attempt}"
