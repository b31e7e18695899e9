"""REST API of a member's notifications: their own inbox, page by page (unread first), and marking read.

Each notification's title and body come in the caller's language (Accept-Language, or the language the
member chose). Another member's notification answers 404, like one that does not exist.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.models import Notification
from marketplace.pagination import CappedLimitOffsetPagination, paginated_response, paginated_serializer
from marketplace.permissions import IsOrganisationMember
from marketplace.selectors_notifications import notification_list
from marketplace.services.notifications import notification_mark_all_read, notification_mark_read, notification_text


class NotificationOutput(serializers.ModelSerializer):
    title = serializers.SerializerMethodField(help_text="In the caller's language.")
    body = serializers.SerializerMethodField(help_text="In the caller's language.")
    read = serializers.SerializerMethodField()
    url = serializers.CharField(help_text="The page it is about (an order or a quote), relative to the site.")

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "url", "read", "read_at", "created_at"]

    def get_title(self, notification: Notification) -> str:
        return notification_text(notification)[0]

    def get_body(self, notification: Notification) -> str:
        return notification_text(notification)[1]

    def get_read(self, notification: Notification) -> bool:
        return notification.read_at is not None


class NotificationListApi(APIView):
    permission_classes = [IsOrganisationMember]

    @extend_schema(operation_id="notifications_list", parameters=[*CappedLimitOffsetPagination.parameters()],
                   responses=paginated_serializer(NotificationOutput),
                   summary="Your notifications, unread first, then newest first")
    def get(self, request: Request) -> Response:
        return paginated_response(queryset=notification_list(user=request.user),  # type: ignore[arg-type]
                                  serializer_class=NotificationOutput, request=request, view=self)


class NotificationReadApi(APIView):
    permission_classes = [IsOrganisationMember]

    @extend_schema(request=None, responses=NotificationOutput, summary="Mark one of your notifications read")
    def post(self, request: Request, notification_id: int) -> Response:
        notification = notification_mark_read(user=request.user, notification_id=notification_id)  # type: ignore[arg-type]
        return Response(NotificationOutput(notification).data)


class NotificationReadAllApi(APIView):
    permission_classes = [IsOrganisationMember]

    @extend_schema(request=None, summary="Mark all your notifications read",
                   responses=inline_serializer("NotificationReadAllOutput", {
                       "marked": serializers.IntegerField(help_text="How many were unread.")}))
    def post(self, request: Request) -> Response:
        request.data  # noqa: B018 - it takes no body, but one sent must be JSON: a malformed one is a 400
        marked = notification_mark_all_read(user=request.user)  # type: ignore[arg-type]
        return Response({"marked": marked})
