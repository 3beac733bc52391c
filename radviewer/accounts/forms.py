"""The sign-in forms (the app's and the admin's), throttled per user name and client address."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from radviewer.accounts.services import login_failure_record, login_locked_for, login_success_record
from radviewer.lib.http import client_ip

LOCKED = "locked"


def _wait_text(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class ThrottledLoginMixin:
    """Refuses every sign-in, the right password included, while the name or the address is
    locked (radviewer.accounts.services); counts each wrong password."""

    locked_for: int = 0

    def _locked_error(self, seconds: int) -> forms.ValidationError:
        self.locked_for = seconds
        return forms.ValidationError(
            "Too many failed sign-ins for this account or from this computer. "
            "Try again in %(wait)s; if you have forgotten your password, ask the administrator.",
            code=LOCKED, params={"wait": _wait_text(seconds)},
        )

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        if username and self.cleaned_data.get("password"):
            seconds = login_locked_for(username=username, ip=client_ip(self.request))
            if seconds:
                raise self._locked_error(seconds)
        try:
            cleaned = super().clean()
        except forms.ValidationError as exc:
            if exc.code == "invalid_login":
                seconds = login_failure_record(username=username, request=self.request)
                if seconds:
                    raise self._locked_error(seconds) from None
            raise
        login_success_record(username=username)
        return cleaned


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Your username and password did not match. Please try again.",
    }


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
