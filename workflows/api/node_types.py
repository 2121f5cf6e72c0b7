"""GET node-types: each node type's JSON Schema, description, palette group, defaults and example,
for the builder's palette and generated forms (and any client that builds workflows)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from workflows.node_catalog import GROUPS, node_types


class NodeTypeSerializer(serializers.Serializer):
    type = serializers.CharField()
    group = serializers.ChoiceField(choices=GROUPS)
    description = serializers.CharField()
    schema = serializers.JSONField(help_text="JSON Schema (2020-12) of a whole node of this type.")
    defaults = serializers.JSONField(help_text="What a node of this type gets for the fields it leaves out.")
    example = serializers.JSONField(help_text="A node of this type, as a workflow's `nodes` holds it.")
    template_fields = serializers.ListField(child=serializers.CharField(), help_text="Config keys rendered as text.")
    value_fields = serializers.ListField(
        child=serializers.CharField(), help_text="Config keys whose values keep types."
    )
    expression_fields = serializers.ListField(
        child=serializers.CharField(), help_text="Config keys that are expressions."
    )
    branches = serializers.ListField(child=serializers.CharField(), help_text="Edge labels it offers (`when`).")
    uses_prompt = serializers.BooleanField()
    uses_content = serializers.BooleanField()


class NodeTypesView(APIView):
    """Every node type, by palette group (documents, logic, integrations, people) then name."""

    @extend_schema(responses=NodeTypeSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(NodeTypeSerializer(node_types(), many=True).data)
