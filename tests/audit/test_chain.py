"""The hash chain: verification, tamper detection, append-only guards, purge, concurrency."""

import threading
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory, override_settings
from django.utils import timezone

from audit import services, tasks
from audit.chain import GENESIS, chain_verify, event_hash
from audit.models import AppendOnlyError, AuditChainHead, AuditCheckpoint, AuditEvent
from audit.services import audit_record, diff
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

TABLE = "audit_auditevent"


def record(count: int, **fields) -> list[AuditEvent]:
    return [audit_record(action="test.event", target_type="thing", target_id=str(i), **fields) for i in range(count)]


def verify_output() -> str:
    from io import StringIO

    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@contextmanager
def triggers_disabled(table: str = TABLE, trigger: str = "audit_event_append_only"):
    """What an attacker with database access would have to do; the test's transaction undoes it."""
    with transaction.atomic():
        sql("SET CONSTRAINTS ALL IMMEDIATE")  # deferred foreign-key checks would block the ALTER TABLE
        sql(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        yield
        sql(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
        sql("SET CONSTRAINTS ALL DEFERRED")


def tamper(table: str, trigger: str, statement: str, params=()) -> None:
    with triggers_disabled(table, trigger):
        sql(statement, params)


def test_events_form_one_chain_with_contiguous_ids():
    user, workspace = UserFactory(), WorkspaceFactory(name="Ops")
    first, second, third = record(3, actor=user, workspace=workspace, changes={"ratio": [0.5, 1e20], "n": [1, 2.0]})
    assert (first.id, second.id, third.id) == (1, 2, 3)
    assert first.prev_hash == GENESIS
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
    stored = AuditEvent.objects.get(pk=3)
    # Numbers come back from jsonb as jsonb writes them; the hash is computed over that form.
    assert stored.changes == {"ratio": [0.5, 100000000000000000000], "n": [1, 2]}
    assert event_hash(stored.prev_hash, {name: getattr(stored, name) for name in stored.__dict__}) == stored.hash
    assert AuditChainHead.objects.get().last_id == 3
    assert "Verified 3 audit events" in verify_output()


def test_events_hashed_on_append_match_the_verifiers_hash_whatever_their_text():
    """Single events and batches are chained as they are appended (audit.services._append); the
    verifier must agree with the stored hashes for any text, as the database stores it."""
    awkward = 'é ✓ 🚀 "quoted" back\\slash\nnew line \t tab \x00 nul, id:"audit-id-x" {}'
    workspace = WorkspaceFactory(name=awkward.replace("\x00", ""))  # PostgreSQL text refuses NUL
    events = record(3, workspace=workspace, changes={awkward: [awkward, {"nested": [awkward, 1.5, None]}]})
    events += services.audit_record_many(records=[{"action": "test.batch", "target_id": awkward}] * 2)
    events += record(2, changes={"after": [None, awkward]})
    assert [event.id for event in events] == list(range(1, 8))
    for event in events:
        stored = AuditEvent.objects.get(pk=event.id)
        assert (stored.prev_hash, stored.hash) == (event.prev_hash, event.hash)
        assert event_hash(stored.prev_hash, {name: getattr(stored, name) for name in stored.__dict__}) == stored.hash
    assert (chain_verify().ok, chain_verify().count) == (True, 7)


def test_editing_a_row_breaks_the_chain_at_that_row():
    record(5)
    tamper(
        TABLE,
        "audit_event_append_only",
        "UPDATE audit_auditevent SET changes = %s WHERE id = 3",
        ['{"amount": [1, 9]}'],
    )
    with pytest.raises(CommandError, match=r"broken at event #3: its hash does not match its contents"):
        call_command("audit_verify")


def test_rehashing_an_edited_row_breaks_the_chain_at_the_next_one():
    events = record(4)
    forged = {name: getattr(events[1], name) for name in events[1].__dict__} | {"action": "test.forged"}
    tamper(
        TABLE,
        "audit_event_append_only",
        "UPDATE audit_auditevent SET action = %s, hash = %s WHERE id = 2",
        ["test.forged", event_hash(events[1].prev_hash, forged)],
    )
    result = chain_verify()
    assert (result.broken_id, result.reason) == (3, "its prev_hash is not the hash of the event before it")


def test_deleted_rows_are_named_whether_in_the_middle_or_at_the_end():
    record(6)
    with transaction.atomic():
        sql("SET LOCAL audit.allow_purge = 'on'")
        sql("DELETE FROM audit_auditevent WHERE id IN (3, 6)")
        sql("SET LOCAL audit.allow_purge = 'off'")
        result = chain_verify()
        assert (result.broken_id, result.reason) == (4, "events #3 to #3 are missing before it")
        sql("SET LOCAL audit.allow_purge = 'on'")
        sql("DELETE FROM audit_auditevent WHERE id > 2")
        sql("SET LOCAL audit.allow_purge = 'off'")
        result = chain_verify()
        assert (result.broken_id, result.count) == (3, 2)
        assert "the chain head is at #6" in result.reason


def test_the_orm_refuses_to_change_or_delete_events():
    [event] = record(1)
    event.action = "test.changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="test.changed")
    assert AuditEvent.objects.get().action == "test.event"


def test_the_database_refuses_raw_updates_and_deletes():
    record(2)
    for statement in (
        "UPDATE audit_auditevent SET action = 'x' WHERE id = 1",
        "DELETE FROM audit_auditevent WHERE id = 2",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            sql(statement)
    assert AuditEvent.objects.count() == 2
    assert chain_verify().ok
    now = timezone.now()
    AuditCheckpoint.objects.create(created_at=now, purged_before=now, count=0, last_id=0, last_hash=GENESIS, event_id=1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql("UPDATE audit_auditcheckpoint SET count = 1")


def test_deleting_a_user_or_workspace_keeps_the_chain_valid():
    user, workspace = UserFactory(), WorkspaceFactory(name="Gone")
    user_id, workspace_id = str(user.pk), str(workspace.pk)
    [event] = record(1, actor=user, workspace=workspace)
    workspace.delete()
    user.delete()
    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.actor_id, event.workspace_id) == (None, None)
    assert (event.actor_ref, event.actor_label) == (user_id, user.email)
    assert (event.workspace_ref, event.workspace_label) == (workspace_id, "Gone")
    assert chain_verify().ok


def test_pointing_an_event_at_another_workspace_is_detected():
    one, two = WorkspaceFactory(), WorkspaceFactory()
    record(1, workspace=one)
    tamper(TABLE, "audit_event_append_only", "UPDATE audit_auditevent SET workspace_id = %s WHERE id = 1", [two.pk])
    result = chain_verify()
    assert (result.broken_id, result.reason) == (1, "its workspace is not the one its hashed workspace_ref names")


def test_purge_leaves_a_checkpoint_and_the_rest_still_verifies(monkeypatch):
    long_ago = timezone.now() - timedelta(days=400)
    monkeypatch.setattr(services.timezone, "now", lambda: long_ago)
    record(4)
    monkeypatch.undo()
    record(2)
    from io import StringIO

    out = StringIO()
    call_command("audit_purge", "--older-than", "365", stdout=out)
    assert "Purged 4 audit events up to #4" in out.getvalue()
    assert list(AuditEvent.objects.order_by("id").values_list("id", flat=True)) == [5, 6, 7]
    checkpoint = AuditCheckpoint.objects.get()
    assert (checkpoint.count, checkpoint.last_id, checkpoint.event_id) == (4, 4, 7)
    purged = AuditEvent.objects.get(pk=7)
    assert (purged.action, purged.actor_type) == ("audit.purged", "system")
    assert purged.changes["count"] == [None, 4]
    assert "Verified 3 audit events (#5 onwards)" in verify_output()
    # The purge's permission ended with it: the same transaction cannot delete any more.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql("DELETE FROM audit_auditevent WHERE id = 5")
    call_command("audit_purge", "--older-than", "365", stdout=StringIO())
    assert AuditCheckpoint.objects.count() == 1


def test_a_forged_checkpoint_is_detected(monkeypatch):
    then = timezone.now() - timedelta(days=40)
    monkeypatch.setattr(services.timezone, "now", lambda: then)
    record(3)
    monkeypatch.undo()
    services.audit_purge(before=timezone.now() - timedelta(days=30))
    tamper("audit_auditcheckpoint", "audit_checkpoint_append_only", "UPDATE audit_auditcheckpoint SET last_id = 2")
    with pytest.raises(CommandError, match="broken at event #4: it does not record the purge checkpoint"):
        call_command("audit_verify")


def test_the_daily_task_applies_the_retention_setting(monkeypatch):
    then = timezone.now() - timedelta(days=10)
    monkeypatch.setattr(services.timezone, "now", lambda: then)
    record(2)
    monkeypatch.undo()
    with override_settings(AUDIT_RETENTION_DAYS=0):
        tasks.audit_purge_expired()
    assert AuditEvent.objects.count() == 2
    with override_settings(AUDIT_RETENTION_DAYS=7):
        tasks.audit_purge_expired()
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["audit.purged"]
    assert chain_verify().ok
    assert settings.CELERY_BEAT_SCHEDULE["audit-purge"]["task"] == "audit.tasks.audit_purge_expired"


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_form_one_valid_chain():
    writers, per_writer = 8, 15
    barrier = threading.Barrier(writers)
    errors = []

    def write(index: int) -> None:
        try:
            barrier.wait()
            for number in range(per_writer):
                audit_record(action="test.concurrent", target_type="writer", target_id=f"{index}.{number}")
        except Exception as error:  # reported below: a thread's exception would otherwise vanish
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    assert ids == list(range(1, writers * per_writer + 1))
    result = chain_verify()
    assert (result.ok, result.count) == (True, writers * per_writer)


def test_diff_masks_secrets_and_cuts_long_text():
    before = {"name": "a", "token": "old-token", "prompt": "x", "same": 1}
    after = {"name": "b", "token": "new-token", "prompt": "y" * 1500, "same": 1, "added": True}
    changes = diff(before, after, secret_fields=["token"])
    assert changes["name"] == ["a", "b"]
    assert changes["token"] == ["***", "***"]
    assert changes["prompt"][1].startswith("y" * 1000) and changes["prompt"][1].endswith("(1500 characters)")
    assert changes["added"] == [None, True]
    assert "same" not in changes
    assert diff({}, {"secret": "s"}, secret_fields=["secret"]) == {"secret": [None, "***"]}


def test_the_client_address_trusts_only_the_proxies_it_is_told_of():
    spoofed = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert services.client_ip(spoofed) == "10.0.0.2"
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}):
        proxied = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.9")
        assert services.client_ip(proxied) == "198.51.100.9"


def rewrite_from(event_id: int, action: str) -> None:
    """Edit an event and re-hash the chain after it, as someone with full database access could."""
    with triggers_disabled():
        sql("UPDATE audit_auditevent SET action = %s WHERE id = %s", [action, event_id])
        prev = AuditEvent.objects.get(pk=event_id).prev_hash
        for event in AuditEvent.objects.filter(pk__gte=event_id).order_by("id"):
            digest = event_hash(prev, {name: getattr(event, name) for name in event.__dict__})
            sql("UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s", [prev, digest, event.pk])
            prev = digest
        sql("UPDATE audit_auditchainhead SET last_hash = %s", [prev])


def anchor_output() -> str:
    from io import StringIO

    out = StringIO()
    call_command("audit_anchor", stdout=out)
    return out.getvalue().strip()


def test_an_anchor_kept_elsewhere_shows_a_rewrite_the_chain_alone_cannot():
    assert anchor_output() == "The audit trail is empty: nothing to anchor yet."
    record(3)
    anchor = anchor_output()
    assert anchor == f"3:{AuditEvent.objects.get(pk=3).hash}"
    assert "the chain is intact and matches 1 anchor(s)" in verify_output_with("--anchor", anchor)

    rewrite_from(2, "test.innocent")
    assert chain_verify().ok  # a consistent rewrite passes the chain check...
    with pytest.raises(CommandError, match="anchor #3 does not match: event #3 now hashes to"):
        verify_output_with("--anchor", anchor)  # ...but not the anchor taken before it


def test_an_anchor_of_purged_events_is_checked_against_the_checkpoint_or_noted(monkeypatch):
    long_ago = timezone.now() - timedelta(days=400)
    monkeypatch.setattr(services.timezone, "now", lambda: long_ago)
    record(2)
    monkeypatch.undo()
    old_anchor = anchor_output()  # #2, to be purged
    record(3)
    later_anchor = anchor_output()  # #5
    call_command("audit_purge", "--older-than", "365", stdout=StringIO())  # events 1-2 go, #6 records it
    err = StringIO()
    call_command("audit_verify", "--anchor", later_anchor, "--anchor", "1:" + "a" * 64, stdout=StringIO(), stderr=err)
    assert "anchor #1 is older than the purge checkpoint at #2" in err.getvalue()
    call_command("audit_verify", "--anchor", old_anchor, stdout=StringIO())  # the checkpoint keeps #2's hash


def test_an_anchor_past_the_head_shows_that_the_newest_events_were_removed():
    record(5)
    anchor = anchor_output()
    with triggers_disabled():
        sql("DELETE FROM audit_auditevent WHERE id >= 4")
        sql("UPDATE audit_auditchainhead SET last_id = 3, last_hash = (SELECT hash FROM audit_auditevent WHERE id = 3)")
    assert chain_verify().ok  # removing the tail and moving the head back is consistent...
    with pytest.raises(CommandError, match="anchor #5 names an event that is gone, beyond the chain's head #3"):
        verify_output_with("--anchor", anchor)  # ...but the anchor remembers #5


@pytest.mark.parametrize("text", ["12", "x:" + "a" * 64, "3:abc", ""])
def test_a_malformed_anchor_is_a_command_error(text):
    with pytest.raises(CommandError, match="is not an anchor"):
        verify_output_with("--anchor", text)


def test_the_hourly_task_logs_the_head(caplog):
    record(2)
    with caplog.at_level("INFO", logger="audit.anchor"):
        tasks.audit_log_anchor()
    assert f"audit anchor 2:{AuditEvent.objects.get(pk=2).hash}" in caplog.text
    assert settings.CELERY_BEAT_SCHEDULE["audit-anchor"]["task"] == "audit.tasks.audit_log_anchor"


def verify_output_with(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue()
