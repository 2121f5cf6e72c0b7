"""Query filters shared by the API's list endpoints."""

from datetime import UTC

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

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
