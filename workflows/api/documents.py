"""Documents: what document steps wrote, their versions and lineage, searchable and downloadable."""

import django_filters
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response

from core.filters import DateTimeFilter, FilterBackend
from workflows import selectors
from workflows.api import serializers
from workflows.models import Document
from workflows.services import document_diff

DOWNLOAD_TYPES = {
    Document.Format.MARKDOWN: ("text/markdown", "md"),
    Document.Format.TEXT: ("text/plain", "txt"),
    Document.Format.JSON: ("application/json", "json"),
}


class DocumentFilter(django_filters.FilterSet):
    workflow = django_filters.UUIDFilter(field_name="workflow_id")
    run = django_filters.UUIDFilter(field_name="run_id")
    node_key = django_filters.CharFilter()
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")
    search = django_filters.CharFilter(
        method="search_text",
        help_text='Full-text search of titles and contents (web search syntax: "a phrase", -word, or).',
    )

    class Meta:
        model = Document
        fields = ["workflow", "run", "node_key", "created_after", "created_before", "search"]

    def search_text(self, queryset: QuerySet[Document], name: str, value: str) -> QuerySet[Document]:
        vector = SearchVector("title", weight="A", config="english") + SearchVector(
            "content", weight="B", config="english"
        )
        query = SearchQuery(value, search_type="websearch", config="english")
        return (
            queryset.annotate(text=vector, text_rank=SearchRank(vector, query))
            .filter(text=query)
            .order_by("-text_rank", "-created_at")
        )


class DocumentViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = serializers.DocumentSerializer
    filterset_class = DocumentFilter
    # `search` is the FilterSet's full-text search, not DRF's SearchFilter.
    filter_backends = [FilterBackend, OrderingFilter]
    ordering_fields = ["created_at", "version", "title"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Document.objects.none()
        return selectors.documents_for_user(self.request.user)

    @extend_schema(responses=serializers.DocumentDetailSerializer)
    def retrieve(self, request, pk=None):
        document = selectors.document_get(request.user, pk)
        return Response(serializers.DocumentDetailSerializer(document).data)

    @extend_schema(responses={(200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR)})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        document = selectors.document_get(request.user, pk)
        content_type, extension = DOWNLOAD_TYPES[document.format]
        filename = f"{slugify(document.title)[:80] or 'document'}-v{document.version}.{extension}"
        response = HttpResponse(document.content, content_type=f"{content_type}; charset=utf-8")
        response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(responses=serializers.DocumentSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        document = selectors.document_get(request.user, pk)
        versions = Document.objects.filter(workflow_id=document.workflow_id, node_key=document.node_key)
        page = self.paginate_queryset(versions.select_related("workflow").order_by("-version"))
        return self.get_paginated_response(serializers.DocumentSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "against",
                {"type": "string", "pattern": document_diff.AGAINST_PATTERN, "default": document_diff.AGAINST_PREVIOUS},
                description=document_diff.AGAINST_HELP,
                allow_blank=False,
            )
        ],
        description="What changed from another version of the same node's document (its previous one by "
        "default) to this one: a unified diff of the lines and a word-level diff as spans. Each text may be "
        f"at most {document_diff.MAX_DIFF_CHARS:,} characters (docs/generation.md, Document diff).",
        responses=serializers.DocumentDiffSerializer,
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def diff(self, request, pk=None):
        document = selectors.document_get(request.user, pk)  # a stranger's 404 before any 400 on `against`
        against = request.query_params.get("against", document_diff.AGAINST_PREVIOUS)
        base = document_diff.diff_base(request.user, document, against)
        return Response(serializers.DocumentDiffSerializer(document_diff.document_diff(base, document)).data)
