"""Inbound webhooks: their management API, and the /hooks/<token>/ endpoint that starts runs."""

import logging
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Role, ensure_role
from accounts.api.serializers import IpAllowListField
from accounts.ip_allow_lists import IpNotAllowed
from core import shutdown
from core.problems import Conflict, ProblemResponse, flatten_errors, unavailable_dependency, unavailable_response
from core.throttling import client_ip
from workflows import run_ends, selectors
from workflows.api.serializers import RunSerializer
from workflows.models import Run, WebhookTrigger
from workflows.services import webhooks as services
from workflows.services.analytics_feed import webhook_rejected_count
from workflows.services.notices import webhook_rejected_submit

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 30
NO_SUCH_WEBHOOK = "No such webhook."


class WebhookSerializer(serializers.ModelSerializer):
    signed = serializers.SerializerMethodField()
    address = serializers.SerializerMethodField(help_text="The URL with the token masked; the token is shown once.")

    class Meta:
        model = WebhookTrigger
        fields = [
            "id",
            "workflow",
            "address",
            "signed",
            "dedupe_header",
            "include_headers",
            "allowed_ips",
            "created_at",
            "rotated_at",
        ]

    def get_signed(self, hook: WebhookTrigger) -> bool:
        return hook.encrypted_secret is not None

    def get_address(self, hook: WebhookTrigger) -> str:
        return f"/hooks/…{hook.token_hint}/"


class WebhookCreateSerializer(serializers.Serializer):
    secret = serializers.CharField(required=False, allow_blank=True, max_length=500, write_only=True)
    dedupe_header = serializers.RegexField(r"^[A-Za-z0-9-]{0,100}$", required=False, allow_blank=True, default="")
    include_headers = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=20)
    allowed_ips = IpAllowListField(
        required=False, help_text="Deliveries only from these addresses or CIDR networks; [] from anywhere."
    )


class WebhookUpdateSerializer(serializers.Serializer):
    allowed_ips = IpAllowListField(help_text="Deliveries only from these addresses or CIDR networks; [] from anywhere.")


def _with_token(request, hook: WebhookTrigger, token: str) -> dict:
    return {
        **WebhookSerializer(hook).data,
        "token": token,
        "url": request.build_absolute_uri(f"/hooks/{token}/"),
    }


def _hook_for(request, hook_id, minimum: str) -> WebhookTrigger:
    hook = WebhookTrigger.objects.select_related("workflow__workspace").filter(pk=hook_id).first()
    if hook is None or hook.workflow.is_deleted:
        raise Http404(NO_SUCH_WEBHOOK)
    ensure_role(request.user, hook.workflow.workspace, minimum, not_found=NO_SUCH_WEBHOOK)
    return hook


class WorkflowWebhooksView(APIView):
    @extend_schema(responses=WebhookSerializer(many=True))
    def get(self, request, workflow_id):
        workflow = selectors.workflow_get(request.user, workflow_id)
        return Response(WebhookSerializer(workflow.webhooks.all(), many=True).data)

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookSerializer})
    def post(self, request, workflow_id):
        workflow = selectors.workflow_get(request.user, workflow_id)
        data = WebhookCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hook, token = services.webhook_create(
            workflow=workflow, actor=request.user, **data.validated_data, request=request
        )
        return Response(_with_token(request, hook, token), status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    @extend_schema(responses=WebhookSerializer)
    def get(self, request, hook_id):
        return Response(WebhookSerializer(_hook_for(request, hook_id, Role.VIEWER)).data)

    @extend_schema(request=WebhookUpdateSerializer, responses=WebhookSerializer)
    def patch(self, request, hook_id):
        hook = _hook_for(request, hook_id, Role.EDITOR)  # who, before what: a viewer gets 403 whatever the body
        data = WebhookUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if "allowed_ips" in data.validated_data:  # a PATCH without it changes nothing
            hook = services.webhook_update(hook=hook, actor=request.user, **data.validated_data, request=request)
        return Response(WebhookSerializer(hook).data)

    @extend_schema(responses={204: None})
    def delete(self, request, hook_id):
        services.webhook_delete(hook=_hook_for(request, hook_id, Role.VIEWER), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateView(APIView):
    @extend_schema(request=None, responses=WebhookSerializer)
    def post(self, request, hook_id):
        hook = _hook_for(request, hook_id, Role.VIEWER)
        token = services.webhook_rotate(hook=hook, actor=request.user, request=request)
        return Response(_with_token(request, hook, token))


async def _wait_for_run_end(run: Run, expectation: run_ends.Expectation, seconds: float) -> Run:
    """The run once it ended, or as it is when `seconds` ran out or the server began to stop
    (`core.shutdown`; `manage.py serve` then wakes every waiter).

    `expectation` was registered before `run` was read (`_accept`), so the announcement of an end
    committed since wakes it (workflows.run_ends); the database, which is the truth, decides. It
    also reads the run every DWC_WEBHOOK_WAIT_RECHECK_SECONDS, in case an announcement was lost.
    It holds no thread while waiting (the synchronous middleware above the view keeps the
    request's own) and no database connection.
    """
    read = sync_to_async(_run_read)
    deadline = time.monotonic() + seconds
    try:
        while not run.is_finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or shutdown.began():
                break
            await expectation.wait(min(remaining, settings.DWC_WEBHOOK_WAIT_RECHECK_SECONDS))
            run = await read(run.pk)
    finally:
        expectation.close()
    return run


def _run_read(run_id) -> Run:
    try:
        return Run.objects.get(pk=run_id)
    finally:
        _release_connection()


def _release_connection() -> None:
    """Give this thread's database connection back to the pool, as the request's end would: the
    pool has a few connections for the whole server, and a delivery that waits must hold none."""
    if connection.settings_dict.get("OPTIONS", {}).get("pool"):
        connection.close()


def _problem(status_code: int, detail: str, code: str, **extra) -> HttpResponse:
    return ProblemResponse(status_code, detail, code=code, **extra)


@csrf_exempt
async def inbound_hook(request: HttpRequest, token: str) -> HttpResponse:
    """POST /hooks/<token>/: start a run with the JSON body; `?wait=N` answers with its outcome.
    While the database or Redis cannot be reached: 503 with Retry-After, so the sender retries."""
    try:
        with shutdown.waiting():  # a stopping server lets the delivery finish and answer
            return await _inbound_hook(request, token)
    except Exception as error:
        dependency = unavailable_dependency(error)
        if dependency is None:
            raise
        logger.warning("webhook answered 503: %s unavailable", dependency, exc_info=error)
        return unavailable_response(request, dependency)


async def _inbound_hook(request: HttpRequest, token: str) -> HttpResponse:
    # Everything up to the run's start in one trip to a thread, not one per query: each trip
    # between the event loop and the request's thread costs CPU and a turn of the GIL.
    accepted = await sync_to_async(_accept)(request, token)
    if isinstance(accepted, HttpResponse):
        return accepted
    run, wait = accepted.run, accepted.wait
    if accepted.expectation is not None:
        run = await _wait_for_run_end(run, accepted.expectation, wait)
        if run.is_finished:
            body = {"run_id": str(run.pk), "status": run.status, "output": run.output, "error": run.error}
            return JsonResponse(body, status=200)
    data = await sync_to_async(_run_data)(run.pk if wait > 0 else run)
    return JsonResponse(data, status=202 if accepted.created or wait > 0 else 200)


def _run_data(run: Run | str) -> dict:
    """The answer for a run not ended: as it is now, read again unless given."""
    if not isinstance(run, Run):
        run = _run_read(run)
    return {"run_id": str(run.pk), **RunSerializer(run).data}


@dataclass(frozen=True)
class _Accepted:
    run: Run
    created: bool
    wait: float  # seconds
    expectation: run_ends.Expectation | None  # of the run's end, when the sender waits for it


def _refused(
    request: HttpRequest, hook: WebhookTrigger, reason: str, status_code: int, detail: str, code: str, **extra
) -> HttpResponse:
    """The problem answering a refused delivery, and its `webhook.rejected` event. The refusal's own
    transaction (a signed delivery's) has rolled back by now, so the event is not lost with it."""
    webhook_rejected_submit(hook=hook, reason=reason, detail=detail, address=client_ip(request))
    webhook_rejected_count(hook=hook, reason=reason)
    return _problem(status_code, detail, code, **extra)


def _accept(request: HttpRequest, token: str) -> HttpResponse | _Accepted:
    """Check the delivery and start its run, or refuse it."""
    if request.method != "POST":
        response = _problem(405, "Webhooks accept POST only.", "method_not_allowed")
        response["Allow"] = "POST"
        return response
    try:
        hook = services.webhook_for_token(token)
    except Http404:
        return _problem(404, services.NO_SUCH_HOOK, "not_found")
    refuse = services.Refusal
    if hook.allowed_ips:  # before the rate: deliveries it refuses do not spend the webhook's budget
        try:
            services.webhook_address_check(hook=hook, address=client_ip(request))
        except IpNotAllowed as error:
            return _refused(request, hook, refuse.IP_NOT_ALLOWED, 403, str(error), error.code, **error.problem_members)
    retry_after = services.rate_limited(hook)
    if retry_after:
        detail = "Too many deliveries to this webhook; slow down."
        response = _refused(request, hook, refuse.RATE_LIMITED, 429, detail, "throttled")
        response["Retry-After"] = str(retry_after)
        return response
    if request.content_type != "application/json":
        detail = "Send the body as application/json."
        return _refused(request, hook, refuse.UNSUPPORTED_MEDIA_TYPE, 415, detail, "unsupported_media_type")
    too_large = f"The body is over {settings.DWC_WEBHOOK_MAX_BODY_BYTES} bytes."
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.DWC_WEBHOOK_MAX_BODY_BYTES:
        return _refused(request, hook, refuse.PAYLOAD_TOO_LARGE, 413, too_large, "payload_too_large")
    body = request.body
    if len(body) > settings.DWC_WEBHOOK_MAX_BODY_BYTES:
        return _refused(request, hook, refuse.PAYLOAD_TOO_LARGE, 413, too_large, "payload_too_large")
    try:
        wait = min(float(request.GET.get("wait", 0)), MAX_WAIT_SECONDS)
    except ValueError:
        detail = "wait must be a number of seconds (at most 30)."
        return _refused(request, hook, refuse.INVALID_REQUEST, 400, detail, "invalid")
    delivery = services.Delivery(body=body, headers={name.lower(): value for name, value in request.headers.items()})
    try:
        run, created = services.webhook_deliver(hook=hook, delivery=delivery)
    except services.WebhookUnauthorized as error:
        return _refused(request, hook, refuse.SIGNATURE_INVALID, 401, str(error), "not_authenticated")
    except Conflict as error:
        return _refused(request, hook, refuse.WORKFLOW_NOT_ACTIVE, 409, str(error), "conflict")
    except ValidationError as error:
        errors = flatten_errors(error.message_dict)
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
        return _refused(request, hook, refuse.PAYLOAD_INVALID, 400, detail, "validation_error", errors=errors)
    if wait <= 0:
        return _Accepted(run, created, wait, None)
    expectation = run_ends.expect(run.pk)
    try:
        run.refresh_from_db(fields=["status"])  # after `expect`: an end committed since is announced
        if run.is_finished:
            run.refresh_from_db()
    except BaseException:
        expectation.close()
        raise
    finally:
        _release_connection()
    return _Accepted(run, created, wait, expectation)


urlpatterns = [
    path("workflows/<uuid:workflow_id>/webhooks", WorkflowWebhooksView.as_view(), name="workflow-webhooks"),
    path("webhooks/<uuid:hook_id>", WebhookDetailView.as_view(), name="webhook-detail"),
    path("webhooks/<uuid:hook_id>/rotate", WebhookRotateView.as_view(), name="webhook-rotate"),
]
