"""A URLconf with one bare DRF view, for bench/api_overhead.py only: never part of the product's URLs.

The view has no authentication, permission or throttle classes and touches no database: what it
costs is Django's request handling, the project's middleware and DRF's dispatch, content negotiation
and JSON rendering. bench/bare_settings.py serves it with production settings otherwise unchanged.

The admin site's URLs are here too, unused, because the project's middleware needs them: the IP
allow-list middleware (accounts.middleware) asks every request whether it is for the admin site by
reversing "admin:index", and answers 500 without it.
"""

from django.contrib import admin
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

BARE_PATH = "/bare"
BARE_ID = "00000000-0000-4000-8000-000000000000"


class BareView(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = []

    def get(self, request):
        return Response({"id": BARE_ID, "name": "bare", "ok": True})


urlpatterns = [
    path(BARE_PATH.lstrip("/"), BareView.as_view(), name="bare"),
    path("admin/", admin.site.urls),
]
