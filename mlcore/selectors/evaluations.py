"""Reads for evaluations, the version page and the comparison page."""

from __future__ import annotations

from django.db.models import QuerySet

from mlcore.models import DatasetVersion, Evaluation, ModelAlias, ModelVersion


def model_version_get(*, name: str, version: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(name=name, version=str(version)).first()


def version_aliases(*, version: ModelVersion) -> list[str]:
    """Every alias the version holds (a version can be ``candidate`` and ``canary`` at once)."""
    return sorted(ModelAlias.objects.filter(model_version=version).values_list("alias", flat=True))


def dataset_version_get(*, slug: str) -> DatasetVersion | None:
    return DatasetVersion.objects.filter(slug=slug).first()


def dataset_with_manifest(*, manifest_hash: str) -> DatasetVersion | None:
    """The dataset version whose manifest a run trained on (None when unknown)."""
    return DatasetVersion.objects.filter(manifest_hash=manifest_hash).first() if manifest_hash else None


def ready_datasets() -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.filter(status=DatasetVersion.Status.READY).order_by("-created_at")


def default_evaluation_dataset(*, version: ModelVersion) -> DatasetVersion | None:
    """The dataset version the version was trained on (its manifest hash, when the run
    logged one), else the newest ready training dataset version."""
    ready = ready_datasets()
    manifest_hash = (version.params or {}).get("data.manifest_hash", "")
    if manifest_hash:
        own = ready.filter(manifest_hash=manifest_hash).first()
        if own is not None:
            return own
    return ready.filter(kind=DatasetVersion.Kind.TRAINING).first()


def evaluations_of(*, version: ModelVersion) -> QuerySet[Evaluation]:
    return (Evaluation.objects.filter(model_version=version).select_related("dataset_version")
            .defer("report", "plots").order_by("-created_at", "-id"))


def newest_locked_evaluation(*, version: ModelVersion, dataset: DatasetVersion | None = None
                             ) -> Evaluation | None:
    """The newest succeeded evaluation of ``version`` on a locked set (of ``dataset``)."""
    qs = Evaluation.objects.filter(model_version=version, set_name="locked", status=Evaluation.Status.SUCCEEDED)
    if dataset is not None:
        qs = qs.filter(dataset_version=dataset)
    return qs.select_related("dataset_version").order_by("-finished_at", "-id").first()


CURVE_METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "val_macro_f1")
CURVES_CACHE_S = 24 * 3600


def training_curves_svg(*, version: ModelVersion) -> str | None:
    """The run's training curves as SVG, fetched from MLflow once and kept in the cache (a
    finished run's history never changes); None when the version has no run."""
    if not version.run_id:
        return None
    from django.conf import settings
    from django.core.cache import cache

    key = f"mlcore:training-curves:v1:{settings.MLFLOW_TRACKING_URI}:{version.run_id}"
    svg = cache.get(key)
    if svg is None:
        # MLflow and matplotlib (seconds): only when a version page misses the cache
        from mlflow.exceptions import MlflowException

        from mlcore.ml import tracking
        from mlcore.ml.plots.evaluation import training_curves_svg as draw

        client = tracking.client(settings.MLFLOW_TRACKING_URI)
        histories = {}
        for name in CURVE_METRICS:
            try:
                points = client.get_metric_history(version.run_id, name)
            except MlflowException:
                points = []
            histories[name] = sorted((int(p.step), float(p.value)) for p in points)
        svg = draw(histories)
        cache.set(key, svg, CURVES_CACHE_S)
    return svg
