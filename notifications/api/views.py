"""Notification channels and deliveries (admins and owners of a workspace), and each user's inbox.

    GET/POST          /api/v3/notifications/channels              list, create
    GET/PATCH/DELETE  /api/v3/notifications/channels/{id}
    POST              /api/v3/notifications/channels/{id}/test     send a test message now → the delivery
    GET/POST          /api/v3/notifications/rules                 list, create (editors and above)
    GET/PATCH/DELETE  /api/v3/notifications/rules/{id}
    GET/POST          /api/v3/notifications/templates             list, create (editors and above)
    GET/PATCH/DELETE  /api/v3/notifications/templates/{id}         (DELETE: 409 while a rule uses it)
    POST              /api/v3/notifications/templates/preview      render fields with a sample event
    GET               /api/v3/notifications/deliveries            filters status, channel, rule, since, workspace
    GET               /api/v3/notifications/deliveries/{id}
    POST              /api/v3/notifications/deliveries/{id}/resend  a dead or failed one (409 otherwise)
    GET               /api/v3/notifications                       the caller's inbox (filter unread)
    POST              /api/v3/notifications/{id}/read
    POST              /api/v3/notifications/read-all
    GET               /api/v3/notifications/unread-count

A channel or delivery of a workspace the caller is not a member of does not exist (404); members
below admin get 403 (below editor for rules and templates). Someone else's notification does not exist either.
"""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.access import workspace_named_or_default
from core.filters import BooleanFilter, DateTimeFilter
from notifications import selectors
from notifications.api.serializers import (
    ChannelSerializer,
    ChannelWriteSerializer,
    DeliverySerializer,
    NotificationSerializer,
    ReadAllSerializer,
    RenderedSerializer,
    RuleSerializer,
    RuleWriteSerializer,
    TemplatePreviewSerializer,
    TemplateSerializer,
    TemplateWriteSerializer,
    UnreadCountSerializer,
)
from notifications.models import Channel, Delivery, Notification, Rule, Template
from notifications.services import channels, deliveries, inbox, rules, templates

UUID_PATTERN = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class ChannelFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Channel.Kind.choices)
    workspace = django_filters.UUIDFilter(field_name="workspace_id")
    enabled = BooleanFilter()

    class Meta:
        model = Channel
        fields = ["kind", "workspace", "enabled"]


class ChannelViewSet(viewsets.GenericViewSet):
    serializer_class = ChannelSerializer
    filterset_class = ChannelFilter
    search_fields = ["name"]
    ordering_fields = ["name", "kind", "created_at"]
    ordering = ["name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Channel.objects.none()
        return selectors.channels_for_user(self.request.user)

    def _get(self) -> Channel:
        return selectors.channel_get(self.request.user, self.kwargs["pk"])

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ChannelSerializer(page, many=True).data)

    @extend_schema(request=ChannelWriteSerializer, responses={201: ChannelSerializer})
    def create(self, request):
        channel = channels.channel_create(
            actor=request.user, workspace=_workspace_of_body(request), data=request.data, request=request
        )
        return Response(ChannelSerializer(channel).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        return Response(ChannelSerializer(self._get()).data)

    @extend_schema(request=ChannelWriteSerializer(partial=True))
    def partial_update(self, request, pk=None):
        channel = channels.channel_update(channel=self._get(), actor=request.user, data=request.data, request=request)
        return Response(ChannelSerializer(channel).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        channels.channel_delete(channel=self._get(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a test message through the channel now, once; the delivery says how it went."""
        delivery = deliveries.channel_test(channel=self._get(), actor=request.user, request=request)
        return Response(DeliverySerializer(delivery).data)


def _workspace_of_body(request):
    data = request.data
    return workspace_named_or_default(request.user, data.get("workspace") if isinstance(data, dict) else None)


class RuleFilter(django_filters.FilterSet):
    workspace = django_filters.UUIDFilter(field_name="workspace_id")
    enabled = BooleanFilter()
    event = django_filters.CharFilter(field_name="events", lookup_expr="contains", method="by_event")

    class Meta:
        model = Rule
        fields = ["workspace", "enabled", "event"]

    def by_event(self, queryset, name, value):
        return queryset.filter(events__contains=[value])


class RuleViewSet(viewsets.GenericViewSet):
    serializer_class = RuleSerializer
    filterset_class = RuleFilter
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Rule.objects.none()
        return selectors.rules_for_user(self.request.user)

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(RuleSerializer(page, many=True).data)

    @extend_schema(request=RuleWriteSerializer, responses={201: RuleSerializer})
    def create(self, request):
        rule = rules.rule_create(
            actor=request.user, workspace=_workspace_of_body(request), data=request.data, request=request
        )
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        return Response(RuleSerializer(selectors.rule_get(request.user, pk)).data)

    @extend_schema(request=RuleWriteSerializer(partial=True))
    def partial_update(self, request, pk=None):
        rule = selectors.rule_get(request.user, pk)
        return Response(
            RuleSerializer(rules.rule_update(rule=rule, actor=request.user, data=request.data, request=request)).data
        )

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        rules.rule_delete(rule=selectors.rule_get(request.user, pk), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplateFilter(django_filters.FilterSet):
    workspace = django_filters.UUIDFilter(field_name="workspace_id")

    class Meta:
        model = Template
        fields = ["workspace"]


class TemplateViewSet(viewsets.GenericViewSet):
    serializer_class = TemplateSerializer
    filterset_class = TemplateFilter
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Template.objects.none()
        return selectors.templates_for_user(self.request.user)

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(TemplateSerializer(page, many=True).data)

    @extend_schema(request=TemplateWriteSerializer, responses={201: TemplateSerializer})
    def create(self, request):
        template = templates.template_create(
            actor=request.user, workspace=_workspace_of_body(request), data=request.data, request=request
        )
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        return Response(TemplateSerializer(selectors.template_get(request.user, pk)).data)

    @extend_schema(request=TemplateWriteSerializer(partial=True))
    def partial_update(self, request, pk=None):
        template = templates.template_update(
            template=selectors.template_get(request.user, pk), actor=request.user, data=request.data, request=request
        )
        return Response(TemplateSerializer(template).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        templates.template_delete(
            template=selectors.template_get(request.user, pk), actor=request.user, request=request
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TemplatePreviewSerializer, responses={200: RenderedSerializer})
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def preview(self, request):
        """Render a template's fields (saved or not) with a sample event of `event_type`."""
        data = request.data
        workspace = _workspace_of_body(request)
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if key != "workspace"}
        rendered = templates.template_preview(actor=request.user, workspace=workspace, data=data)
        return Response({"subject": rendered.subject, "body": rendered.body, "formats": rendered.formats})


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Delivery.Status.choices)
    channel = django_filters.UUIDFilter(field_name="channel_id")
    rule = django_filters.UUIDFilter(field_name="rule_id")
    workspace = django_filters.UUIDFilter(field_name="workspace_id")
    since = DateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Delivery
        fields = ["status", "channel", "rule", "workspace", "since"]


class DeliveryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter
    search_fields: list = []
    ordering_fields = ["created_at", "sent_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Delivery.objects.none()
        return selectors.deliveries_for_user(self.request.user)

    def retrieve(self, request, pk=None):
        return Response(DeliverySerializer(selectors.delivery_get(request.user, pk)).data)

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def resend(self, request, pk=None):
        """Send a dead or failed delivery again under its idempotency key (409 in any other state)."""
        delivery = selectors.delivery_get(request.user, pk)
        delivery = deliveries.delivery_resend(delivery=delivery, actor=request.user, request=request)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class NotificationFilter(django_filters.FilterSet):
    unread = BooleanFilter(field_name="read_at", lookup_expr="isnull", help_text="Only unread (true) or read (false).")

    class Meta:
        model = Notification
        fields = ["unread"]


class NotificationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's own inbox."""

    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    search_fields: list = []
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        return selectors.notifications_for_user(self.request.user)

    @extend_schema(request=None, responses={200: NotificationSerializer})
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        notification = selectors.notification_get(request.user, pk)
        return Response(
            NotificationSerializer(inbox.notification_read(notification=notification, actor=request.user)).data
        )

    @extend_schema(request=None, responses={200: ReadAllSerializer})
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        return Response({"marked": inbox.notifications_read_all(actor=request.user)})

    @extend_schema(responses={200: UnreadCountSerializer})
    @action(detail=False, methods=["get"], url_path="unread-count", filter_backends=[], pagination_class=None)
    def unread_count(self, request):
        return Response({"count": selectors.unread_count(request.user)})
