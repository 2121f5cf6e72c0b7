"""Browsers' Web Push subscriptions, each user's own, and the server's VAPID public key.

GET     /api/v3/notifications/push-subscriptions         the caller's subscribed browsers
POST    /api/v3/notifications/push-subscriptions         subscribe (the browser's PushSubscription.toJSON())
DELETE  /api/v3/notifications/push-subscriptions/{id}    unsubscribe one (someone else's: 404)
GET     /api/v3/notifications/push-key                   {public_key, configured}
"""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import selectors
from notifications.models import PushSubscription
from notifications.services import push


class PushSubscriptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PushSubscription
        fields = ["id", "endpoint", "user_agent", "created_at", "last_used_at"]


class PushKeysSerializer(serializers.Serializer):
    p256dh = serializers.CharField(max_length=200, help_text="The browser's P-256 public key, base64url.")
    auth = serializers.CharField(max_length=200, help_text="The browser's 16-byte authentication secret, base64url.")

    unknown_fields_refused = True
    # base64url of 65 bytes starting 0x04 (an uncompressed point), and of 16 bytes; padding allowed.
    request_schema_rules = {
        "properties": {
            "p256dh": {"pattern": "^B[A-Za-z0-9_-]{86}=?$"},
            "auth": {"pattern": "^[A-Za-z0-9_-]{22}(==)?$"},
        }
    }


class PushSubscriptionWriteSerializer(serializers.Serializer):
    """Documents the body of POST: what a browser's PushSubscription.toJSON() gives; the service checks it."""

    unknown_fields_refused = True

    endpoint = serializers.CharField(
        max_length=push.ENDPOINT_MAX_LENGTH,
        help_text="The push service's https URL for this browser; its address must pass the outbound rules.",
    )
    keys = PushKeysSerializer()
    expirationTime = serializers.IntegerField(  # noqa: N815 - the browser's own name for it
        required=False, allow_null=True, help_text="Accepted and not kept."
    )

    request_schema_rules = {"properties": {"endpoint": {"pattern": "^[Hh][Tt][Tt][Pp][Ss]://[^\\s/?#@]+([/?]\\S*)?$"}}}


class PushKeySerializer(serializers.Serializer):
    public_key = serializers.CharField(help_text="The VAPID public key (base64url): the applicationServerKey.")
    configured = serializers.BooleanField(help_text="False: the server sends no push notifications.")


class PushSubscriptionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's own subscribed browsers."""

    serializer_class = PushSubscriptionSerializer
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PushSubscription.objects.none()
        return selectors.push_subscriptions_for_user(self.request.user)

    @extend_schema(
        request=PushSubscriptionWriteSerializer,
        responses={201: PushSubscriptionSerializer, 200: PushSubscriptionSerializer},
    )
    def create(self, request):
        """Subscribe this browser; the same endpoint again updates its keys (200)."""
        subscription, created = push.push_subscription_save(
            actor=request.user,
            data=request.data,
            user_agent=request.headers.get("user-agent", ""),
            request=request,
        )
        return Response(
            PushSubscriptionSerializer(subscription).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        subscription = selectors.push_subscription_get(request.user, pk)
        push.push_subscription_delete(subscription=subscription, actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PushKeyView(APIView):
    """The key browsers subscribe with, and whether this server sends push notifications at all."""

    @extend_schema(responses={200: PushKeySerializer})
    def get(self, request):
        return Response(PushKeySerializer(selectors.push_key()).data)
