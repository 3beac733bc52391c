from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from radviewer.lib.auth import permission_required_403


@permission_required_403("accounts.manage_models")
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "mlcore/dashboard.html", {})
