"""Multi-factor authentication through the API: enrolment, the token endpoint's second step, recovery
codes, turning it off, lockout, and workspaces that require it."""

import base64
import itertools
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accounts import access, lockout, mfa
from accounts.models import Membership, RecoveryCode
from accounts.services import MFA_FIRST
from audit.models import AuditEvent
from tests.accounts.mfa_helpers import enrol, next_code
from tests.conftest import client_for
from tests.factories import PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory
from tests.workflows.test_consumers import closed_with

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
_addresses = (f"198.51.100.{n}" for n in itertools.count(1))


@pytest.fixture(autouse=True)
def three_failures_lock(settings):
    settings.DWC_LOGIN_MAX_FAILURES = 3
    settings.DWC_LOGIN_LOCKOUT_MINUTES = 15
    # django-otp's own per-device wait after a wrong code would hide what the lockout does.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


@pytest.fixture
def address() -> str:
    return next(_addresses)


@pytest.fixture
def mfa_user(user):
    user.recovery_codes_shown = enrol(user)
    return user


def password_step(email: str, address: str, password: str = PASSWORD):
    return APIClient().post(
        "/api/v3/auth/token", {"email": email, "password": password}, format="json", REMOTE_ADDR=address
    )


def code_step(mfa_token: str, code: str, address: str):
    return APIClient().post(
        "/api/v3/auth/token/mfa", {"mfa_token": mfa_token, "code": code}, format="json", REMOTE_ADDR=address
    )


def mfa_token_of(user, address: str) -> str:
    answer = password_step(user.email, address)
    assert answer.status_code == 200, answer.content
    return answer.json()["mfa_token"]


def actions(user) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_id=str(user.pk), action__startswith="mfa.")
        .order_by("timestamp", "id")
        .values_list("action", flat=True)
    )


def test_enrolment_shows_the_secret_and_a_qr_code_and_confirming_turns_mfa_on(user, user_api):
    started = user_api.post("/api/v3/auth/mfa/totp")
    assert started.status_code == 201
    body = started.json()
    uri = urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert parse_qs(uri.query)["secret"] == [body["secret"]]
    assert body["qr_svg"].startswith("<svg")
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed and base64.b32decode(body["secret"]) == device.bin_key
    assert password_step(user.email, next(_addresses)).json().keys() == {"access", "refresh"}

    confirmed = user_api.post("/api/v3/auth/mfa/totp/confirm", {"code": next_code(user)}, format="json")

    assert confirmed.status_code == 200, confirmed.content
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    stored = set(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert len(stored) == 10 and not stored & set(codes)
    assert TOTPDevice.objects.get(user=user).confirmed
    assert user_api.get("/api/v3/auth/me").json()["mfa_enabled"] is True
    assert actions(user) == ["mfa.enabled"]
    assert user_api.post("/api/v3/auth/mfa/totp").status_code == 409


def test_a_wrong_code_does_not_confirm_the_enrolment(user, user_api):
    user_api.post("/api/v3/auth/mfa/totp")
    answer = user_api.post("/api/v3/auth/mfa/totp/confirm", {"code": "000000"}, format="json")
    assert answer.status_code == 401
    assert answer.json()["type"] == "/problems/mfa-code-rejected"
    assert not TOTPDevice.objects.get(user=user).confirmed
    assert actions(user) == ["mfa.failed"]


def test_a_password_alone_gets_a_challenge_and_the_code_gets_the_tokens(mfa_user, address):
    challenge = password_step(mfa_user.email, address)
    assert challenge.status_code == 200
    assert challenge.json().keys() == {"mfa_required", "mfa_token"}
    assert challenge.json()["mfa_required"] is True

    answer = code_step(challenge.json()["mfa_token"], next_code(mfa_user), address)

    assert answer.status_code == 200, answer.content
    assert answer.json().keys() == {"access", "refresh"}
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {answer.json()['access']}")
    assert me.get("/api/v3/auth/me").json()["email"] == mfa_user.email
    assert AuditEvent.objects.filter(action="auth.login", target_id=str(mfa_user.pk)).count() == 1


def test_a_wrong_code_is_a_401_audited_and_counted_toward_the_lockout(mfa_user, address):
    token = mfa_token_of(mfa_user, address)
    for _ in range(3):
        wrong = code_step(token, "123456" if next_code(mfa_user) != "123456" else "654321", address)
        assert wrong.status_code == 401
        assert wrong["Content-Type"] == PROBLEM
    locked = code_step(token, next_code(mfa_user), address)
    assert locked.status_code == 429
    assert locked.json()["type"] == "/problems/locked-out"
    assert password_step(mfa_user.email, address).status_code == 429
    assert actions(mfa_user) == ["mfa.enabled", "mfa.failed", "mfa.failed", "mfa.failed"]
    assert AuditEvent.objects.filter(action="auth.locked_out", target_id=str(mfa_user.pk)).count() == 1
    assert password_step(mfa_user.email, next(_addresses)).status_code == 200  # only that address


def test_a_correct_password_does_not_clear_the_wrong_codes_before_it(mfa_user, address):
    for _ in range(2):
        assert code_step(mfa_token_of(mfa_user, address), "000000", address).status_code == 401
    assert code_step(mfa_token_of(mfa_user, address), "000000", address).status_code == 401
    assert password_step(mfa_user.email, address).status_code == 429


def test_a_complete_login_clears_the_count(mfa_user, address):
    for _ in range(2):
        assert code_step(mfa_token_of(mfa_user, address), "000000", address).status_code == 401
    assert code_step(mfa_token_of(mfa_user, address), next_code(mfa_user), address).status_code == 200
    for _ in range(2):
        assert code_step(mfa_token_of(mfa_user, address), "000000", address).status_code == 401
    assert password_step(mfa_user.email, address).status_code == 200


def test_a_code_works_once(mfa_user, address):
    code = next_code(mfa_user)
    assert code_step(mfa_token_of(mfa_user, address), code, address).status_code == 200
    again = code_step(mfa_token_of(mfa_user, address), code, address)
    assert again.status_code == 401
    assert again.json()["detail"] == mfa.WRONG_CODE


def test_an_mfa_token_works_once_and_only_as_issued(mfa_user, address):
    token = mfa_token_of(mfa_user, address)
    assert code_step(token, next_code(mfa_user), address).status_code == 200
    reused = code_step(token, next_code(mfa_user), address)
    assert reused.status_code == 401
    assert reused.json()["detail"] == mfa.CHALLENGE_INVALID
    assert code_step(token[:-2] + "xx", next_code(mfa_user), address).status_code == 401


def test_an_expired_mfa_token_is_refused(mfa_user, address, settings):
    token = mfa_token_of(mfa_user, address)
    settings.DWC_MFA_CHALLENGE_SECONDS = -1
    assert code_step(token, next_code(mfa_user), address).json()["detail"] == mfa.CHALLENGE_INVALID


def test_a_recovery_code_works_once_instead_of_a_code(mfa_user, address):
    recovery = mfa_user.recovery_codes_shown[3]
    answer = code_step(mfa_token_of(mfa_user, address), recovery.upper(), address)
    assert answer.status_code == 200
    assert code_step(mfa_token_of(mfa_user, address), recovery, address).status_code == 401
    assert mfa.recovery_codes_left(mfa_user) == 9
    assert actions(mfa_user) == ["mfa.enabled", "mfa.recovery_code_used", "mfa.failed"]


def test_turning_mfa_off_needs_the_password_and_a_code(mfa_user, address):
    api = client_for(mfa_user)

    def disable(password: str, code: str):
        return api.delete("/api/v3/auth/mfa", {"password": password, "code": code}, format="json", REMOTE_ADDR=address)

    assert disable("wrong", next_code(mfa_user)).status_code == 400
    assert disable(PASSWORD, "000000").status_code == 401
    assert TOTPDevice.objects.filter(user=mfa_user, confirmed=True).exists()

    assert disable(PASSWORD, next_code(mfa_user)).status_code == 204

    assert not TOTPDevice.objects.filter(user=mfa_user).exists()
    assert not RecoveryCode.objects.filter(user=mfa_user).exists()
    assert actions(mfa_user) == ["mfa.enabled", "mfa.failed", "mfa.disabled"]
    assert password_step(mfa_user.email, next(_addresses)).json().keys() == {"access", "refresh"}
    assert disable(PASSWORD, "000000").status_code == 409


def test_a_recovery_code_also_turns_mfa_off(mfa_user, address):
    answer = client_for(mfa_user).delete(
        "/api/v3/auth/mfa", {"password": PASSWORD, "code": mfa_user.recovery_codes_shown[0]}, format="json"
    )
    assert answer.status_code == 204


def test_api_keys_cannot_manage_mfa(user, user_api):
    raw_key = user_api.post("/api/v3/auth/api-keys", {"name": "k", "scopes": ["admin"]}, format="json").json()["key"]
    keyed = APIClient()
    keyed.credentials(HTTP_X_API_KEY=raw_key)
    assert keyed.post("/api/v3/auth/mfa/totp").status_code == 403
    assert not TOTPDevice.objects.filter(user=user).exists()


def test_the_lockout_module_is_what_counts_code_failures(mfa_user, address):
    token = mfa_token_of(mfa_user, address)
    for _ in range(3):
        code_step(token, "000000", address)
    assert lockout.lockout_remaining(email=mfa_user.email, ip=address) > 0
    lockout.lockout_lift(email=mfa_user.email)
    cache.clear()
    assert code_step(mfa_token_of(mfa_user, address), next_code(mfa_user), address).status_code == 200


# --- workspaces that require MFA ----------------------------------------------------------------


@pytest.fixture
def strict_workspace(db):
    """A workspace that requires MFA: its owner has it; its editor does not."""
    owner, editor = UserFactory(), UserFactory()
    enrol(owner)
    workspace = WorkspaceFactory()
    MembershipFactory(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    MembershipFactory(workspace=workspace, user=editor, role=Membership.Role.EDITOR)
    answer = client_for(owner).patch(f"/api/v3/workspaces/{workspace.pk}", {"mfa_required": True}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["mfa_required"] is True
    return {"workspace": workspace, "owner": owner, "editor": editor}


def test_requiring_mfa_is_audited_and_needs_it_on_the_owners_own_account(strict_workspace, user):
    event = AuditEvent.objects.get(action="workspace.updated", workspace=strict_workspace["workspace"])
    assert event.changes == {"mfa_required": [False, True]}
    own = access.personal_workspace(user)
    refused = client_for(user).patch(f"/api/v3/workspaces/{own.pk}", {"mfa_required": True}, format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"mfa_required": [MFA_FIRST]}


def test_a_member_without_mfa_is_refused_with_a_problem_that_says_so(strict_workspace):
    workspace, editor = strict_workspace["workspace"], strict_workspace["editor"]
    api = client_for(editor)
    for path in (f"/api/v3/workspaces/{workspace.pk}", f"/api/v3/workspaces/{workspace.pk}/members"):
        answer = api.get(path)
        assert answer.status_code == 403, path
        assert answer["Content-Type"] == PROBLEM
        assert answer.json()["type"] == "/problems/mfa-required"
        assert answer.json()["detail"] == access.MFA_REQUIRED
    created = api.post("/api/v3/workflows", {"name": "W", "workspace": str(workspace.pk)}, format="json")
    assert created.status_code == 403
    assert created.json()["type"] == "/problems/mfa-required"
    listed = [item["id"] for item in api.get("/api/v3/workspaces").json()["results"]]
    assert str(workspace.pk) in listed  # listed, so that the member learns why it refuses them
    me = api.get("/api/v3/auth/me").json()
    assert me["mfa_enabled"] is False
    assert {"id": str(workspace.pk), "mfa_required": True} in [
        {"id": item["id"], "mfa_required": item["mfa_required"]} for item in me["workspaces"]
    ]


def test_a_stranger_still_gets_the_404_of_an_unknown_workspace(strict_workspace, user):
    answer = client_for(user).get(f"/api/v3/workspaces/{strict_workspace['workspace'].pk}/members")
    assert answer.status_code == 404


def test_lists_across_workspaces_leave_out_the_ones_that_refuse_the_member(strict_workspace):
    workspace, owner, editor = strict_workspace["workspace"], strict_workspace["owner"], strict_workspace["editor"]
    client_for(owner).post("/api/v3/workflows", {"name": "Strict", "workspace": str(workspace.pk)}, format="json")
    assert [w["name"] for w in client_for(owner).get("/api/v3/workflows").json()["results"]] == ["Strict"]
    assert client_for(editor).get("/api/v3/workflows").json()["results"] == []


def test_the_member_gets_in_once_they_turn_mfa_on(strict_workspace):
    editor = strict_workspace["editor"]
    enrol(editor)
    assert client_for(editor).get(f"/api/v3/workspaces/{strict_workspace['workspace'].pk}/members").status_code == 200


def test_api_keys_are_exempt(strict_workspace):
    editor, workspace = strict_workspace["editor"], strict_workspace["workspace"]
    api = client_for(editor)
    created = api.post("/api/v3/auth/api-keys", {"name": "ci", "scopes": ["write"]}, format="json")
    assert created.status_code == 201, created.content
    keyed = APIClient()
    keyed.credentials(HTTP_X_API_KEY=created.json()["key"])
    assert keyed.get(f"/api/v3/workspaces/{workspace.pk}/members").status_code == 200
    workflow = {"name": "By key", "workspace": str(workspace.pk)}
    assert keyed.post("/api/v3/workflows", workflow, format="json").status_code == 201


def test_a_member_without_mfa_cannot_make_a_key_for_the_workspace(strict_workspace):
    limited = {"name": "ci", "scopes": ["write"], "workspace": str(strict_workspace["workspace"].pk)}
    refused = client_for(strict_workspace["editor"]).post("/api/v3/auth/api-keys", limited, format="json")
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/mfa-required"


def test_a_device_waits_after_a_wrong_code_from_any_address(mfa_user, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 1  # django-otp's default: 1 s, doubling with each wrong code
    first, second = next(_addresses), next(_addresses)
    assert code_step(mfa_token_of(mfa_user, first), "000000", first).status_code == 401
    throttled = code_step(mfa_token_of(mfa_user, second), next_code(mfa_user), second)
    assert throttled.status_code == 401
    assert throttled.json()["detail"] == mfa.CODE_THROTTLED.format(seconds=1)


def test_a_member_without_mfa_cannot_watch_the_workspace_live(strict_workspace):
    workspace = strict_workspace["workspace"]
    assert closed_with(f"/ws/dashboard/?workspace={workspace.pk}", strict_workspace["editor"]) == 4403
