"""Out-of-scope detection: junk is flagged, held-out in-scope images mostly are not."""

import lightning as L
import numpy as np
import pytest
from PIL import Image, ImageDraw

from mlcore.ml.bundle import ModelBundle
from mlcore.ml.classes import modality_of
from mlcore.ml.data import LocalDatasetStore, make_synthetic_dataset
from mlcore.ml.evaluation.inference import run_model
from mlcore.ml.evaluation.ood import GaussianScorer, OODDetector
from mlcore.ml.models import build_model
from mlcore.ml.predictor import Predictor
from mlcore.ml.training import ClassifierSystem, RadDataModule


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny ViT trained briefly on synthetic phantoms, with a detector fitted as in train."""
    store = LocalDatasetStore(tmp_path_factory.mktemp("ood-store"))
    make_synthetic_dataset(store, per_class=12, size=64, seed=11)
    L.seed_everything(0, verbose=False)
    model = build_model("vit-tiny-test")
    dm = RadDataModule(store, image_size=32, batch_size=16)
    dm.setup()
    system = ClassifierSystem(backbone=model, lr=2e-3, max_epochs=3,
                              class_weights=dm.class_weights)
    L.Trainer(max_epochs=3, logger=False, enable_progress_bar=False, enable_checkpointing=False,
              enable_model_summary=False, num_sanity_val_steps=0).fit(system, datamodule=dm)
    cfg = dm.preprocess
    (xt, yt), (xv, _) = dm.eval_inputs("train"), dm.eval_inputs("val")
    out_t = run_model(model, xt, mean=cfg.mean, std=cfg.std)
    out_v = run_model(model, xv, mean=cfg.mean, std=cfg.std)
    detector = OODDetector.fit(train_embeddings=out_t.embeddings,
                               train_descriptors=out_t.descriptors, train_labels=yt.numpy(),
                               val_embeddings=out_v.embeddings, val_descriptors=out_v.descriptors)
    bundle = ModelBundle(model_name="vit-tiny-test", state_dict=model.state_dict(),
                         preprocess=cfg, ood=detector)
    return store, Predictor(bundle, version="test", model_uri="local")


def text_document() -> np.ndarray:
    img = Image.new("L", (200, 260), 245)
    draw = ImageDraw.Draw(img)
    for i in range(20):
        draw.text((10, 10 + 12 * i), f"Discharge letter line {i}: lorem ipsum dolor", fill=20)
    return np.asarray(img)


def smooth_texture(rng) -> np.ndarray:
    small = (rng.random((6, 6)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((128, 128), Image.Resampling.BICUBIC))


def out_of_scope_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "blank": np.full((64, 64), 128, np.uint8),
        "black": np.zeros((100, 80), np.uint8),
        "uniform noise": (rng.random((80, 80)) * 255).astype(np.uint8),
        "smooth texture": smooth_texture(rng),
        "checkerboard": ((np.indices((96, 96)) // 12).sum(0) % 2 * 255).astype(np.uint8),
        "text document": text_document(),
    }


def test_junk_is_flagged(trained):
    _, predictor = trained
    images = out_of_scope_images()
    results = predictor.predict(list(images.values()), explain=False)
    not_flagged = [k for k, r in zip(images, results, strict=True) if not r.out_of_scope]
    assert not_flagged == []
    assert results[0].ood_reason == "near-constant image"
    assert results[2].ood_reason == "unlike training images"


def test_held_out_in_scope_images_are_rarely_flagged(trained):
    store, predictor = trained
    rows = store.rows("test") + store.rows("final_eval")
    assert len(rows) >= 15
    # Scopes as a DICOM header would give them: this test is about the detector, not the
    # scope rule (a 3-epoch model is rarely sure which scope an image is).
    results = predictor.predict([store.read_image(r) for r in rows], explain=False,
                                scopes=[modality_of(r.class_key) for r in rows])
    false_flags = sum(r.out_of_scope for r in results)
    assert false_flags <= 0.10 * len(rows)


def test_threshold_is_the_val_99th_percentile_and_scores_grow_with_distance():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 5, size=(3, 8))
    labels = rng.integers(0, 3, size=600)
    feats = centers[labels] + rng.normal(size=(600, 8))
    scorer = GaussianScorer.fit(feats, labels)
    near, far = scorer.score(centers + 0.1), scorer.score(centers + 8.0)
    assert np.all(far > 10 * near)
    val = centers[labels[:400]] + rng.normal(size=(400, 8))
    det = OODDetector.fit(train_embeddings=feats, train_descriptors=feats, train_labels=labels,
                          val_embeddings=val, val_descriptors=val)
    flags, _, _ = det.flag(val, val, np.ones(len(val)))
    assert flags.mean() <= 0.011  # 99th percentile of val -> about 1 % false flags on val
    fresh = centers[labels[400:]] + rng.normal(size=(200, 8))
    assert det.flag(fresh, fresh, np.ones(200))[0].mean() < 0.05
    # the score told as a reader reads it: the share of in-scope val images scoring lower
    assert det.percentile(np.array([det.threshold]))[0] == pytest.approx(99.0, abs=0.6)
    low, high = det.percentile(det.score(centers, centers)), det.percentile(det.score(centers + 8, centers + 8))
    assert np.all(low < 50) and np.all(high == 100.0)


def test_fit_refuses_empty_val():
    feats = np.random.default_rng(1).normal(size=(10, 4))
    with pytest.raises(ValueError, match="val split is empty"):
        OODDetector.fit(train_embeddings=feats, train_descriptors=feats,
                        train_labels=np.zeros(10, int), val_embeddings=feats[:0],
                        val_descriptors=feats[:0])


def test_each_distance_flags_on_its_own_tail_so_a_heavy_tailed_one_hides_nothing():
    # The embedding distance of in-scope val images is heavy-tailed (a few val images sit far
    # from every class mean); the input descriptor's is not. An image extreme only in its
    # descriptor (noise, photographs on the real-cxr model) must still be flagged.
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=800)
    emb = rng.normal(size=(800, 6))
    emb[::20] *= 6.0  # heavy tail in the embedding, in train and val alike
    desc = rng.normal(size=(800, 6))
    val_emb, val_desc = emb[400:], desc[400:]
    det = OODDetector.fit(train_embeddings=emb[:400], train_descriptors=desc[:400],
                          train_labels=labels[:400], val_embeddings=val_emb, val_descriptors=val_desc)
    assert det.flag(val_emb, val_desc, np.ones(400))[0].mean() <= 0.011
    odd = np.zeros((1, 6))
    odd_desc = np.full((1, 6), 2.6)  # ~40 squared distance in the descriptor alone
    assert det.flag(odd, odd_desc, np.ones(1))[0][0]


def test_spectral_shape_puts_a_radiograph_like_field_low_and_noise_flat():
    import torch

    from mlcore.ml.evaluation.ood import SPECTRAL_BANDS, spectral_shape

    rng = np.random.default_rng(0)
    noise = torch.from_numpy(rng.random((1, 1, 128, 128)))
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    smooth = torch.from_numpy((0.5 + 0.3 * np.sin(3 * xx) * np.cos(2 * yy))[None, None])
    shape_noise, shape_smooth = spectral_shape(noise), spectral_shape(smooth)
    assert shape_noise.shape == (1, SPECTRAL_BANDS)
    # White noise has most of its power in the highest band; the smooth field in the lowest.
    assert int(shape_noise.argmax()) == SPECTRAL_BANDS - 1
    assert int(shape_smooth.argmax()) == 0


def test_a_detector_fitted_on_an_older_shorter_descriptor_scores_its_prefix():
    rng = np.random.default_rng(3)
    emb, old = rng.normal(size=(80, 16)), rng.normal(size=(80, 73))
    labels = np.repeat(np.arange(4), 20)
    detector = OODDetector.fit(train_embeddings=emb, train_descriptors=old, train_labels=labels,
                               val_embeddings=emb[:20], val_descriptors=old[:20])
    grown = np.hstack([old, rng.normal(size=(80, 8))])  # today's descriptor appends columns
    np.testing.assert_array_equal(detector.score(emb, grown), detector.score(emb, old))
