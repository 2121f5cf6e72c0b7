"""The dashboard's notification pages: the signed-in person's inbox and their preferences. Each renders
a shell; its module in static/dashboard/ loads the rest from the REST API (notifications.api) and
follows /ws/notifications/. The bell on every page is base.html's and bell.js's."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

# What base.html reads of a workspace's page: these pages belong to the person, not a workspace.
PERSONAL = {"workspace": None, "role": ""}


@login_required
@ensure_csrf_cookie
def inbox(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/notifications.html", PERSONAL)


@login_required
@ensure_csrf_cookie
def preferences(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/notification_preferences.html", PERSONAL)
