from django.urls import path

from mlcore.views import dashboard, images

app_name = "mlcore"
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("datasets/<slug:slug>/image", images.dataset_image, name="dataset_image"),
]
