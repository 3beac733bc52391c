from django.urls import path

from mlcore.views import dashboard, data, images

app_name = "mlcore"
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("data/", data.data_page, name="data"),
    path("data/<slug:slug>/", data.dataset_page, name="dataset"),
    path("datasets/<slug:slug>/image", images.dataset_image, name="dataset_image"),
]
