from django.urls import path

from mlcore.views import (
    blinded,
    dashboard,
    data,
    drift,
    images,
    monitoring,
    promotion,
    rollout,
    rollout_policy,
    training,
    versions,
)

app_name = "mlcore"
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("data/", data.data_page, name="data"),
    path("data/<slug:slug>/", data.dataset_page, name="dataset"),
    path("datasets/<slug:slug>/image", images.dataset_image, name="dataset_image"),
    path("versions/<str:version>/", versions.version_detail, name="version"),
    path("compare/", versions.compare, name="compare"),
    path("training/", training.training_job_list, name="training_jobs"),
    path("training/new", training.training_job_new, name="training_job_new"),
    path("training/<int:pk>/", training.training_job, name="training_job"),
    path("training/<int:pk>/cancel", training.training_job_cancel_view,
         name="training_job_cancel"),
    # promotion, rollback, change records, alias timeline
    path("versions/<str:version>/promote", promotion.promote, name="promote"),
    path("rollback", promotion.rollback, name="rollback"),
    path("aliases/<str:alias>/remove", promotion.remove_alias, name="alias_remove"),
    path("criteria/", promotion.criteria, name="criteria"),
    path("changes/", promotion.change_list, name="change_list"),
    path("changes/<int:pk>/", promotion.change_detail, name="change_detail"),
    path("changes/<int:pk>.json", promotion.change_json, name="change_json"),
    path("changes/<int:pk>/print", promotion.change_print, name="change_print"),
    path("timeline/", promotion.timeline, name="timeline"),
    path("rollout/", rollout.rollout_page, name="rollout"),
    path("blinded/", blinded.blinded, name="blinded"),
    path("drift/", drift.drift_page, name="drift"),
    # degradation from reader feedback; continuous training
    path("monitoring/", monitoring.monitoring, name="monitoring"),
    path("pipeline/", monitoring.pipeline, name="pipeline"),
    path("pipeline/start", monitoring.pipeline_start, name="pipeline_start"),
    path("rollout/policy/", rollout_policy.rollout_policy, name="rollout_policy"),
]
