"""The login forms (the dashboard's, the admin's, the browsable API's) in two steps for users with MFA.

Step one is Django's LoginView with its form; a correct password of a user with MFA does not log in
but remembers the user in the session (accounts.mfa.login_pending_store) and asks for the code. Step
two logs in once accounts.mfa accepts a TOTP code or a recovery code. Users without MFA see one step.
"""

from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse

from accounts import mfa
from accounts.selectors import mfa_enabled

PENDING_EXPIRED = "The login waited too long for the code: enter your email and password again."


class PasswordStepView(LoginView):
    """LoginView, except that a user with MFA is asked for the code before being logged in."""

    code_url_name = "login-code"

    def form_valid(self, form):
        user = form.get_user()
        if not mfa_enabled(user):
            return super().form_valid(form)
        mfa.login_pending_store(session=self.request.session, user=user)
        url = reverse(self.code_url_name)
        redirect_to = self.get_redirect_url()
        return HttpResponseRedirect(f"{url}?{urlencode({REDIRECT_FIELD_NAME: redirect_to})}" if redirect_to else url)


class CodeForm(forms.Form):
    """The code of the user pending in the session. LoginView hands it the request, as to its own forms."""

    code = forms.CharField(
        label="Code",
        max_length=32,
        help_text="The 6-digit code of your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autocapitalize": "none", "autofocus": True}),
    )

    def __init__(self, request=None, *args, **kwargs):
        self.request = request
        self.user_cache = mfa.login_pending_user(session=request.session)
        super().__init__(*args, **kwargs)

    def clean(self):
        if self.user_cache is None:
            raise ValidationError(PENDING_EXPIRED, code="expired")
        code = self.cleaned_data.get("code")
        if code:
            # A wrong code and a lockout are ValidationErrors: shown like a wrong password's.
            mfa.login_pending_finish(
                session=self.request.session, user=self.user_cache, code=code, request=self.request
            )
        return self.cleaned_data

    def get_user(self):
        return self.user_cache


class CodeStepView(LoginView):
    form_class = CodeForm
    template_name = "registration/login_code.html"
    start_url_name = "login"

    def get(self, request, *args, **kwargs):
        if mfa.login_pending_user(session=request.session) is None:
            return HttpResponseRedirect(reverse(self.start_url_name))
        return super().get(request, *args, **kwargs)


def _admin_context(request) -> dict:
    # What AdminSite.login gives its template.
    context = {
        **admin.site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
    }
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=admin.site.name)
    return context


def admin_login(request):
    """AdminSite.login with the MFA step: served at /admin/login/ in place of the site's own."""
    if request.method == "GET" and admin.site.has_permission(request):
        return HttpResponseRedirect(reverse("admin:index", current_app=admin.site.name))
    request.current_app = admin.site.name
    return PasswordStepView.as_view(
        authentication_form=AdminAuthenticationForm,
        template_name="admin/login.html",
        extra_context=_admin_context(request),
        code_url_name="admin-login-code",
    )(request)


def admin_login_code(request):
    request.current_app = admin.site.name
    return CodeStepView.as_view(
        template_name="admin/login_code.html",
        extra_context=_admin_context(request),
        start_url_name="admin:login",
    )(request)
