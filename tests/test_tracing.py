"""Tracing end to end: a run started by a request to gunicorn is one trace from that request, through
the Celery worker that runs its step, to the outbound call the step makes. The processes export over
OTLP/HTTP to a receiver in the test (a real peer, decoding the protobuf the SDK sends)."""

import json
import re
import threading

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from rest_framework_simplejwt.tokens import RefreshToken
from werkzeug import Response

from config import tracing
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.processes import Process, free_port, wait_for_http, wait_until
from tests.test_modes import distributed_env
from tests.workflows.helpers import create
from tests.workflows.workers import start_worker, wait_for_run, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver:
    """An OTLP/HTTP trace receiver: every span it is sent, as (service, trace id, span name, kind)."""

    def __init__(self, server) -> None:
        self.spans: list[tuple[str, str, str, int]] = []
        self.traceparents: list[str] = []
        self.lock = threading.Lock()
        server.expect_request("/v1/traces", method="POST").respond_with_handler(self._traces)
        server.expect_request("/target").respond_with_handler(self._target)
        self.endpoint = server.url_for("/").rstrip("/")
        self.target = server.url_for("/target")

    def _traces(self, request) -> Response:
        export = ExportTraceServiceRequest.FromString(request.get_data())
        with self.lock:
            for resource_spans in export.resource_spans:
                attributes = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            (attributes.get("service.name", ""), span.trace_id.hex(), span.name, span.kind)
                        )
        body = ExportTraceServiceResponse().SerializeToString()
        return Response(body, content_type="application/x-protobuf")

    def _target(self, request) -> Response:
        with self.lock:
            self.traceparents.append(request.headers.get("traceparent", ""))
        return Response('{"ok": true}', content_type="application/json")

    def of(self, service: str) -> list[tuple[str, str, str, int]]:
        with self.lock:
            return [span for span in self.spans if span[0] == service]


def otel_env(receiver: Receiver, service: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def test_a_triggers_trace_goes_on_in_the_worker_and_into_the_steps_outbound_call(threaded_server):
    receiver = Receiver(threaded_server)
    user = UserFactory()
    workflow = create(
        client_for(user),
        {
            "name": "Traced",
            "status": "active",
            "nodes": [{"key": "call", "type": "http_request", "config": {"url": receiver.target}}],
        },
    )
    worker = start_worker("traced", env=worker_env(**otel_env(receiver, "dwc-worker")))
    port = free_port()
    web = Process(
        [
            ".venv/bin/gunicorn",
            "-c",
            "config/gunicorn.py",
            "config.wsgi",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        distributed_env(**otel_env(receiver, "dwc-web")),
        "gunicorn-traced",
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", web)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/api/v3/workflows/{workflow['id']}/runs",
            json={"input": {}},
            headers={"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"},
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        assert wait_for_run(answer.json()["id"], timeout=30).status == "succeeded"

        def web_requests() -> list:  # server spans (kind 2) of the request that started the run
            return [span for span in receiver.of("dwc-web") if span[3] == 2 and "runs" in span[2]]

        wait_until(web_requests, 20, message="the web request's span exported")
        trace_id = web_requests()[0][1]

        def worker_spans() -> list:
            return [span for span in receiver.of("dwc-worker") if span[1] == trace_id]

        def worker_span_names() -> set[str]:
            return {span[2] for span in worker_spans()}

        # The Celery task that ran the step, in the request's trace (its span ends, and is exported,
        # after the call's and the result's).
        wait_until(lambda: any("execute_step" in name for name in worker_span_names()), 20, message="task span")
        client_calls = [span for span in worker_spans() if span[3] == 3 and span[2] == "GET"]  # kind 3: client
        assert len(client_calls) == 1, worker_span_names()
        assert receiver.traceparents and receiver.traceparents[0].split("-")[1] == trace_id
        # The worker's log lines of that step name the trace.
        logged = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
        assert any(entry.get("trace_id") == trace_id for entry in logged)
    finally:
        web.stop()
        worker.stop()


def test_tracing_is_off_unless_the_environment_asks(monkeypatch):
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert tracing.exporter_names() == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing.exporter_names() == ["otlp"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.exporter_names() == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,otlp")
    assert tracing.exporter_names() == ["console", "otlp"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(Exception, match=re.escape("no exporter 'jaeger'")):
        tracing._exporter("jaeger")
