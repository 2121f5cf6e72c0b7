import logging
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from accounts.access import personal_workspace
from tests.factories import UserFactory
from workflows.credentials import credential_value, decrypt
from workflows.models import Credential, WebhookTrigger
from workflows.services.credentials import credential_save
from workflows.services.webhooks import webhook_create
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

SECRET = "sk-ROTATE-ME-5d1c-UNIQUE"
HOOK_SECRET = "hook-SIGNING-SECRET-77aa"
OLD, NEW, LOST = (Fernet.generate_key().decode() for _ in range(3))


@pytest.fixture(autouse=True)
def logs_never_hold_a_secret(caplog):
    caplog.set_level(logging.DEBUG)
    yield
    assert SECRET not in caplog.text
    assert HOOK_SECRET not in caplog.text


@pytest.fixture
def owner():
    return UserFactory()


@pytest.fixture
def stored(owner):
    """Three credentials and a signed webhook, all encrypted with OLD."""
    workspace = personal_workspace(owner)
    with override_settings(CREDENTIALS_KEY=OLD):
        rows = [
            credential_save(workspace_id=workspace.pk, name=f"api-{n}", kind="http_bearer", value={"token": SECRET})
            for n in range(3)
        ]
        workflow = workflow_create(actor=owner, workspace=workspace, data={"name": "Hooked"})
        webhook_create(workflow=workflow, actor=owner, secret=HOOK_SECRET)
    return rows


def rotate(*args: str) -> str:
    out = StringIO()
    call_command("rotate_credentials_key", *args, stdout=out)
    return out.getvalue()


def raw_values() -> dict:
    return {
        **{row.pk: bytes(row.encrypted_value) for row in Credential.objects.all()},
        **{hook.pk: bytes(hook.encrypted_secret) for hook in WebhookTrigger.objects.all()},
    }


def test_rotation_leaves_every_secret_readable_with_the_new_key_alone(stored):
    updated_at = dict(Credential.objects.values_list("pk", "updated_at"))
    with override_settings(CREDENTIALS_KEY=f"{NEW},{OLD}"):
        output = rotate("--batch-size", "2")
    assert output.strip() == (
        "credentials: 3 re-encrypted, 0 already on the first key; "
        "webhook secrets: 1 re-encrypted, 0 already on the first key."
    )
    with override_settings(CREDENTIALS_KEY=NEW):
        for row in stored:
            assert credential_value(workspace_id=row.workspace_id, name=row.name, kinds=("http_bearer",)) == {
                "token": SECRET
            }
        assert decrypt(WebhookTrigger.objects.get().encrypted_secret) == {"secret": HOOK_SECRET}
    assert dict(Credential.objects.values_list("pk", "updated_at")) == updated_at


def test_a_second_rotation_has_nothing_left_to_do(stored):
    with override_settings(CREDENTIALS_KEY=f"{NEW},{OLD}"):
        rotate()
        before = raw_values()
        output = rotate()
    assert "credentials: 0 re-encrypted, 3 already on the first key;" in output
    assert raw_values() == before


def test_a_dry_run_counts_and_writes_nothing(stored):
    before = raw_values()
    with override_settings(CREDENTIALS_KEY=f"{NEW},{OLD}"):
        output = rotate("--dry-run")
    assert output.startswith("Dry run, nothing was written. credentials: 3 to re-encrypt, 0 already")
    assert raw_values() == before


def test_a_secret_no_key_decrypts_is_named_and_left_as_it_is(stored, owner):
    with override_settings(CREDENTIALS_KEY=LOST):
        lost = credential_save(
            workspace_id=personal_workspace(owner).pk, name="lost-one", kind="http_bearer", value={"token": SECRET}
        )
    lost_bytes = bytes(Credential.objects.get(pk=lost.pk).encrypted_value)
    out = StringIO()
    with override_settings(CREDENTIALS_KEY=f"{NEW},{OLD}"), pytest.raises(CommandError) as raised:
        call_command("rotate_credentials_key", stdout=out)
    message = str(raised.value)
    assert f"credential {lost.pk} 'lost-one'" in message
    assert "1 secret(s) cannot be decrypted" in message
    assert SECRET not in message and SECRET not in out.getvalue()
    assert bytes(Credential.objects.get(pk=lost.pk).encrypted_value) == lost_bytes
    assert "credentials: 3 re-encrypted" in out.getvalue(), "the readable ones are still rotated"
    with override_settings(CREDENTIALS_KEY=NEW):
        assert credential_value(workspace_id=lost.workspace_id, name="api-0", kinds=("http_bearer",))


def test_a_dry_run_also_fails_on_a_secret_no_key_decrypts(stored):
    with override_settings(CREDENTIALS_KEY=NEW), pytest.raises(CommandError, match="4 secret"):
        rotate("--dry-run")


def test_the_batch_size_must_be_positive(stored):
    with pytest.raises(CommandError, match="--batch-size"):
        rotate("--batch-size", "0")
