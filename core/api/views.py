from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core import services


class WorkerPingCreateSerializer(serializers.Serializer):
    delay_ms = serializers.IntegerField(min_value=0, max_value=services.MAX_DELAY_MS, default=0)


class WorkerPingSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["queued", "done"])
    delay_ms = serializers.IntegerField()
    worker = serializers.CharField(allow_null=True)
    enqueued_at = serializers.FloatField(help_text="Unix time.")
    completed_at = serializers.FloatField(allow_null=True, help_text="Unix time.")
    round_trip_ms = serializers.SerializerMethodField()

    def get_round_trip_ms(self, ping: dict) -> float | None:
        if ping["completed_at"] is None:
            return None
        return round((ping["completed_at"] - ping["enqueued_at"]) * 1000, 2)


class WorkerPingListView(APIView):
    @extend_schema(request=WorkerPingCreateSerializer, responses={202: WorkerPingSerializer})
    def post(self, request):
        """Send a ping through the broker to a worker; it answers after `delay_ms`."""
        data = WorkerPingCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ping = services.worker_ping_start(user_id=str(request.user.pk), **data.validated_data)
        return Response(WorkerPingSerializer(ping).data, status=status.HTTP_202_ACCEPTED)


class WorkerPingDetailView(APIView):
    @extend_schema(responses=WorkerPingSerializer)
    def get(self, request, ping_id):
        ping = services.worker_ping_get(ping_id=str(ping_id), user_id=str(request.user.pk))
        if ping is None:
            raise Http404("No such worker ping (they expire after an hour).")
        return Response(WorkerPingSerializer(ping).data)
