"""`make run`'s login box: printed last, with the kept demo password, and it says what is
not up when the wait runs out."""

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_box_names_what_is_missing_and_the_kept_password(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.DEMO_PASSWORD = ""
    (tmp_path / "demo_password").write_text("kept-password-123\n")
    out = io.StringIO()
    # Port 9 (discard) on loopback: nothing listens, and no worker consumes in this test.
    call_command("announce_ready", "--url", "http://127.0.0.1:9", "--timeout", "1.5", "--exit", stdout=out)
    text = out.getvalue()
    assert "RadViewer is up: http://127.0.0.1:9/" in text and "kept-password-123" in text
    assert "NOT READY after 2 s: web server at http://127.0.0.1:9; inference worker; training worker" in text
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len({len(line) for line in lines}) == 1  # a closed box
