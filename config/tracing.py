"""OpenTelemetry tracing: off unless the standard variables ask for it.

On when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, or when
OTEL_TRACES_EXPORTER names exporters (`otlp`, `console`; `none` turns tracing off whatever else is
set). The SDK reads the rest itself: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS, OTEL_PYTHON_DJANGO_EXCLUDED_URLS. OTLP
goes over HTTP (protobuf); the gRPC exporter is not installed.

What is traced: Django requests, Celery task sends and runs (the trace context rides in the
message's headers, so a trigger's trace goes on in the worker that runs its steps), PostgreSQL
queries (psycopg), Redis commands, and every outbound call of the engine (`workflows.engine.egress`
makes its own client span and sends `traceparent`: its HTTP client is httpx2, which no instrumentation
knows). Log lines carry `trace_id` and `span_id` while a span is current (core.request_context).
Each process sets it up once, as Django starts (core.apps); the SDK's exporting thread follows a fork.
"""

import os

from django.core.exceptions import ImproperlyConfigured

DEFAULT_SERVICE_NAME = "document-workflow-chain"
_state = {"configured": False}


def exporter_names() -> list[str]:
    """The exporters the environment asks for; none when tracing is off."""
    named = [name.strip().lower() for name in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    if "none" in named or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return []
    if named:
        return named
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return ["otlp"] if endpoint else []


def _exporter(name: str):
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ImproperlyConfigured(f"OTEL_TRACES_EXPORTER: no exporter {name!r} here (otlp, console or none).")
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol not in (None, "", "http/protobuf"):
        raise ImproperlyConfigured(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/protobuf is installed.")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def configure() -> bool:
    """Set up tracing in this process if the environment asks for it; whether it is on."""
    names = exporter_names()
    if not names or _state["configured"]:
        return _state["configured"]
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    defaults = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: DEFAULT_SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(defaults))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument()
    RedisInstrumentor().instrument()
    _state["configured"] = True
    return True
