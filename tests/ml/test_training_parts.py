"""Unit tests of the training parts: weights, schedule, metric, precision, config."""

import itertools

import pytest
import torch

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.training import TrainConfig, inverse_frequency_weights
from mlcore.ml.training.precision import _cpu_bf16_faster, resolve_precision
from mlcore.ml.training.system import macro_f1_present, warmup_cosine


def test_inverse_frequency_weights_zero_for_empty_classes():
    labels = torch.tensor([0, 0, 0, 1])  # 3 of class 0, 1 of class 1, none of the others
    w, empty = inverse_frequency_weights(labels, CLASS_KEYS)
    assert w[0] == pytest.approx(4 / (2 * 3)) and w[1] == pytest.approx(4 / (2 * 1))
    assert torch.all(w[2:] == 0)
    assert empty == list(CLASS_KEYS[2:])


def test_warmup_then_cosine():
    lrs = [warmup_cosine(s, warmup=4, total=20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(lrs[4:]))
    assert lrs[-1] < 0.05


def test_macro_f1_ignores_absent_classes():
    tp = torch.tensor([2, 1, 0])
    fp = torch.tensor([1, 0, 1])  # class 2 absent in labels but predicted once
    fn = torch.tensor([0, 1, 0])
    expected = (4 / 5 + 2 / 3) / 2
    assert float(macro_f1_present(tp, fp, fn)) == pytest.approx(expected)


def test_macro_f1_monitor_leaves_out_classes_too_small_to_judge():
    # classes 0 and 1: 20 val images each; class 2: one image, missed (F1 0)
    tp = torch.tensor([18, 16, 0])
    fp = torch.tensor([2, 1, 1])
    fn = torch.tensor([2, 4, 1])
    big = (2 * 18 / (36 + 4) + 2 * 16 / (32 + 5)) / 2
    assert float(macro_f1_present(tp, fp, fn, min_support=10)) == pytest.approx(big)
    assert float(macro_f1_present(tp, fp, fn, min_support=1)) == pytest.approx(big * 2 / 3)
    # when no class reaches the minimum (tiny synthetic sets), every present class counts
    assert float(macro_f1_present(tp, fp, fn, min_support=100)) == pytest.approx(big * 2 / 3)


def test_precision_auto_is_measured_and_explicit_passes_through():
    assert isinstance(_cpu_bf16_faster(), bool)
    assert resolve_precision("auto", "cpu") in ("32-true", "bf16-mixed")
    assert resolve_precision("16-mixed", "cpu") == "16-mixed"


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="backend"):
        TrainConfig(store_uri="x", tracking_uri="y", backend="spark")
    with pytest.raises(ValueError, match="latest"):
        TrainConfig(store_uri="x", tracking_uri="y", alias="latest")
    cfg = TrainConfig(store_uri="x", tracking_uri="y", model_overrides={"depth": 1})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({**cfg.to_dict(), "epochz": 3})


def test_training_imports_without_mlflow_and_defaults_agree():
    import subprocess
    import sys

    code = ("import sys; import mlcore.ml.training; "
            "from mlcore.ml.training import train; assert callable(train); "
            "print('mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"  # a bare GPU box can import the training package
    from mlcore.ml import tracking
    from mlcore.ml.training import config

    assert config.DEFAULT_EXPERIMENT == tracking.DEFAULT_EXPERIMENT
    assert config.DEFAULT_REGISTERED_MODEL == tracking.DEFAULT_REGISTERED_MODEL


def test_recipe_options_are_validated_and_image_size_folds_into_the_overrides():
    for bad in ({"intensity": "clahe"}, {"augment_downscale": 0.5}, {"source_balance": 1.5},
                {"ema_decay": 1.0}, {"image_size": 8}, {"ema_start_epoch": 40},
                {"mixup_alpha": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(store_uri="x", tracking_uri="y", **bad)
    cfg = TrainConfig(store_uri="x", tracking_uri="y", model_overrides={"dropout": 0.0}, image_size=96)
    assert cfg.backbone_overrides == {"dropout": 0.0, "img_size": 96}
    assert TrainConfig(store_uri="x", tracking_uri="y").backbone_overrides == {}


def test_mixup_blends_images_and_loss_by_one_seeded_weight():
    from torch import nn

    from mlcore.ml.training.system import ClassifierSystem

    n = len(CLASS_KEYS)
    x = torch.rand(6, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    off = ClassifierSystem(backbone=nn.Sequential(nn.Flatten(), nn.Linear(16, n)))
    assert off._mixup(x, y)[3] == 1.0 and off._mixup(x, y)[0] is x  # the default: no mixing
    system = ClassifierSystem(backbone=nn.Sequential(nn.Flatten(), nn.Linear(16, n)), mixup_alpha=0.4)
    torch.manual_seed(3)
    mixed, y_a, y_b, lam = system._mixup(x, y)
    assert 0.0 < lam < 1.0 and torch.equal(y_a, y)
    perm = torch.tensor([int((y == b).nonzero()) for b in y_b])  # y_b is y permuted
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm])
    torch.manual_seed(3)
    again = system._mixup(x, y)
    assert again[3] == lam and torch.equal(again[0], mixed)  # seeded: a run repeats
    # The step's loss is the same blend of the two labels' losses.
    torch.manual_seed(3)
    loss = system.training_step((x, y), 0)
    logits = system(mixed)
    expected = lam * system._loss(logits, y_a) + (1 - lam) * system._loss(logits, y_b)
    assert torch.allclose(loss, expected)


def test_source_balance_shares_each_class_among_its_sources():
    from mlcore.ml.training.datamodule import CachedSplit, source_balanced_weights

    keys = ["lung-covid"] * 8 + ["lung-normal"] * 4
    sources = ["big"] * 6 + ["small"] * 2 + ["a"] * 2 + ["b"] * 2
    split = CachedSplit(images=torch.zeros(12, 1, 4, 4, dtype=torch.uint8), boxes=torch.zeros(12, 4),
                        labels=torch.zeros(12, dtype=torch.long), class_keys=keys, paths=[""] * 12,
                        sources=sources)
    w = source_balanced_weights(split, power=1.0)
    covid_big, covid_small = w[:6].sum(), w[6:8].sum()
    assert covid_big == pytest.approx(covid_small)  # each source of a class drawn equally often
    assert w[:8].sum() == pytest.approx(8) and w[8:].sum() == pytest.approx(4)  # class totals kept
    assert torch.equal(source_balanced_weights(split, power=0.0), torch.ones(12, dtype=torch.double))


def test_delayed_ema_starts_from_the_start_epochs_weights_and_is_invisible_before():
    import lightning as L

    from mlcore.ml.training.common import delayed_ema

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1, bias=False)
            self.seen_in_validation = []

        def training_step(self, batch, _):
            return (self.lin(batch[0]) - 10.0).pow(2).mean()

        def validation_step(self, batch, _):
            self.seen_in_validation.append(self.lin.weight.detach().item())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    data = torch.utils.data.TensorDataset(torch.ones(4, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=1)
    torch.manual_seed(0)
    model = Tiny()
    weights_after_epoch = []

    class Record(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            weights_after_epoch.append(pl_module.lin.weight.detach().item())

    ema = delayed_ema(decay=0.5, start_epoch=2)
    trainer = L.Trainer(max_epochs=4, callbacks=[ema, Record()], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        accelerator="cpu")
    trainer.fit(model, loader, loader)
    # Epochs 0 and 1 validate the trained weights (no average yet), not the random start.
    assert model.seen_in_validation[0] == pytest.approx(weights_after_epoch[0])
    assert model.seen_in_validation[4] == pytest.approx(weights_after_epoch[1])
    # From epoch 2 validation sees the average, which lags the trained weights going to 10.
    assert model.seen_in_validation[8] < weights_after_epoch[2]
    assert weights_after_epoch[1] < model.seen_in_validation[8]  # averaged from epoch 2 on only
    assert int(ema._average_model.n_averaged) == 8  # 4 steps in each of epochs 2 and 3
    assert model.lin.weight.detach().item() == pytest.approx(model.seen_in_validation[-1])  # fit ends averaged


def test_focal_loss_is_weighted_cross_entropy_at_gamma_0_and_spares_confident_images():
    import torch.nn.functional as F

    from mlcore.ml.training.system import focal_loss

    torch.manual_seed(0)
    logits, y = torch.randn(8, 5), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    w = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0])
    assert torch.allclose(focal_loss(logits, y, gamma=0.0, weight=w), F.cross_entropy(logits, y, weight=w))
    confident = torch.tensor([[8.0, 0, 0, 0, 0]])
    unsure = torch.tensor([[0.5, 0, 0, 0, 0]])
    zero = torch.tensor([0])
    ratio_confident = focal_loss(confident, zero, gamma=2.0) / F.cross_entropy(confident, zero)
    ratio_unsure = focal_loss(unsure, zero, gamma=2.0) / F.cross_entropy(unsure, zero)
    assert ratio_confident < 1e-5 and 0.3 < ratio_unsure < 0.6  # (1 - p)^2 of each
    with pytest.raises(ValueError, match="focal_gamma"):
        TrainConfig(store_uri="x", tracking_uri="y", focal_gamma=-1)
