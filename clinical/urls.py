from django.urls import path

from clinical.views import claims, compare, images, provenance, reviews, upload, viewer, worklist

app_name = "clinical"

_image = "studies/<str:uid>/images/<int:image_id>/"

urlpatterns = [
    path("upload/", upload.upload_page, name="upload"),
    path("upload/file/", upload.upload_file, name="upload_file"),
    path("worklist/", worklist.worklist_page, name="worklist"),
    path("studies/<str:uid>/", viewer.study_page, name="study"),
    path("studies/<str:uid>/status/", viewer.study_status, name="study_status"),
    path("studies/<str:uid>/next/", viewer.study_next, name="study_next"),
    path("studies/<str:uid>/provenance", provenance.study_provenance_page, name="study_provenance"),
    path("studies/<str:uid>/sign-off/", reviews.sign_off, name="sign_off"),
    # reading claims (issue 14 item 9)
    path("studies/<str:uid>/claim/heartbeat/", claims.claim_heartbeat, name="claim_heartbeat"),
    path("studies/<str:uid>/claim/take-over/", claims.claim_take_over, name="claim_take_over"),
    path("studies/<str:uid>/claim/release/", claims.claim_release, name="claim_release"),
    path("studies/<str:uid>/compare/<str:prior_uid>/", compare.study_compare, name="study_compare"),
    path(_image + "display.png", images.image_display, name="image_display"),
    path(_image + "probe", images.image_probe, name="image_probe"),
    path(_image + "heatmap.png", images.image_heatmap, name="image_heatmap"),
    path(_image + "attributions/<str:method>.png", images.image_attribution, name="image_attribution"),
    path(_image + "attributions/<str:method>/", reviews.attribution, name="attribution"),
    # heatmap (issue #14 item 12): the attribution block for a chosen class; a map's top region
    path(_image + "attributions/", reviews.attributions, name="attributions"),
    path(_image + "overlay-region/<str:source>.json", images.overlay_region, name="overlay_region"),
    path(_image + "retry/", reviews.retry, name="prediction_retry"),
    path(_image + "reviews/", reviews.review_submit, name="review"),
    path(_image + "reviews/<int:review_id>/undo/", reviews.undo, name="review_undo"),
]
