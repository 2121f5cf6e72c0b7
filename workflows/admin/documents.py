"""Admin for documents: read-only history with its lineage (versions and the documents it came from)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from workflows.admin.read_only import ReadOnlyAdminMixin
from workflows.models import Document


def _links(documents) -> str:
    return (
        format_html_join(
            ", ",
            '<a href="{}">{} v{}</a>',
            ((reverse("admin:workflows_document_change", args=[doc.pk]), doc.title, doc.version) for doc in documents),
        )
        or "—"
    )


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: documents go with their run; deleting one alone would break the lineage of others."""

    list_display = ["title", "node_key", "version", "workflow", "provider", "model", "tokens_out", "cost", "created_at"]
    list_filter = ["provider", "format", ("workflow", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["title", "content", "node_key"]
    date_hierarchy = "created_at"
    list_select_related = ["workflow"]
    fields = [
        *("title", "workspace", "workflow", "run_link", "node_key", "version", "format"),
        *("previous_link", "source_links", "derived_links"),
        *("provider", "model", "tokens_in", "tokens_out", "cost", "latency_ms", "metadata", "content", "created_at"),
    ]
    readonly_fields = fields

    @admin.display(description="run")
    def run_link(self, document: Document) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:workflows_run_change", args=[document.run_id]), document.run_id
        )

    @admin.display(description="previous version")
    def previous_link(self, document: Document) -> str:
        return _links([document.previous] if document.previous else [])

    @admin.display(description="generated from")
    def source_links(self, document: Document) -> str:
        return _links(document.sources.all())

    @admin.display(description="used by")
    def derived_links(self, document: Document) -> str:
        return _links(document.derived.all())
