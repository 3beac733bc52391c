"""Sign-in: Django's LoginView with the throttled form; a locked sign-in answers 429."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpResponse

from radviewer.accounts.forms import LOCKED, LoginForm


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: LoginForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.has_error("__all__", code=LOCKED):
            response.status_code = 429
            response["Retry-After"] = str(form.locked_for)
        return response
