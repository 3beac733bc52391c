"""Reads for evaluations, the version page and the comparison page."""

from __future__ import annotations

from django.db.models import QuerySet

from mlcore.models import DatasetVersion, Evaluation, ModelAlias, ModelVersion


def model_version_get(*, name: str, version: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(name=name, version=str(version)).first()


def version_aliases(*, version: ModelVersion) -> list[str]:
    """Every alias the version holds (a version can be ``candidate`` and ``canary`` at once)."""
    return sorted(ModelAlias.objects.filter(model_version=version).values_list("alias", flat=True))


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
