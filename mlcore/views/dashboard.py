from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from mlcore.ml.classes import CLASS_BY_KEY
from mlcore.selectors import agreement_by_version, alias_map, model_versions
from radviewer.lib.auth import permission_required_403


@permission_required_403("accounts.manage_models")
def dashboard(request: HttpRequest) -> HttpResponse:
    name = settings.MLFLOW_REGISTERED_MODEL
    versions = list(model_versions(name=name))
    aliases = alias_map(name=name)
    by_version = {v: a for a, v in aliases.items()}
    agreement = {a.model_version: a for a in agreement_by_version(model_name=name)}
    rows = [
        {
            "version": v,
            "alias": by_version.get(v.version, ""),
            "agreement": agreement.get(v.version),
            "macro_f1": v.metrics.get("test_macro_f1"),
            "accuracy": v.metrics.get("test_accuracy"),
        }
        for v in versions
    ]
    return render(request, "mlcore/dashboard.html", {
        "name": name, "rows": rows, "class_names": {k: c.display_name for k, c in CLASS_BY_KEY.items()},
        "tracking_uri": settings.MLFLOW_TRACKING_URI,
    })
