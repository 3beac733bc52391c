"""The audit log is append-only in the database (triggers) and tamper-evident (a hash chain).

Runs on whichever database the suite runs on; CI's second pass runs it on PostgreSQL.
"""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from radviewer.audit.integrity import GENESIS_HASH, audit_chain_verify, audit_maintenance
from radviewer.audit.models import AuditEvent
from radviewer.audit.services import audit_event_create

# Literal statements (no SQL built from strings): what someone with a database shell would type.
UPDATES = {
    "action": "UPDATE audit_auditevent SET action = %s WHERE id = %s",
    "details": "UPDATE audit_auditevent SET details = %s WHERE id = %s",
    "actor_label": "UPDATE audit_auditevent SET actor_label = %s WHERE id = %s",
}


def _raw(sql: str, params: list | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def _verify() -> tuple[int, str]:
    """verify_audit's exit status and output."""
    from io import StringIO

    out = StringIO()
    try:
        call_command("verify_audit", stdout=out)
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, out.getvalue()


@pytest.mark.django_db
def test_raw_sql_update_and_delete_are_refused(radiologist):
    event = audit_event_create(actor=radiologist, action="study.viewed", object_id="S1")
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("UPDATE audit_auditevent SET action = 'tampered' WHERE id = %s", [event.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM audit_auditevent")
    if connection.vendor == "postgresql":
        # (the deferred foreign-key checks of this test's inserts first, or PostgreSQL refuses
        # TRUNCATE for having pending trigger events before ours runs)
        _raw("SET CONSTRAINTS ALL IMMEDIATE")
        with pytest.raises(DatabaseError, match="append-only"):
            _raw("TRUNCATE audit_auditevent CASCADE")
    assert AuditEvent.objects.get(pk=event.pk).action == "study.viewed"
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db
def test_plain_flush_refuses_the_audit_log(settings, radiologist):
    """Outside the test profile `manage.py flush` leaves the log (and everything) alone."""
    audit_event_create(actor=radiologist, action="study.viewed")
    settings.AUDIT_FLUSH_ALLOWED = False
    with pytest.raises(CommandError):
        call_command("flush", interactive=False, verbosity=0)
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db
def test_maintenance_mode_is_one_transaction_only(radiologist):
    a = audit_event_create(actor=radiologist, action="study.viewed", object_id="A")
    b = audit_event_create(actor=radiologist, action="study.viewed", object_id="B")
    with audit_maintenance():
        _raw("DELETE FROM audit_auditevent WHERE id = %s", [a.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM audit_auditevent WHERE id = %s", [b.pk])
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [b.pk]


@pytest.mark.django_db
def test_chain_links_every_event_and_verifies(radiologist, rf):
    request = rf.get("/", REMOTE_ADDR="2001:DB8::0:1")
    first = audit_event_create(actor=radiologist, action="study.viewed", object_id="1",
                               details={"score": 0.125, "n": 3, "big": 1e300, "nested": {"b": [1, 2.0], "a": "é"}})
    second = audit_event_create(actor=None, actor_label="api:pacs", action="study.submitted", request=request)
    third = audit_event_create(actor=radiologist, action="review.created", obj=radiologist)
    events = list(AuditEvent.objects.order_by("id"))
    assert [e.pk for e in events] == [first.pk, second.pk, third.pk]
    assert events[0].prev_hash == GENESIS_HASH
    assert events[1].prev_hash == events[0].hash and events[2].prev_hash == events[1].hash
    assert len({e.hash for e in events}) == 3 and all(len(e.hash) == 64 for e in events)
    assert _verify() == (0, f"3 events, chain intact\nhead: event id {third.pk}, hash {events[2].hash}\n")


@pytest.mark.django_db
@pytest.mark.parametrize("column, value", [("action", "study.deleted"), ("details", '{"k": 2}'),
                                            ("actor_label", "someone else")])
def test_verify_audit_finds_an_event_altered_behind_the_triggers(radiologist, column, value):
    audit_event_create(actor=radiologist, action="study.viewed", details={"k": 1})
    victim = audit_event_create(actor=radiologist, action="study.viewed", details={"k": 1})
    audit_event_create(actor=radiologist, action="study.viewed", details={"k": 1})
    assert _verify()[0] == 0
    with audit_maintenance():  # the documented bypass, as someone with database access could
        _raw(UPDATES[column], [value, victim.pk])
    code, message = _verify()
    assert code == 1
    assert f"event id {victim.pk} " in message and "fields were changed" in message


@pytest.mark.django_db
def test_verify_audit_finds_a_removed_event(radiologist):
    events = [audit_event_create(actor=radiologist, action="study.viewed", object_id=str(i)) for i in range(4)]
    with audit_maintenance():
        _raw("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])
    code, message = _verify()
    assert code == 1 and f"event id {events[2].pk} " in message and "removed" in message


@pytest.mark.django_db
def test_verify_audit_finds_an_event_inserted_without_the_service(radiologist):
    audit_event_create(actor=radiologist, action="study.viewed")
    forged = AuditEvent.objects.create(action="study.viewed", prev_hash="", hash="")
    code, message = _verify()
    assert code == 1 and f"event id {forged.pk} " in message


@pytest.mark.django_db
def test_a_rolled_back_event_leaves_the_chain_intact(radiologist):
    audit_event_create(actor=radiologist, action="study.viewed")
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_event_create(actor=radiologist, action="study.signed_off")
        raise RuntimeError("the change the event describes failed")
    audit_event_create(actor=radiologist, action="study.viewed")
    code, message = _verify()
    assert code == 0 and message.startswith("2 events, chain intact\n")


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_chain():
    """Threads, each with its own connection, write at once: one chain, no fork."""
    if connection.vendor == "sqlite":
        threads, per_thread = 4, 10  # SQLite's writers queue on one lock; keep it quick
    else:
        threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for k in range(per_thread):
                with transaction.atomic():
                    audit_event_create(actor=None, actor_label=f"thread-{n}", action="study.viewed",
                                       object_id=str(k))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors, errors
    hashes = list(AuditEvent.objects.order_by("id").values_list("prev_hash", "hash"))
    assert len(hashes) == threads * per_thread
    assert len({prev for prev, _ in hashes}) == len(hashes)  # no two events chained to one tail
    report = audit_chain_verify()
    assert report.intact and report.checked == threads * per_thread, report


@pytest.mark.django_db(transaction=True)
def test_migrations_chain_existing_events_and_install_and_remove_the_triggers():
    """0002 chains the events written before it; 0003 installs the triggers, its reverse drops them."""
    from django.db.migrations.executor import MigrationExecutor

    def migrate(target: str) -> None:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("audit", target)])

    try:
        migrate("0001_initial")
        with transaction.atomic(), connection.cursor() as cursor:
            for i in range(3):
                cursor.execute(
                    "INSERT INTO audit_auditevent (actor_label, action, object_type, object_id, created_at,"
                    " client_ip, details) VALUES ('old', 'study.viewed', '', %s, %s, '10.0.0.1', %s)",
                    [str(i), "2026-01-01 10:00:00.123456+00:00", '{"a": 1.5, "b": [2.0]}'],
                )
        migrate("0002_event_hash_chain")
        _raw("UPDATE audit_auditevent SET actor_label = 'still allowed' WHERE object_id = '2'")
        migrate("0003_append_only_triggers")
        with pytest.raises(DatabaseError, match="append-only"):
            _raw("UPDATE audit_auditevent SET actor_label = 'x'")
        code, message = _verify()
        assert code == 1 and "fields were changed" in message  # the row changed before 0003
    finally:
        migrate("0003_append_only_triggers")
    events = list(AuditEvent.objects.order_by("id"))
    assert events[0].prev_hash == GENESIS_HASH and events[1].prev_hash == events[0].hash
    assert audit_chain_verify().broken_id == events[2].pk
