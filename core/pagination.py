import math
import re

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from rest_framework import pagination
from rest_framework.exceptions import ValidationError

PAGE_SIZE_INVALID = "A whole number, 1 or more."
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def whole_number(raw: str) -> int | None:
    """A query parameter's integer: digits, or a JSON number without a fraction (`8.0`, `1e3`: JSON
    Schema counts those as integers, and a client serializing a number may spell it so); else None."""
    if raw.isascii() and raw.isdigit():
        return int(raw)
    if not JSON_NUMBER.fullmatch(raw):
        return None
    value = float(raw)
    return int(value) if math.isfinite(value) and value.is_integer() else None


# More rows than any table holds: a page that starts after this many is out of range.
BEYOND_ANY_TABLE = 2**62


class PageFirstPaginator(Paginator):
    """Django's, reading the page before counting: a page with room to spare is the last one, so the
    count is its offset plus its rows, and the COUNT query is left out (most lists fit on one page).
    A full page is counted as before; an empty one past the first is out of range whatever the count."""

    def page(self, number):
        number = self._whole_page_number(number)
        bottom = (number - 1) * self.per_page
        if bottom > BEYOND_ANY_TABLE:  # PostgreSQL's OFFSET is a bigint: beyond it, a DataError
            raise EmptyPage(self.error_messages["no_results"])
        rows = list(self.object_list[bottom : bottom + self.per_page])
        if len(rows) < self.per_page and (rows or number == 1):
            self.__dict__["count"] = bottom + len(rows)  # Paginator.count is a cached_property
        elif not rows:
            raise EmptyPage(self.error_messages["no_results"])
        return self._get_page(rows, number, self)

    def _whole_page_number(self, number) -> int:
        """validate_number's checks, but the last: that one needs the count."""
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError) as error:
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from error
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=N&page_size=M`: M defaults to PAGE_SIZE and is cut to 200, whatever the client asks.

    A page_size that is not a whole number of 1 or more is a 400 (DRF's own paginator would quietly
    use the default instead, for `page_size=null` too); an empty one means the default.
    """

    django_paginator_class = PageFirstPaginator
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw == "":
            return self.page_size
        size = whole_number(raw)
        if size is None or size < 1:
            raise ValidationError({self.page_size_query_param: [PAGE_SIZE_INVALID]})
        return min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Number of results to return per page (default {self.page_size}, at most {self.max_page_size}: "
                    "a larger number is cut to it)."
                )
        return parameters
