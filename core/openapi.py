"""What the OpenAPI schema says about input beyond what drf-spectacular finds by itself.

The schema is OpenAPI 3.1 (JSON Schema 2020-12), so that it can say all of this:

- Text: no request may hold a NUL character, in any string or object key (core.request_text refuses
  it with a 400 naming the field). Every string a client writes (body, query, path) says
  `not: {type: string, pattern: "\\x00"}`, and so do object keys (`propertyNames`); free-form JSON
  (a run's input, a node's config, …) is `StorableJSON`, the same at any depth. Not a pattern of
  what is allowed, such as `^[^\\x00]*$`: schemathesis folds a maxLength into that as a repetition
  count, and a regex of a million repetitions takes seconds to compile. Unpaired surrogates are
  refused too, but need no pattern: UTF-8 text cannot hold one, and JSON's `\\ud800` escape of one
  is refused like a NUL.
- Other body properties: DRF ignores fields a serializer does not have, so a request object may hold
  others (any storable JSON). A serializer whose view refuses them (the services that answer
  "Unknown field.") sets `unknown_fields_refused = True`, and its schema says
  `additionalProperties: false`; `ignored_fields` lists the read-only fields it accepts and ignores
  (`ignored_when_partial`: those a PATCH ignores).
- Links (LINKS): what a client can do next with the object an answer returns (create, then read,
  change, delete it; a run's events); schemathesis' stateful phase follows them.
- Filters, search, ordering and paging parameters may be sent empty (they are then not applied), so
  they say `allowEmptyValue`; so does an optional OpenApiParameter unless it says allow_blank=False.
  Filters are documented where they apply (`list`, and a view's `filtered_actions`), paging on GETs.
- Fields: a JSONField is StorableJSON (null only with allow_null), a ListField that must not be
  empty says minItems 1, a CharField that strips its input and refuses blank text says it must hold
  more than whitespace (NOT_ONLY_SPACES). A serializer's `request_schema_rules` add what fields
  cannot say (a pattern; if/then between fields). Values must have their JSON type: core.strict_json.
- Time zones are the string format TIME_ZONE_FORMAT (a name zoneinfo knows), not a 600-name enum.
"""

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

HAS_NUL = r"\x00"
# Text holding something besides Python's whitespace (str.strip() leaves it), which ECMA's \S is not quite.
# A lookahead: schemathesis would rewrite a plain character class with a maxLength into ^[...]{1,max}$.
NOT_ONLY_SPACES = r"(?=[^\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])"
NO_NUL = {"type": "string", "pattern": HAS_NUL}  # as `not`: no string with a NUL (other types pass)
STORABLE_JSON = "StorableJSON"
STORABLE_JSON_REF = {"$ref": f"#/components/schemas/{STORABLE_JSON}"}
JSON_TYPES = ["object", "array", "string", "number", "boolean", "null"]
STORABLE_JSON_SCHEMA = {
    "description": "Any JSON value, nested at most 64 levels deep. Its text, object keys included, may not "
    "contain NUL characters or unpaired surrogates (such as \\u0000 or \\ud800).",
    "type": JSON_TYPES,
    "not": NO_NUL,
    "propertyNames": {"not": NO_NUL},
    "additionalProperties": STORABLE_JSON_REF,
    "items": STORABLE_JSON_REF,
}
# Keywords that only describe a schema: one with nothing else accepts any value.
ANNOTATIONS = frozenset(
    {"description", "title", "default", "example", "examples", "readOnly", "writeOnly", "deprecated", "nullable"}
)
IGNORED_FIELD = "Read-only: accepted (as a GET gave it) and not applied."
# A string format of our own: a name zoneinfo knows (zoneinfo.available_timezones()).
TIME_ZONE_FORMAT = "iana-time-zone"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Schemas that the views' extend_schema dicts name by $ref (register_component).
EXTRA_COMPONENTS: dict[str, dict] = {}


def register_component(name: str, schema: dict) -> dict:
    """Put `schema` into the document's components as `name` (for a hand-written request body to $ref)."""
    EXTRA_COMPONENTS[name] = schema
    return schema


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, plus what the views do that it cannot see (the module's docstring)."""

    def get_filter_backends(self):
        # Only `list` (and the actions a view names in filtered_actions) runs filter_queryset; an
        # action answering a list of its own (a run's steps, a workflow's versions) is not filtered.
        action = getattr(self.view, "action", None)
        if action != "list" and action not in getattr(self.view, "filtered_actions", ()):
            return []
        return super().get_filter_backends()

    def _get_filter_parameters(self):
        return [_empty_allowed(parameter) for parameter in super()._get_filter_parameters()]

    def _get_pagination_parameters(self):
        return [_empty_allowed(parameter) for parameter in super()._get_pagination_parameters()]

    def _get_format_parameters(self):
        return [_empty_allowed(parameter) for parameter in super()._get_format_parameters()]

    def _process_override_parameters(self, direction="request"):
        result = super()._process_override_parameters(direction)
        for parameter in self.get_override_parameters():
            if isinstance(parameter, OpenApiParameter) and parameter.allow_blank and not parameter.required:
                built = result.get((parameter.name, parameter.location))
                if built is not None:
                    _empty_allowed(built)
        return result

    def _get_paginator(self):
        # Only GETs are paged: a POST answering a list (a batch of runs, an import) sends it whole.
        return super()._get_paginator() if self.method == "GET" else None

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        # A hand-written body schema (a dict in extend_schema) is the whole body: a POST or PUT needs one.
        if body is not None and self.method in ("POST", "PUT") and isinstance(self.get_request_serializer(), dict):
            body["required"] = True
        return body

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction != "request":
            return schema
        if isinstance(field, serializers.JSONField):
            # Any storable JSON value; null only where the field allows it.
            kept = {key: value for key, value in schema.items() if key in ANNOTATIONS - {"nullable"}}
            types = JSON_TYPES if field.allow_null else [kind for kind in JSON_TYPES if kind != "null"]
            return {**STORABLE_JSON_REF, "type": types, **kept}
        if isinstance(field, serializers.ListField) and not field.allow_empty and schema.get("type") == "array":
            schema["minItems"] = max(schema.get("minItems", 0), 1)
        # A CharField strips its input first: text of spaces alone is blank, which it refuses.
        trimmed = isinstance(field, serializers.CharField) and field.trim_whitespace and not field.allow_blank
        if trimmed and schema.get("type") == "string" and "pattern" not in schema:
            schema["pattern"] = NOT_ONLY_SPACES
        return schema

    def _postprocess_serializer_schema(self, schema, serializer, direction):
        schema = super()._postprocess_serializer_schema(schema, serializer, direction)
        if direction != "request" or "properties" not in schema:
            return schema
        if getattr(serializer, "unknown_fields_refused", False):
            schema["additionalProperties"] = False
            for name in getattr(serializer, "ignored_fields", ()):
                schema["properties"].setdefault(name, {"description": IGNORED_FIELD})
            if getattr(serializer, "partial", False):  # fields a PATCH ignores, which a POST reads
                for name in getattr(serializer, "ignored_when_partial", ()):
                    schema["properties"][name] = {"description": IGNORED_FIELD}
        # Rules that serializer fields cannot state (a pattern, one field's rules depending on another's).
        rules = dict(getattr(serializer, "request_schema_rules", {}))
        for name, extra in rules.pop("properties", {}).items():
            schema["properties"][name] = {**schema["properties"][name], **extra}
        schema.update(rules)
        return schema


def _empty_allowed(parameter: dict) -> dict:
    if parameter.get("in") == "query":
        parameter["allowEmptyValue"] = True
    return parameter


def _is_free_form(schema: dict) -> bool:
    """A schema accepting any JSON value (`{}`, with annotations at most)."""
    return not set(schema) - ANNOTATIONS


def _storable(schema, pending: list) -> dict:
    """The request-side `schema`, its text restricted to what can be stored (in place where it can)."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        pending.append(schema["$ref"].rsplit("/", 1)[-1])
    if _is_free_form(schema):  # any value, null included
        kept = {key: value for key, value in schema.items() if key in ANNOTATIONS - {"nullable"}}
        return {**STORABLE_JSON_REF, **kept}
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types or []
    if "object" in types:
        schema.setdefault("propertyNames", {"not": NO_NUL})
        additional = schema.get("additionalProperties", True)
        if additional is True or (isinstance(additional, dict) and _is_free_form(additional)):
            schema["additionalProperties"] = STORABLE_JSON_REF
    if "string" in types and not {"format", "enum", "const", "not"} & set(schema):
        schema["not"] = NO_NUL
    # Not into `not`: what it holds is what the value must not be.
    for key in ("items", "additionalProperties", "propertyNames", "if", "then", "else"):
        if isinstance(schema.get(key), dict):
            schema[key] = _storable(schema[key], pending)
    for key in ("properties", "patternProperties"):
        for name, value in schema.get(key, {}).items():
            schema[key][name] = _storable(value, pending)
    for key in ("oneOf", "anyOf", "allOf", "prefixItems"):
        if isinstance(schema.get(key), list):
            schema[key] = [_storable(branch, pending) for branch in schema[key]]
    return schema


def _without_null_alternative_to_any(node):
    """drf-spectacular writes a nullable JSONField as oneOf [{}, null], which no null matches (it matches
    both): it becomes `{}`, which admits null already."""
    if isinstance(node, list):
        return [_without_null_alternative_to_any(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _without_null_alternative_to_any(value) for key, value in node.items()}
    one_of = node.get("oneOf")
    if (
        isinstance(one_of, list)
        and {"type": "null"} in one_of
        and any(isinstance(branch, dict) and _is_free_form(branch) for branch in one_of)
    ):
        node.pop("oneOf")
    return node


def _nullable_to_null_type(node):
    """OpenAPI 3.0's `nullable` that drf-spectacular leaves in a 3.1 document (DRF's paginator schema,
    field extensions) becomes JSON Schema's null type, as drf-spectacular writes it elsewhere."""
    if isinstance(node, list):
        return [_nullable_to_null_type(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_to_null_type(value) for key, value in node.items()}
    if node.pop("nullable", False) is True:
        types = node.get("type")
        if isinstance(types, str):
            node["type"] = [types, "null"]
        elif isinstance(types, list) and "null" not in types:
            node["type"] = [*types, "null"]
        elif "$ref" in node or "allOf" in node:
            kept = {key: value for key, value in node.items() if key in ANNOTATIONS}
            rest = {key: value for key, value in node.items() if key not in ANNOTATIONS}
            node = {"oneOf": [rest, {"type": "null"}], **kept}
        elif "oneOf" in node or "anyOf" in node:
            key = "oneOf" if "oneOf" in node else "anyOf"
            node[key] = [*node[key], {"type": "null"}]
        if isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    return node


def schema_for_storable_input(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: what clients may send, as core.request_text and
    core.json_input take it (see the module's docstring)."""
    result = _without_null_alternative_to_any(result)
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.update({name: _without_null_alternative_to_any(schema) for name, schema in EXTRA_COMPONENTS.items()})
    components[STORABLE_JSON] = STORABLE_JSON_SCHEMA
    pending: list[str] = []
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for parameter in operation.get("parameters", []):
                if "schema" in parameter:
                    parameter["schema"] = _storable(parameter["schema"], pending)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if "schema" in media:
                    media["schema"] = _storable(media["schema"], pending)
    done = {STORABLE_JSON}
    while pending:
        name = pending.pop()
        if name in done or name not in components:
            continue
        done.add(name)
        components[name] = _storable(components[name], pending)
    return _nullable_to_null_type(result)


API = "/api/v3"
ID = "$response.body#/id"
# (operation, status) -> the operations its answer's object leads to: (method, path, {parameter: expression}).
# For each object: read, change and delete it, and what hangs off it.
LINKS: dict[tuple[str, str, str], list[tuple[str, str, dict[str, str]]]] = {
    ("post", f"{API}/workflows", "201"): [
        *[(method, f"{API}/workflows/{{id}}", {"id": ID}) for method in ("get", "put", "patch", "delete")],
        ("get", f"{API}/workflows/{{id}}/export", {"id": ID}),
        ("get", f"{API}/workflows/{{id}}/versions", {"id": ID}),
        *[(method, f"{API}/workflows/{{id}}/nodes", {"id": ID}) for method in ("get", "post")],
        *[(method, f"{API}/workflows/{{id}}/runs", {"id": ID}) for method in ("get", "post")],
        ("post", f"{API}/workflows/{{id}}/runs/batch", {"id": ID}),
        *[
            ("post", f"{API}/workflows/{{workflow_id}}/{kind}", {"workflow_id": ID})
            for kind in ("schedules", "event-triggers", "webhooks")
        ],
    ],
    ("delete", f"{API}/workflows/{{id}}", "204"): [
        ("post", f"{API}/workflows/{{id}}/restore", {"id": "$request.path.id"})
    ],
    ("post", f"{API}/workflows/{{id}}/nodes", "201"): [
        (method, f"{API}/nodes/{{id}}", {"id": ID}) for method in ("get", "put", "patch", "delete")
    ],
    ("post", f"{API}/workflows/{{id}}/runs", "202"): [
        *[("get", f"{API}/runs/{{id}}{action}", {"id": ID}) for action in ("", "/steps", "/events")],
        *[("post", f"{API}/runs/{{id}}/{action}", {"id": ID}) for action in ("cancel", "retry")],
    ],
    ("post", f"{API}/workflows/{{workflow_id}}/schedules", "201"): [
        *[(method, f"{API}/schedules/{{id}}", {"id": ID}) for method in ("get", "patch", "delete")],
        ("get", f"{API}/schedules/{{id}}/slots", {"id": ID}),
        *[("post", f"{API}/schedules/{{id}}/{action}", {"id": ID}) for action in ("backfill", "trigger-now")],
    ],
    ("post", f"{API}/workflows/{{workflow_id}}/event-triggers", "201"): [
        *[
            (method, f"{API}/event-triggers/{{trigger_id}}", {"trigger_id": ID})
            for method in ("get", "patch", "delete")
        ],
        ("get", f"{API}/event-triggers/{{trigger_id}}/refusals", {"trigger_id": ID}),
    ],
    ("post", f"{API}/workflows/{{workflow_id}}/webhooks", "201"): [
        *[(method, f"{API}/webhooks/{{hook_id}}", {"hook_id": ID}) for method in ("get", "patch", "delete")],
        ("post", f"{API}/webhooks/{{hook_id}}/rotate", {"hook_id": ID}),
    ],
    ("post", f"{API}/credentials", "201"): [
        (method, f"{API}/credentials/{{id}}", {"id": ID}) for method in ("get", "patch", "delete")
    ],
    ("post", f"{API}/notifications/channels", "201"): [
        *[(method, f"{API}/notifications/channels/{{id}}", {"id": ID}) for method in ("get", "patch", "delete")],
        ("post", f"{API}/notifications/channels/{{id}}/test", {"id": ID}),
    ],
    ("post", f"{API}/notifications/channels/{{id}}/test", "200"): [
        ("get", f"{API}/notifications/deliveries/{{id}}", {"id": ID}),
        ("post", f"{API}/notifications/deliveries/{{id}}/resend", {"id": ID}),
    ],
    ("post", f"{API}/workspaces", "201"): [
        *[(method, f"{API}/workspaces/{{id}}", {"id": ID}) for method in ("get", "patch", "delete")],
        *[(method, f"{API}/workspaces/{{workspace_pk}}/members", {"workspace_pk": ID}) for method in ("get", "post")],
    ],
    ("post", f"{API}/workspaces/{{workspace_pk}}/members", "201"): [
        (
            method,
            f"{API}/workspaces/{{workspace_pk}}/members/{{user_id}}",
            {"workspace_pk": "$request.path.workspace_pk", "user_id": "$response.body#/user/id"},
        )
        for method in ("get", "patch", "delete")
    ],
    ("post", f"{API}/auth/api-keys", "201"): [("delete", f"{API}/auth/api-keys/{{id}}", {"id": ID})],
    ("post", f"{API}/system/worker-pings", "202"): [("get", f"{API}/system/worker-pings/{{ping_id}}", {"ping_id": ID})],
}


def _link_name(method: str, path: str) -> str:
    words = [part.strip("{}").replace("-", "_") for part in path.removeprefix(API).split("/") if part]
    return "".join(word.title().replace("_", "") for word in [method, *words])


def schema_with_links(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: LINKS, as OpenAPI links by operationId (for operations the
    document has: a table entry whose operation is gone is dropped)."""
    paths = result.get("paths", {})
    for (method, path, status), targets in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        links = response.setdefault("links", {})
        for target_method, target_path, parameters in targets:
            target = paths.get(target_path, {}).get(target_method)
            if target is not None:
                links[_link_name(target_method, target_path)] = {
                    "operationId": target["operationId"],
                    "parameters": parameters,
                }
    return result
