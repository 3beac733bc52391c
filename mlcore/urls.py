from django.urls import path

from mlcore.views import dashboard, images, promotion

app_name = "mlcore"
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("datasets/<slug:slug>/image", images.dataset_image, name="dataset_image"),
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
]
