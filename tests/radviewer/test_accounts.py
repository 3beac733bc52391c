import pytest
from django.urls import reverse

from radviewer.accounts.roles import ML_ADMIN, RADIOLOGIST, ROLE_MODEL_PERMISSIONS, ROLE_PERMISSIONS
from radviewer.accounts.services import demo_accounts_ensure
from radviewer.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_anonymous_is_redirected_to_login(client):
    for url in ["/", reverse("mlcore:dashboard"), reverse("audit:list")]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))


def test_login_page_renders_with_csrf_header_and_htmx(client):
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert "vendor/htmx.min.js" in body


def test_radiologist_logs_in_and_reaches_home(client, radiologist):
    response = client.post(
        reverse("accounts:login"), {"username": "dr_house", "password": "pw-for-tests-123"}, follow=True
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("home")
    assert "Welcome" in response.content.decode()


def test_wrong_password_shows_error(client, radiologist):
    response = client.post(reverse("accounts:login"), {"username": "dr_house", "password": "nope"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()


def test_radiologist_gets_403_on_ml_admin_pages(radiologist_client):
    assert radiologist_client.get(reverse("mlcore:dashboard")).status_code == 403
    assert radiologist_client.get(reverse("audit:list")).status_code == 403


def test_ml_admin_opens_ml_pages(ml_admin_client):
    assert ml_admin_client.get(reverse("mlcore:dashboard")).status_code == 200
    assert ml_admin_client.get(reverse("audit:list")).status_code == 200


def test_navigation_only_lists_permitted_pages(radiologist_client):
    body = radiologist_client.get("/").content.decode()
    assert "Audit log" not in body and "Models" not in body


def test_logout_needs_post_and_ends_session(radiologist_client):
    response = radiologist_client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert radiologist_client.get("/").status_code == 302


def test_groups_hold_exactly_their_permissions(db):
    from django.contrib.auth.models import Group

    from radviewer.accounts.services import roles_sync

    roles_sync()
    for role, codenames in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role)
        held = {f"{a}.{c}" for a, c in group.permissions.values_list("content_type__app_label", "codename")}
        assert held == {f"accounts.{c}" for c in codenames} | set(ROLE_MODEL_PERMISSIONS.get(role, ()))


def test_ml_admin_manages_api_clients_and_webhook_deliveries_in_the_admin(client, db):
    """The README sends the ML admin to /admin/ for API clients and webhook deliveries."""
    result = demo_accounts_ensure(password="chosen-password-1")
    assert client.login(username="mladmin", password=result.password)
    index = client.get("/admin/")
    assert index.status_code == 200
    body = index.content.decode()
    assert "have permission to view or edit anything" not in body
    assert "/admin/clinical/apiclient/" in body and "/admin/clinical/webhookdelivery/" in body
    for url in ("/admin/clinical/apiclient/", "/admin/clinical/apiclient/add/", "/admin/clinical/webhookdelivery/",
                "/admin/mlcore/changerecord/", "/admin/mlcore/aliasevent/", "/admin/mlcore/modelversion/"):
        assert client.get(url).status_code == 200, url
    # Read-only there: change records move only through the audited console.
    assert client.get("/admin/mlcore/changerecord/add/").status_code == 403
    # Issuing a client through the admin works (the token is shown once).
    response = client.post("/admin/clinical/apiclient/add/", {
        "name": "pacs-east", "scopes": ["submit", "read"], "active": "on", "rate_limit_per_minute": "60",
        "allowed_callback_hosts": "", "default_callback_url": "",
    }, follow=True)
    assert response.status_code == 200 and "Copy these now" in response.content.decode()
    # The radiologist still has no admin.
    client.logout()
    assert client.login(username="radiologist", password=result.password)
    assert client.get("/admin/clinical/apiclient/").status_code == 302  # not staff: sent to the admin login


def test_demo_accounts_idempotent_and_audited(db):
    first = demo_accounts_ensure(password=None)
    assert first.password_generated and len(first.password) >= 12
    second = demo_accounts_ensure(password="chosen-password-1")
    assert not second.password_generated
    from django.contrib.auth import authenticate, get_user_model

    assert get_user_model().objects.filter(username__in=["radiologist", "mladmin"]).count() == 2
    assert authenticate(username="radiologist", password="chosen-password-1") is not None
    assert get_user_model().objects.get(username="mladmin").groups.filter(name=ML_ADMIN).exists()
    assert get_user_model().objects.get(username="radiologist").groups.filter(name=RADIOLOGIST).exists()
    assert AuditEvent.objects.filter(action="account.demo_created").count() == 2
    assert AuditEvent.objects.filter(action="account.demo_password_reset").count() == 2


def test_demo_password_is_kept_across_runs_unless_configured(tmp_path):
    import stat

    from radviewer.accounts.services import demo_password_resolve

    first, where = demo_password_resolve(configured="", var_dir=tmp_path)
    assert "generated once" in where and len(first) >= 12
    assert stat.S_IMODE((tmp_path / "demo_password").stat().st_mode) == 0o600
    again, where = demo_password_resolve(configured="", var_dir=tmp_path)
    assert again == first and "kept in" in where
    assert demo_password_resolve(configured="chosen-one", var_dir=tmp_path) == (
        "chosen-one", "from RADVIEWER_DEMO_PASSWORD")
