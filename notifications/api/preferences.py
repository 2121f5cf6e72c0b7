"""The caller's own notification preferences.

GET  /api/v3/notifications/preferences   what is muted, the quiet hours, the time zone; and the
                                         event types and channel kinds there are to mute
PUT  /api/v3/notifications/preferences   replace them (the two lists may be sent back; ignored)
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.openapi import TIME_ZONE_FORMAT
from notifications.models import Preference
from notifications.services import preferences
from notifications.services.events import EVENT_TYPES


class QuietHoursSerializer(serializers.Serializer):
    start = serializers.RegexField(preferences.CLOCK.pattern, help_text='"HH:MM" in the time zone.')
    end = serializers.RegexField(preferences.CLOCK.pattern, help_text='"HH:MM"; before start: over midnight.')


class PreferenceWriteSerializer(serializers.Serializer):
    """Documents the body of PUT; the service validates it."""

    unknown_fields_refused = True
    ignored_fields = preferences.IGNORED_FIELDS
    request_schema_rules = {"properties": {"timezone": {"format": TIME_ZONE_FORMAT}}}

    muted_events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), help_text="Event types you get no message for."
    )
    muted_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=preferences.KINDS),
        help_text="Channel kinds you get no message by (in_app: not even in your inbox).",
    )
    quiet_hours = QuietHoursSerializer(
        allow_null=True, help_text="Messages other than in-app ones wait until they end; null for none."
    )
    timezone = serializers.CharField(max_length=preferences.TIMEZONE_MAX_LENGTH, help_text="An IANA time zone.")


class PreferenceSerializer(PreferenceWriteSerializer):
    event_types = serializers.ListField(child=serializers.CharField(), help_text="Every event type there is.")
    kinds = serializers.ListField(child=serializers.CharField(), help_text="Every channel kind there is.")


def shape(preference: Preference) -> dict:
    start, end = preference.quiet_hours_start, preference.quiet_hours_end
    return {
        "muted_events": list(preference.muted_events),
        "muted_kinds": list(preference.muted_kinds),
        "quiet_hours": {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")} if start and end else None,
        "timezone": preference.timezone,
        "event_types": list(EVENT_TYPES),
        "kinds": list(preferences.KINDS),
    }


class PreferenceView(APIView):
    @extend_schema(responses=PreferenceSerializer)
    def get(self, request: Request) -> Response:
        return Response(shape(preferences.preference_get(user=request.user)))

    @extend_schema(request=PreferenceWriteSerializer, responses=PreferenceSerializer)
    def put(self, request: Request) -> Response:
        preference = preferences.preference_update(user=request.user, data=request.data, request=request)
        return Response(shape(preference))
