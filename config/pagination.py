from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=N&page_size=M`: M defaults to PAGE_SIZE and is cut to 200, whatever the client asks."""

    page_size_query_param = "page_size"
    max_page_size = 200
