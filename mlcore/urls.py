from django.urls import path

from mlcore.views import dashboard, data, images, training

app_name = "mlcore"
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("data/", data.data_page, name="data"),
    path("data/<slug:slug>/", data.dataset_page, name="dataset"),
    path("datasets/<slug:slug>/image", images.dataset_image, name="dataset_image"),
    path("training/", training.training_job_list, name="training_jobs"),
    path("training/new", training.training_job_new, name="training_job_new"),
    path("training/<int:pk>/", training.training_job, name="training_job"),
    path("training/<int:pk>/cancel", training.training_job_cancel_view,
         name="training_job_cancel"),
]
