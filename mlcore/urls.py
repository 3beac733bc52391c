from django.urls import path

from mlcore.views import dashboard, images, versions

app_name = "mlcore"
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("datasets/<slug:slug>/image", images.dataset_image, name="dataset_image"),
    path("versions/<str:version>/", versions.version_detail, name="version"),
    path("compare/", versions.compare, name="compare"),
]
