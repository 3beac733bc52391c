from django.urls import path

from mlcore.views import dashboard

app_name = "mlcore"
urlpatterns = [path("", dashboard.dashboard, name="dashboard")]
