from django.urls import path

from workflows.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.workflow_list, name="workflows"),
    path("runs/", views.run_list, name="runs"),
    path("budgets/", views.budget_list, name="budgets"),
    path("workflows/new/", views.workflow_new, name="workflow-new"),
    path("workflows/<uuid:workflow_id>/", views.workflow_detail, name="workflow"),
    path("workflows/<uuid:workflow_id>/edit/", views.workflow_edit, name="workflow-edit"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run"),
    path("documents/<uuid:document_id>/diff/", views.document_diff, name="document-diff"),
    path("account/", views.account, name="account"),
    path("notifications-sw.js", views.notifications_worker, name="notifications-worker"),
]
