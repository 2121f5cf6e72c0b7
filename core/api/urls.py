from django.urls import path

from core.api import views

urlpatterns = [
    path("system/worker-pings", views.WorkerPingListView.as_view(), name="worker-ping-list"),
    path("system/worker-pings/<uuid:ping_id>", views.WorkerPingDetailView.as_view(), name="worker-ping-detail"),
]
