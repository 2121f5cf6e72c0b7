import uuid

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.access import Role, workspace_named_or_default
from workflows import fingerprints, selectors
from workflows.api import request_bodies, serializers
from workflows.api.displays import workflow_display, workflow_list_rows
from workflows.api.filters import WorkflowFilter
from workflows.api.runs import trigger_response
from workflows.models import Node, Run, Workflow
from workflows.services.nodes import node_append, node_delete, node_update
from workflows.services.runs import runs_trigger_many
from workflows.services.transfer import workflow_export, workflows_import
from workflows.services.workflows import (
    workflow_create,
    workflow_delete,
    workflow_restore,
    workflow_update,
    workflow_version_restore,
)
from workflows.services.workflows_bulk import workflows_bulk

JSON = "application/json"


def _with_nodes(workflow: Workflow) -> Workflow:
    workflow.ordered_nodes = selectors.workflow_nodes(workflow)
    return workflow


def _node_response(node: Node, status_code: int = status.HTTP_200_OK) -> Response:
    node = next(n for n in selectors.workflow_nodes(node.workflow) if n.pk == node.pk)
    return Response(serializers.NodeSerializer(node).data, status=status_code)


IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    pattern=r'^(\*|(W/)?"[0-9]+")$',
    description='The version the change was made to, as the ETag of GET gave it ("7"): a workflow at another '
    "version by now is not overwritten (409, with its `version`).",
)
IF_MATCH_INVALID = 'If-Match must be the ETag a GET of the workflow answered, such as "7".'


def _expected_version(request) -> int | None:
    """The version If-Match names (an ETag such as "7", weak or not); None without one, or for `*`."""
    given = request.headers.get("If-Match", "").strip()
    if given in ("", "*"):
        return None
    tag = given.removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise ValidationError({"If-Match": [IF_MATCH_INVALID]})
    return int(tag)


def _tagged(response: Response) -> Response:
    """The workflow's version as its ETag: the If-Match of a change made to it."""
    response["ETag"] = f'"{response.data["version"]}"'
    return response


class WorkflowViewSet(viewsets.GenericViewSet):
    """Workflow definitions. Viewers read; editors, admins and owners write."""

    filterset_class = WorkflowFilter
    search_fields = ["name", "description", "nodes__title"]
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["-updated_at"]
    # Set by the actions that start runs: API keys need the trigger scope there, and starts are throttled
    # per workflow (workflows.api.throttling).
    starts_runs = False

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Workflow.objects.none()
        return selectors.workflow_list(self.request.user)

    def get_serializer_class(self):
        return serializers.WorkflowListSerializer if self.action == "list" else serializers.WorkflowSerializer

    def _get(self, minimum: str = Role.VIEWER, include_deleted: bool = False) -> Workflow:
        return selectors.workflow_get(
            self.request.user, self.kwargs["pk"], minimum=minimum, include_deleted=include_deleted
        )

    def _detail(self, workflow: Workflow, status_code: int = status.HTTP_200_OK) -> Response:
        """The workflow as it is now, after a change (already authorized: a superuser may see a
        workspace they are not a member of)."""
        return self._show(selectors.with_list_data(Workflow.objects.filter(pk=workflow.pk)).get(), status_code)

    def _show(self, workflow: Workflow, status_code: int = status.HTTP_200_OK) -> Response:
        """A workflow loaded for display (selectors.with_list_data), with its nodes and edges."""
        return Response(serializers.WorkflowSerializer(_with_nodes(workflow)).data, status=status_code)

    def list(self, request):
        workflows = self.filter_queryset(selectors.workflows_for_user(request.user))
        page = self.paginate_queryset(fingerprints.with_row_fingerprint(workflows).values_list("pk", "row_fingerprint"))
        return self.get_paginated_response(workflow_list_rows(page))

    @extend_schema(request={JSON: request_bodies.WORKFLOW_CREATE_BODY}, responses={201: serializers.WorkflowSerializer})
    def create(self, request):
        data = request.data
        workspace = workspace_named_or_default(request.user, data.get("workspace") if isinstance(data, dict) else None)
        workflow = workflow_create(actor=request.user, workspace=workspace, data=data, request=request)
        return self._detail(workflow, status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        return _tagged(Response(workflow_display(request.user, pk)))

    @extend_schema(request={JSON: request_bodies.WORKFLOW_REPLACE_BODY}, parameters=[IF_MATCH])
    def update(self, request, pk=None):
        return self._changed(request, partial=False)

    @extend_schema(request={JSON: request_bodies.WORKFLOW_PATCH_BODY}, parameters=[IF_MATCH])
    def partial_update(self, request, pk=None):
        return self._changed(request, partial=True)

    def _changed(self, request, *, partial: bool) -> Response:
        workflow = workflow_update(
            workflow=self._get(),
            actor=request.user,
            data=request.data,
            partial=partial,
            expected_version=_expected_version(request),
            request=request,
        )
        return _tagged(self._detail(workflow))

    def destroy(self, request, pk=None):
        workflow_delete(workflow=self._get(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=serializers.WorkflowSerializer)
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        workflow = workflow_restore(workflow=self._get(include_deleted=True), actor=request.user, request=request)
        return self._detail(workflow)

    @extend_schema(methods=["GET"], responses={200: serializers.NodeSerializer(many=True)})
    @extend_schema(
        methods=["POST"], request={JSON: request_bodies.NODE_BODY}, responses={201: serializers.NodeSerializer}
    )
    # A workflow's nodes are bounded by its max_nodes and come whole, in topological order: no pages.
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def nodes(self, request, pk=None):
        workflow = self._get()
        if request.method == "GET":
            return Response(serializers.NodeSerializer(selectors.workflow_nodes(workflow), many=True).data)
        node = node_append(workflow=workflow, actor=request.user, data=request.data, request=request)
        return _node_response(node, status.HTTP_201_CREATED)

    @extend_schema(responses=serializers.VersionListSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        versions = self._get().versions.select_related("created_by").order_by("-number")
        page = self.paginate_queryset(versions)
        return self.get_paginated_response(serializers.VersionListSerializer(page, many=True).data)

    @extend_schema(responses=serializers.VersionSerializer)
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]+)")
    def version(self, request, pk=None, number=None):
        version = self._get().versions.select_related("created_by").filter(number=int(number)).first()
        if version is None:
            raise Http404("No such version.")
        return Response(serializers.VersionSerializer(version).data)

    @extend_schema(request=None, responses=serializers.WorkflowSerializer)
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[0-9]+)/restore")
    def version_restore(self, request, pk=None, number=None):
        workflow = self._get()
        if not workflow.versions.filter(number=int(number)).exists():
            raise Http404("No such version.")
        workflow = workflow_version_restore(workflow=workflow, actor=request.user, number=int(number), request=request)
        return self._detail(workflow)

    @extend_schema(methods=["GET"], responses={200: serializers.RunSerializer(many=True)})
    @extend_schema(
        methods=["POST"],
        request=serializers.RunTriggerSerializer,
        responses={202: serializers.RunSerializer, 200: serializers.RunSerializer},
    )
    @action(detail=True, methods=["get", "post"], starts_runs=True)
    def runs(self, request, pk=None):
        """GET: this workflow's runs. POST: start a run (202; 200 for a repeated Idempotency-Key)."""
        workflow = self._get()
        if request.method == "GET":
            page = self.paginate_queryset(workflow.runs.select_related("version", "created_by").order_by("-created_at"))
            return self.get_paginated_response(serializers.RunSerializer(page, many=True).data)
        data = serializers.RunTriggerSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return trigger_response(request, workflow, data.validated_data.get("input"))

    @extend_schema(request=serializers.RunBatchSerializer, responses={202: serializers.RunSerializer(many=True)})
    @action(detail=True, methods=["post"], url_path="runs/batch", starts_runs=True)
    def runs_batch(self, request, pk=None):
        """Start one run per input in one transaction: all of them, or none if any input is rejected."""
        workflow = self._get(Role.EDITOR)  # who, before what: a viewer gets 403 whatever the body
        data = serializers.RunBatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = runs_trigger_many(
            workflow=workflow,
            inputs=data.validated_data["inputs"],
            trigger=Run.Trigger.API,
            actor=request.user,
            request=request,
        )
        return Response(serializers.RunSerializer(created, many=True).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        return Response(workflow_export(workflow=self._get(), actor=request.user, request=request))

    @extend_schema(
        request={JSON: request_bodies.WORKFLOW_IMPORT_BODY},
        responses={201: serializers.WorkflowSerializer(many=True)},
        parameters=[OpenApiParameter("workspace", uuid.UUID, description="Target workspace; default: personal.")],
    )
    @action(detail=False, methods=["post"], url_path="import")
    def import_(self, request):
        workspace = workspace_named_or_default(request.user, request.query_params.get("workspace"))
        created = workflows_import(actor=request.user, workspace=workspace, documents=request.data, request=request)
        workflows = selectors.workflow_list(request.user).filter(pk__in=[w.pk for w in created]).order_by("created_at")
        data = serializers.WorkflowSerializer([_with_nodes(w) for w in workflows], many=True).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request={JSON: request_bodies.BULK_BODY}, responses={200: serializers.BulkResultSerializer})
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        count = workflows_bulk(
            actor=request.user, action=data.get("action"), ids=data.get("ids"), tag=data.get("tag"), request=request
        )
        return Response({"action": data["action"], "count": count})


class NodeViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = serializers.NodeSerializer
    queryset = Node.objects.none()

    def _get(self) -> Node:
        return selectors.node_get(self.request.user, self.kwargs["pk"])

    def retrieve(self, request, pk=None):
        return _node_response(self._get())

    @extend_schema(request={JSON: request_bodies.NODE_BODY})
    def update(self, request, pk=None):
        return _node_response(
            node_update(node=self._get(), actor=request.user, data=request.data, partial=False, request=request)
        )

    @extend_schema(request={JSON: request_bodies.NODE_PATCH_BODY})
    def partial_update(self, request, pk=None):
        return _node_response(
            node_update(node=self._get(), actor=request.user, data=request.data, partial=True, request=request)
        )

    def destroy(self, request, pk=None):
        node_delete(node=self._get(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
