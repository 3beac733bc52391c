"""RadDataModule: splits, caching, transforms and class weights for one dataset store.

Why a cache of letterboxed uint8 images: data sets here are small (thousands of images), the
expensive part per epoch would be PNG decoding and the antialiased resize, and both are
deterministic -- so each image is decoded and letterboxed ONCE to the model's size and kept as
uint8 (S*S bytes; 2,400 images at 224 px = 120 MB). Quantising the letterboxed image to 8 bits
changes intensities by at most 0.5/255, below the 8-bit sources' own resolution.
Only augmentation and normalisation run per step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from mlcore.ml.classes import CLASS_KEYS
from mlcore.ml.data import check_trainable
from mlcore.ml.transforms import (
    LetterboxBox,
    PreprocessConfig,
    TrainAugment,
    finish_input,
    letterboxed01,
    standardise_intensity,
)

log = logging.getLogger(__name__)

EVAL_SPLITS: tuple[str, ...] = ("train", "val", "test", "final_eval")
Augment = Callable[..., torch.Tensor]
WEIGHTING_POWER: dict[str, float] = {"inverse": 1.0, "sqrt_inverse": 0.5, "none": 0.0}


@dataclass(slots=True)
class CachedSplit:
    """Letterboxed uint8 images ``n 1 S S`` (before intensity standardisation, which runs
    after augmentation) with their content boxes ``n 4``, labels and class keys."""

    images: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    class_keys: list[str]
    paths: list[str]
    sources: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def box(self, i: int) -> LetterboxBox:
        return LetterboxBox(*(int(v) for v in self.boxes[i]))

    def float01(self, i: int) -> torch.Tensor:
        return self.images[i].float() / 255.0


class _SplitDataset(Dataset):
    def __init__(self, split: CachedSplit, cfg: PreprocessConfig, augment: Augment | None,
                 seed: int) -> None:
        self.split = split
        self.cfg = cfg
        self.augment = augment
        self.seed = seed
        self._generator: torch.Generator | None = None

    def __len__(self) -> int:
        return len(self.split)

    def _gen(self) -> torch.Generator:
        # One generator per process (DataLoader worker, DDP rank): seeded, but distinct.
        if self._generator is None:
            info = torch.utils.data.get_worker_info()
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            wid = 0 if info is None else info.id + 1
            self._generator = torch.Generator().manual_seed(self.seed * 1009 + rank * 97 + wid)
        return self._generator

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.split.float01(i)  # 1 S S in [0, 1]
        if self.augment is not None:
            x = self.augment(x, self.split.class_keys[i], generator=self._gen())
        return finish_input(x, self.split.box(i), self.cfg), self.split.labels[i]


class RadDataModule(L.LightningDataModule):
    """Owns the splits of a dataset store (manifest), their transforms and the class weights.

    ``include_feedback`` adds radiologist-confirmed feedback rows to TRAIN (never to val/test,
    whose figures must stay comparable between model versions).
    """

    def __init__(
        self,
        store: object,
        *,
        image_size: int,
        batch_size: int = 32,
        num_workers: int = 0,
        augment: bool | Augment = True,
        class_keys: Sequence[str] = CLASS_KEYS,
        include_feedback: bool = False,
        preprocess: PreprocessConfig | None = None,
        seed: int = 0,
        class_weighting: str = "inverse",
        intensity: str = "none",
        source_balance: float = 0.0,
    ) -> None:
        super().__init__()
        if image_size <= 0 or batch_size <= 0 or num_workers < 0:
            raise ValueError("image_size and batch_size must be > 0 and num_workers >= 0, got "
                             f"{image_size}, {batch_size}, {num_workers}")
        self.store = store
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.class_keys = tuple(class_keys)
        self.include_feedback = include_feedback
        self.seed = seed
        if class_weighting not in WEIGHTING_POWER:
            raise ValueError(f"class_weighting must be one of {sorted(WEIGHTING_POWER)}, got "
                             f"{class_weighting!r}")
        self.class_weighting = class_weighting
        if not 0.0 <= source_balance <= 1.0:
            raise ValueError(f"source_balance must be in [0, 1], got {source_balance}")
        self.source_balance = float(source_balance)
        if augment is True:
            self.augment: Augment | None = TrainAugment()
        elif augment is False:
            self.augment = None
        else:
            self.augment = augment
        self.intensity = preprocess.intensity if preprocess is not None else intensity
        self._preprocess = preprocess
        self.splits: dict[str, CachedSplit] = {}
        self.class_weights: torch.Tensor | None = None
        self.empty_train_classes: list[str] = []

    # -- setup ----------------------------------------------------------------------
    def _rows(self, split: str) -> list:
        return list(self.store.rows(split))

    def _cache(self, rows: list) -> CachedSplit:
        index = {k: i for i, k in enumerate(self.class_keys)}
        unknown = sorted({r.class_key for r in rows} - set(index))
        if unknown:
            raise ValueError(f"manifest has class keys {unknown} outside the model's class "
                             f"keys {list(self.class_keys)}")
        s = self.image_size
        images = torch.empty((len(rows), 1, s, s), dtype=torch.uint8)
        boxes = torch.empty((len(rows), 4), dtype=torch.int32)
        for i, row in enumerate(rows):
            x, box = letterboxed01(self.store.read_image(row), s)
            images[i] = x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
            boxes[i] = torch.tensor(box, dtype=torch.int32)
        labels = torch.tensor([index[r.class_key] for r in rows], dtype=torch.long)
        return CachedSplit(images=images, boxes=boxes, labels=labels,
                           class_keys=[r.class_key for r in rows], paths=[r.path for r in rows],
                           sources=[r.source for r in rows])

    def setup(self, stage: str | None = None) -> None:
        """Read the manifest and decode every image once (idempotent)."""
        if self.splits:
            return

        # Empty train/val -> ValueError naming the split. Empty classes are allowed here: they
        # get weight 0 and are reported (real data has classes with a handful of images).
        check_trainable(self.store, splits=("train", "val"),
                        allowed_empty_classes=self.class_keys)
        train_rows = self._rows("train")
        if self.include_feedback:
            train_rows += self._rows("feedback")
        self.splits["train"] = self._cache(train_rows)
        for split in EVAL_SPLITS[1:]:
            self.splits[split] = self._cache(self._rows(split))
        if len(set(self.splits["train"].class_keys)) < 2:
            raise ValueError("the train split has images of fewer than 2 classes; a classifier "
                             "needs at least 2 (add data or check the manifest)")
        if self._preprocess is None:
            mean, std = _intensity_stats(self.splits["train"], self.intensity)
            self._preprocess = PreprocessConfig(image_size=self.image_size, mean=mean,
                                                std=max(std, 1e-6), intensity=self.intensity)
        self.class_weights, self.empty_train_classes = inverse_frequency_weights(
            self.splits["train"].labels, self.class_keys,
            power=WEIGHTING_POWER[self.class_weighting],
        )
        if self.empty_train_classes:
            log.warning("classes without train images get loss weight 0: %s",
                        ", ".join(self.empty_train_classes))

    @property
    def preprocess(self) -> PreprocessConfig:
        if self._preprocess is None:
            raise RuntimeError("call setup() first: preprocessing stats come from train images")
        return self._preprocess

    def split_counts(self) -> dict[str, dict[str, int]]:
        return {name: {k: s.class_keys.count(k) for k in self.class_keys if k in s.class_keys}
                for name, s in self.splits.items()}

    # -- loaders ----------------------------------------------------------------------
    def _loader(self, split: str, *, train: bool) -> DataLoader:
        ds = _SplitDataset(self.splits[split], self.preprocess,
                           self.augment if train else None, self.seed)
        sampler = None
        if train and self.source_balance > 0:
            weights = source_balanced_weights(self.splits[split], power=self.source_balance)
            sampler = torch.utils.data.WeightedRandomSampler(
                weights, num_samples=len(weights), replacement=True,
                generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(ds, batch_size=self.batch_size, shuffle=train and sampler is None,
                          sampler=sampler, drop_last=False, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def eval_inputs(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole split as normalised model inputs ``n 1 S S`` (no augmentation) and labels."""
        s = self.splits[split]
        if len(s) == 0:
            return torch.empty((0, 1, self.image_size, self.image_size)), s.labels
        cfg = self.preprocess
        return torch.stack([finish_input(s.float01(i), s.box(i), cfg) for i in range(len(s))]), s.labels


def _intensity_stats(split: CachedSplit, intensity: str) -> tuple[float, float]:
    """Mean/std of the standardised letterboxed images in [0, 1] units (padding included, as
    the model sees it), accumulated in float64 image by image."""
    cfg = PreprocessConfig(image_size=int(split.images.shape[-1]), mean=0.0, std=1.0,
                           intensity=intensity)
    n, s, ss = 0, 0.0, 0.0
    for i in range(len(split)):
        x = standardise_intensity(split.float01(i), split.box(i), cfg).double()
        n += x.numel()
        s += float(x.sum())
        ss += float((x * x).sum())
    mean = s / n
    return mean, max((ss / n - mean * mean) ** 0.5, 1e-6)


def source_balanced_weights(split: CachedSplit, *, power: float = 1.0) -> torch.Tensor:
    """Per-image sampling weights that share each class's draws among its sources:
    ``(n_class / (sources_in_class * n_class_source)) ** power``. ``power=1``: every source
    of a class is drawn equally often; class totals are unchanged (class weighting stays in
    the loss). Why: in real-cxr one source dominates some classes (449 of 586 COVID films),
    and a model then learns that source's look as the disease."""
    cells: dict[tuple[str, str], int] = {}
    for key, src in zip(split.class_keys, split.sources, strict=True):
        cells[(key, src)] = cells.get((key, src), 0) + 1
    per_class: dict[str, int] = {}
    sources: dict[str, int] = {}
    for (key, _), n in cells.items():
        per_class[key] = per_class.get(key, 0) + n
        sources[key] = sources.get(key, 0) + 1
    w = [(per_class[k] / (sources[k] * cells[(k, s)])) ** power
         for k, s in zip(split.class_keys, split.sources, strict=True)]
    return torch.tensor(w, dtype=torch.double)


def inverse_frequency_weights(
    labels: torch.Tensor, class_keys: Sequence[str], *, power: float = 1.0
) -> tuple[torch.Tensor, list[str]]:
    """w_c = (N / (K_present * n_c)) ** power; classes without train images get 0 (and are
    returned). ``power=0.5`` (sqrt) tempers the weight of a class with a handful of images,
    which otherwise dominates the loss and gets memorised."""
    counts = torch.bincount(labels, minlength=len(class_keys)).double()
    present = counts > 0
    weights = torch.zeros(len(class_keys), dtype=torch.float64)
    weights[present] = (counts.sum() / (present.sum() * counts[present])) ** power
    empty = [k for k, c in zip(class_keys, counts.tolist(), strict=True) if c == 0]
    return weights.float(), empty
