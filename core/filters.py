"""Query filters shared by the API's list endpoints."""

from datetime import UTC

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend

OUT_OF_RANGE = "This date and time cannot be stored (out of range)."
NOT_A_BOOLEAN = "Either true or false."


class UTCIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, turned into UTC here: PostgreSQL refuses UTC offsets beyond ±15:59
    that Python accepts (a 500 otherwise), and a time near the ends of the calendar may not exist in UTC."""

    def to_python(self, value):
        parsed = super().to_python(value)
        try:
            return parsed.astimezone(UTC) if parsed is not None and parsed.tzinfo else parsed
        except OverflowError as error:
            raise ValidationError(OUT_OF_RANGE) from error


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


class StrictBooleanField(forms.NullBooleanField):
    """`true` or `false` (empty: not filtered); django-filter's own field reads anything else as "not
    filtered" too, so `?enabled=yes` quietly listed everything."""

    VALUES = {"true": True, "false": False}
    # NullBooleanSelect would read any other value as "unknown" before to_python sees it.
    widget = forms.TextInput

    def to_python(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        if str(value).lower() not in self.VALUES:
            raise ValidationError(NOT_A_BOOLEAN, code="invalid")
        return self.VALUES[str(value).lower()]

    def validate(self, value):
        pass


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class FilterBackend(DjangoFilterBackend):
    """django-filter's, which builds and validates a form of every filter on each request: skipped
    when the request names none of them. With no data the form filters nothing (no filter of ours is
    required or has a default), and it cost an unfiltered list 0.3 ms of CPU."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        # A filter's parameters begin with its name (a range filter's are `<name>_min`, `<name>_max`).
        named = any(param.startswith(name) for param in request.query_params for name in filterset_class.base_filters)
        return super().filter_queryset(request, queryset, view) if named else queryset
