from django.urls import path

from analytics.dashboard import views

app_name = "analytics"

urlpatterns = [
    path("", views.workspace_analytics, name="workspace"),
    path("workflows/<uuid:workflow_id>/", views.workflow_analytics, name="workflow"),
]
