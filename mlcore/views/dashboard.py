"""The ML admin's console: thin function views per page group (DESIGN.md section 9)."""
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from mlcore.ml.classes import CLASS_BY_KEY
from mlcore.selectors import agreement_by_version, alias_map, model_versions
from mlcore.selectors.promotion import alias_timeline, production_rollback_target
from mlcore.selectors.rollout import guard_alert
from radviewer.lib.auth import permission_required_403

ALIAS_ORDER = ("production", "canary", "candidate")


def registry_context(name: str) -> dict:
    """How the registry is named on the pages: a link to the MLflow UI when one is
    configured, else a plain label (never the store's file path)."""
    ui = settings.MLFLOW_UI_URL
    return {
        "registry_url": f"{ui}/#/models/{name}" if ui else "",
        "registry_version_url": f"{ui}/#/models/{name}/versions/" if ui else "",
        "registry_label": "MLflow registry" if ui else "MLflow store on this server",
    }


@permission_required_403("accounts.manage_models")
def dashboard(request: HttpRequest) -> HttpResponse:
    name = settings.MLFLOW_REGISTERED_MODEL
    versions = list(model_versions(name=name))
    holders = alias_map(name=name)
    agreement = {a.model_version: a for a in agreement_by_version(model_name=name)}
    rows = [
        {
            "version": v,
            # Every alias the version holds (a version may be candidate and canary at once).
            "aliases": [a for a in ALIAS_ORDER if holders.get(a) == v.version],
            "agreement": agreement.get(v.version),
            "macro_f1": v.metrics.get("test_macro_f1"),
            "accuracy": v.metrics.get("test_accuracy"),
        }
        for v in versions
    ]
    context = {
        "name": name, "rows": rows, "class_names": {k: c.display_name for k, c in CLASS_BY_KEY.items()},
        "holders": [(a, holders.get(a, "")) for a in ALIAS_ORDER],
        "production": holders.get("production", ""),
        "rollback_to": production_rollback_target(name=name),
        "timeline": list(alias_timeline(name=name, limit=20)),
        "guard_alert": guard_alert(name=name),
        **registry_context(name),
    }
    template = "mlcore/dashboard.html#timeline" if request.htmx else "mlcore/dashboard.html"
    return render(request, template, context)
