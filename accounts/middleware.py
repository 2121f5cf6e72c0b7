"""Browser sessions end when their login session does (accounts.login_sessions); IP allow-lists
(accounts.ip_allow_lists) learn each request's client address."""

from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import AnonymousUser

from accounts.ip_allow_lists import IpNotAllowed, client_context, ensure_admin_site_allowed, is_admin_site
from accounts.login_sessions import SessionEnded, browser_session_check
from core.problems import ProblemResponse


class LoginSessionMiddleware:
    """After AuthenticationMiddleware: a session cookie whose login session was ended (from another
    device, by an operator, by a password change) is logged out here, on its next request: the
    session is flushed and the request goes on anonymous (pages redirect to the login, the API says 401/403).

    Requests without a logged-in session cookie (API clients with tokens or keys) cost nothing here:
    the session is only read when its cookie came with the request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if SESSION_KEY in request.session and request.user.is_authenticated:
            try:
                browser_session_check(request)
            except SessionEnded:
                # Not django.contrib.auth.logout: nobody logged out here, so no user_logged_out (and
                # no "auth.logout" in the audit trail); the revocation was audited when it was made.
                request.session.flush()
                request.user = AnonymousUser()
        return self.get_response(request)


class IpAllowListMiddleware:
    """After the login's middlewares (a refusal's audit event names the user). The admin site, its login
    page too, answers only addresses in DWC_ADMIN_ALLOWED_IPS (a 403 problem otherwise); workspaces'
    lists do not apply there, it is the operators'. Every other request gets the client context that
    accounts.access checks workspaces' lists against, and refusals during it are audited once the
    response is made."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_admin_site(request):
            try:
                ensure_admin_site_allowed(request)
            except IpNotAllowed as error:
                return ProblemResponse(403, str(error), code=error.code, **error.problem_members)
            return self.get_response(request)
        with client_context(request, record_after=True):
            return self.get_response(request)
