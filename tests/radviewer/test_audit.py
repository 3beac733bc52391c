import pytest
from django.contrib import admin
from django.urls import reverse

from radviewer.audit.models import AuditEvent
from radviewer.audit.services import audit_event_create

pytestmark = pytest.mark.django_db


def test_event_written_through_service_with_object_and_ip(rf, radiologist):
    request = rf.get("/", REMOTE_ADDR="10.1.2.3")
    event = audit_event_create(
        actor=radiologist, action="study.viewed", obj=radiologist, request=request, details={"k": 1}
    )
    event.refresh_from_db()
    assert event.actor == radiologist
    assert event.object_type == "auth.user" and event.object_id == str(radiologist.pk)
    assert event.client_ip == "10.1.2.3"
    assert event.details == {"k": 1}


def test_events_are_append_only(radiologist):
    event = audit_event_create(actor=radiologist, action="x.y")
    event.action = "tampered"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "x.y"


def test_admin_offers_no_add_change_delete(rf, ml_admin):
    model_admin = admin.site._registry[AuditEvent]
    request = rf.get("/admin/")
    request.user = ml_admin
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.get_actions(request) == {}


def test_audit_list_filters(ml_admin_client, radiologist, ml_admin):
    audit_event_create(actor=radiologist, action="study.viewed", object_type="clinical.study", object_id="A")
    audit_event_create(actor=radiologist, action="review.created", object_type="clinical.review", object_id="B")
    audit_event_create(actor=None, actor_label="api:pacs", action="study.submitted", object_type="clinical.study", object_id="C")
    url = reverse("audit:list")
    body = ml_admin_client.get(url, {"action": "study."}).content.decode()
    assert "study.viewed" in body and "study.submitted" in body and "review.created" not in body
    body = ml_admin_client.get(url, {"actor": "api:pacs"}).content.decode()
    assert "study.submitted" in body and "study.viewed" not in body
    body = ml_admin_client.get(url, {"object_type": "clinical.review"}).content.decode()
    assert "review.created" in body and "study.viewed" not in body


def test_audit_list_htmx_returns_partial(ml_admin_client, radiologist):
    audit_event_create(actor=radiologist, action="study.viewed")
    response = ml_admin_client.get(reverse("audit:list"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert 'id="events"' in body and "<html" not in body


def test_audit_list_shows_details_as_key_value_lines(ml_admin_client, radiologist):
    audit_event_create(actor=radiologist, action="study.viewed", object_type="clinical.study", object_id="A",
                       details={"uid": "2.25.7", "kinds": ["display", "heatmap"], "gate": {"passed": False}})
    body = ml_admin_client.get(reverse("audit:list")).content.decode()
    assert "<dt>uid</dt><dd>2.25.7</dd>" in body
    assert "<dt>kinds</dt><dd>display, heatmap</dd>" in body
    assert "<dd>{&quot;passed&quot;: false}</dd>" in body
    assert "{&#x27;uid&#x27;" not in body  # no Python dict repr


def test_audit_export_streams_filtered_csv_and_is_audited(ml_admin_client, radiologist, ml_admin):
    import csv
    import io

    audit_event_create(actor=radiologist, action="study.viewed", object_type="clinical.study", object_id="A",
                       details={"note": "=HYPERLINK(\"x\")"})
    audit_event_create(actor=radiologist, action="review.created", object_type="clinical.review", object_id="B")
    response = ml_admin_client.get(reverse("audit:export"), {"action": "study."})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["time_utc", "actor", "action"]
    assert [r[2] for r in rows[1:]] == ["study.viewed"]
    assert rows[1][1] == radiologist.get_username() and rows[1][4] == "A"
    event = AuditEvent.objects.get(action="study.viewed")
    assert rows[1][-1] == event.hash and rows[1][-2] == event.prev_hash
    assert '"note": "=HYPERLINK' in rows[1][6]  # inside JSON, not at the cell start
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.actor == ml_admin and exported.details == {"action": "study."}


def test_audit_export_refuses_bad_filters(ml_admin_client):
    bad = ml_admin_client.get(reverse("audit:export"), {"action": "nonsense.", "since": "yesterday"})
    assert bad.status_code == 400 and "action" in bad.content.decode() and "since" in bad.content.decode()
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_audit_export_is_not_for_readers(radiologist_client):
    assert radiologist_client.get(reverse("audit:export")).status_code == 403


def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised(radiologist):
    from radviewer.audit.selectors import AuditFilters, audit_csv_rows

    audit_event_create(actor=None, actor_label="=cmd|' /C calc'!A0", action="study.submitted")
    rows = list(audit_csv_rows(filters=AuditFilters()))
    assert rows[1][1] == "'=cmd|' /C calc'!A0"
