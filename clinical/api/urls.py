"""/api/: the versioned REST API, its OpenAPI schema and the (locally served) Swagger UI."""

from django.urls import path
from drf_spectacular.views import SpectacularSwaggerSplitView

from clinical.api import views
from clinical.api.schema import SchemaView

app_name = "api"
urlpatterns = [
    path("v1/studies/", views.StudyListCreateView.as_view(), name="study-list"),
    path("v1/studies/<str:uid>/", views.StudyDetailView.as_view(), name="study-detail"),
    path("v1/studies/<str:uid>/fhir/", views.StudyFhirView.as_view(), name="study-fhir"),
    path("v1/studies/<str:uid>/sr/", views.StudySrView.as_view(), name="study-sr"),
    path("v1/studies/<str:uid>/heatmap.png", views.HeatmapView.as_view(), name="study-heatmap"),
    path("v1/studies/<str:uid>/images/<str:image_id>/heatmap.png", views.ImageHeatmapView.as_view(),
         name="image-heatmap"),
    path("v1/studies/<str:uid>/feedback/", views.FeedbackView.as_view(), name="study-feedback"),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]
