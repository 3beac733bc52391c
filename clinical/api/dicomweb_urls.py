"""/dicomweb/: STOW-RS for PACS senders and a QIDO-RS study search (see clinical.api.dicomweb)."""

from django.urls import path

from clinical.api import dicomweb

app_name = "dicomweb"
urlpatterns = [
    # One URL, two methods: QIDO-RS (GET) and STOW-RS (POST), as PS3.18 defines them.
    path("studies", dicomweb.DicomWebStudiesView.as_view(), name="studies"),
    path("studies/<str:study_uid>", dicomweb.StowView.as_view(), name="study-stow"),
]
