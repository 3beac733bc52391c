"""Progress and cancellation hooks of ``train``: on_step, should_stop (tiny config, CPU)."""

from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from mlcore.ml import tracking
from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
from mlcore.ml.training import TrainConfig, train
from mlcore.ml.training.callbacks import StepReporter, StopRequest

NAME = "radviewer-hooks-test"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = LocalDatasetStore(tmp_path_factory.mktemp("store"))
    make_synthetic_dataset(s, per_class=6, size=48, seed=4)
    return s


def _config(store, tmp_path, **kw) -> TrainConfig:
    return TrainConfig(
        store_uri=str(store.root), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        model_name="vit-tiny-test", batch_size=16, max_train_batches=2, progress=False,
        registered_model_name=NAME, output_dir=str(tmp_path / "out"),
        log_system_metrics=False, **kw)


def test_on_step_reports_progress_and_a_run_that_is_never_stopped_registers(store, tmp_path):
    steps, epochs, polls = [], [], []

    def should_stop() -> bool:
        polls.append(1)
        return False

    result = train(_config(store, tmp_path, epochs=2), on_step=steps.append,
                   on_epoch=epochs.append, should_stop=should_stop)
    assert not result.cancelled and result.model_version == "1"
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert polls, "should_stop is polled at least once (on the first batch)"
    first = steps[0]
    assert first["step"] == 1 and first["total_steps"] == 4
    assert (first["epoch"], first["epochs"]) == (1, 2) and first["train_loss"] > 0


def test_should_stop_cancels_without_calibrating_or_registering(store, tmp_path):
    cfg = _config(store, tmp_path, epochs=30)
    epochs = []
    result = train(cfg, on_epoch=epochs.append, should_stop=lambda: True)
    assert result.cancelled and result.model_version is None and result.bundle_dir is None
    assert len(epochs) <= 1  # stopped after its first batch, not after 30 epochs
    tracking.configure(cfg.tracking_uri)
    client = MlflowClient(cfg.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "KILLED" and run.data.tags["radviewer.cancelled"] == "true"
    assert "calibration_temperature" not in run.data.metrics
    assert not client.search_registered_models(f"name='{NAME}'")


def _fake_trainer(**kw):
    """What the callbacks read from a Lightning Trainer, as plain attributes."""
    return SimpleNamespace(is_global_zero=True, world_size=1, global_step=0, current_epoch=0,
                           max_epochs=3, estimated_stepping_batches=30, should_stop=False, **kw)


def test_step_reports_and_stop_polls_are_throttled():
    reports, polls = [], []
    reporter = StepReporter(reports.append, interval_s=3600)
    stopper = StopRequest(lambda: polls.append(1) or len(polls) > 1, interval_s=3600)
    trainer = _fake_trainer()
    for i in range(5):
        trainer.global_step = i + 1
        reporter.on_train_batch_end(trainer, None, {"loss": 0.5}, None, i)
        stopper.on_train_batch_end(trainer, None, None, None, i)
    assert [r["step"] for r in reports] == [1]  # the first batch only, then once per interval
    assert len(polls) == 1 and not trainer.should_stop and not stopper.stopped
    stopper.interval_s = 0
    stopper.on_train_batch_end(trainer, None, None, None, 5)
    assert stopper.stopped and trainer.should_stop


def test_ray_backend_refuses_the_local_hooks(store, tmp_path):
    cfg = _config(store, tmp_path, epochs=1, backend="ray")
    with pytest.raises(ValueError, match="local backend"):
        train(cfg, should_stop=lambda: False)
