"""/notifications/unsubscribe/<token>: the one-click link of a user's notification emails (RFC 8058).

No login: the signed token is the authority (notifications.unsubscribe). A person following the link
sees a page asking them to confirm (GET never changes anything: link scanners fetch links); the
button, or a mail client's one-click `POST` (List-Unsubscribe=One-Click), mutes the kind. That POST
comes from the mail client, not from a page of this site, so it carries no CSRF token: this view alone
is exempt, which is safe because the token in the URL is the secret a forged request would lack.
A token not made here is a 400 page.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from notifications.services.preferences import preference_unsubscribe, unsubscribe_token_subject
from notifications.unsubscribe import BadToken

TEMPLATE = "notifications/unsubscribe.html"


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        if request.method == "POST":
            preference_unsubscribe(token=token, request=request)
            return render(request, TEMPLATE, {"state": "done"})
        user, kind = unsubscribe_token_subject(token=token)
    except BadToken:
        return render(request, TEMPLATE, {"state": "bad"}, status=400)
    return render(request, TEMPLATE, {"state": "confirm", "email": user.email, "kind": kind})
