from django.urls import path

from marketplace import apis_notifications

urlpatterns = [
    path("", apis_notifications.NotificationListApi.as_view(), name="api-notification-list"),
    path("<int:notification_id>/read/", apis_notifications.NotificationReadApi.as_view(),
         name="api-notification-read"),
    path("read-all/", apis_notifications.NotificationReadAllApi.as_view(), name="api-notification-read-all"),
]
