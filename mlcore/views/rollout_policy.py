"""The rollout policy form of the ML console (canary share, shadow on/off and share).

GET: the page; an htmx GET or POST answers with the partial ``mlcore/rollout/_policy_form.html``
alone, which other console pages (the rollout page) include with :func:`policy_form_context`.
Thin: parse, call ``rollout_policy_update``, render.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from mlcore.forms import RolloutPolicyForm
from mlcore.selectors import alias_map
from mlcore.selectors.rollout import rollout_policy as policy_of
from mlcore.services.rollout import RolloutError, rollout_policy_update
from mlcore.views.dashboard import ALIAS_ORDER
from radviewer.lib.auth import permission_required_403

PARTIAL = "mlcore/rollout/_policy_form.html"


def policy_form_context(name: str, form: RolloutPolicyForm | None = None, **extra: Any) -> dict[str, Any]:
    """What the partial needs: the form (bound after a failed post), the policy and the alias holders."""
    policy = policy_of(name=name)
    holders = alias_map(name=name)
    form = form or RolloutPolicyForm(initial={"canary_percent": policy.canary_percent,
                                              "shadow_candidate": policy.shadow_candidate,
                                              "shadow_percent": policy.shadow_percent})
    return {"policy_form": form, "policy": policy, "policy_name": name,
            "policy_holders": [(a, holders.get(a, "")) for a in ALIAS_ORDER], **extra}


@require_http_methods(["GET", "POST"])
@permission_required_403("accounts.manage_models")
def rollout_policy(request: HttpRequest) -> HttpResponse:
    name = settings.MLFLOW_REGISTERED_MODEL
    form, status, error, saved = None, 200, "", ""
    if request.method == "POST":
        form = RolloutPolicyForm(request.POST)
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                policy = rollout_policy_update(
                    name=name, actor=request.user, canary_percent=data["canary_percent"],
                    shadow_candidate=data["shadow_candidate"], shadow_percent=data["shadow_percent"],
                    reason=data["reason"], request=request)
            except RolloutError as exc:
                error = str(exc)
            else:
                saved = (f"Saved: canary {policy.canary_percent} %, shadow "
                         + (f"on for {policy.shadow_percent} % of studies." if policy.shadow_candidate else "off."))
                if not request.htmx:
                    messages.success(request, saved)
                    return redirect("mlcore:rollout_policy")
                form, status = None, 200
    context = policy_form_context(name, form, policy_error=error, policy_saved=saved)
    return render(request, PARTIAL if request.htmx else "mlcore/rollout/policy.html", context, status=status)
