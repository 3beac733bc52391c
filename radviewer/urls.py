from django.contrib import admin
from django.urls import include, path

from radviewer import views
from radviewer.accounts.forms import AdminLoginForm
from radviewer.ops import views as ops_views

# The admin's sign-in is throttled like the app's (radviewer.accounts.forms).
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("radviewer.accounts.urls")),
    path("audit/", include("radviewer.audit.urls")),
    path("ml/", include("mlcore.urls")),
    # Token-authenticated integration surface (answers 401 itself; see LoginRequiredByDefaultMiddleware).
    path("api/", include("clinical.api.urls")),
    path("dicomweb/", include("clinical.api.dicomweb_urls")),
    path("", include("clinical.urls")),
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico whatever the page says: point them at the static icon.
    path("favicon.ico", views.favicon, name="favicon"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
]

# An unreachable database outside a view is a 503 with a message too (radviewer.views.server_error).
handler500 = "radviewer.views.server_error"
