"""Class-specific phantoms for demos and tests (DESIGN.md section 5): never clinical data.

Each phantom is built from a randomly placed, scaled, rotated and noised anatomy (thorax with
lungs, mediastinum and ribs; or a curved layered retina), plus one class-specific finding.
Findings are deliberately strong so a small model learns them in a few epochs, while the
random variation keeps it from memorising individual images. Rows are marked
``synthetic=1`` so no figure on them can pass for clinical accuracy.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mlcore.ml.classes import CLASS_KEYS, modality_of
from mlcore.ml.data.build import build_dataset
from mlcore.ml.data.imaging import encode_png
from mlcore.ml.data.importers import Candidate
from mlcore.ml.data.manifest import check_class_key
from mlcore.ml.data.report import SplitReport
from mlcore.ml.data.store import DatasetStore

GENERATOR_VERSION = "phantom-v1"
Grid = tuple[np.ndarray, np.ndarray]
Rng = np.random.Generator


def _pad(size: int) -> int:
    return max(2, round(size * 0.1))


def _grid(size: int) -> Grid:
    """``(yy, xx)``: [-1, 1] spans the ``size`` output pixels, plus a margin of ``_pad(size)``
    pixels each side so the final rotation never pulls empty corners into the picture."""
    pad = _pad(size)
    axis = (-1.0 + 2.0 / (size - 1) * (np.arange(size + 2 * pad) - pad)).astype(np.float32)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    return yy, xx


def _ellipse(g: Grid, cy: float, cx: float, ry: float, rx: float, edge: float = 0.04):
    yy, xx = g
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return 1.0 / (1.0 + np.exp(np.clip((r - 1.0) / edge, -30, 30)))


def _gauss(g: Grid, cy: float, cx: float, sy: float, sx: float) -> np.ndarray:
    yy, xx = g
    return np.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))


def _segment(g: Grid, p0, p1, width: float) -> np.ndarray:
    """Soft line segment from ``p0`` to ``p1`` (``(y, x)`` pairs)."""
    yy, xx = g
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / (dy * dy + dx * dx + 1e-9), 0.0, 1.0)
    d2 = (yy - (y0 + t * dy)) ** 2 + (xx - (x0 + t * dx)) ** 2
    return np.exp(-0.5 * d2 / width**2)


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px <= 0:
        return img
    radius = max(1, int(3 * sigma_px))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_px) ** 2)
    k /= k.sum()
    for axis in (0, 1):
        pad = [(radius, radius) if a == axis else (0, 0) for a in (0, 1)]
        p = np.pad(img, pad, mode="reflect")
        n = img.shape[axis]
        img = sum(w * (p[i : i + n] if axis == 0 else p[:, i : i + n]) for i, w in enumerate(k))
    return img


def _finish(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    size: int,
    angle: float,
    background: float,
    speckle: bool,
) -> np.ndarray:
    pad = _pad(size)
    img = np.asarray(
        Image.fromarray(img.astype(np.float32)).rotate(
            angle, resample=Image.Resampling.BILINEAR, fillcolor=background
        ),
        dtype=np.float32,
    )[pad : pad + size, pad : pad + size]
    if speckle:  # OCT: multiplicative speckle, slightly correlated
        img = img * _blur(rng.gamma(10.0, 0.1, img.shape).astype(np.float32), 0.6)
    texture = _blur(rng.normal(0.0, 1.0, img.shape).astype(np.float32), size / 40)
    img = img + 0.03 * texture / (texture.std() + 1e-6)
    img = img * rng.uniform(0.85, 1.1) + rng.uniform(-0.05, 0.05)
    img = img + rng.normal(0.0, 0.02, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --- chest X-ray ------------------------------------------------------------------------
def _cxr(class_key: str, size: int, anat: Rng, find: Rng, noise: Rng) -> np.ndarray:
    g = _grid(size)
    yy, xx = g
    cx, cy, sc = anat.uniform(-0.06, 0.06), anat.uniform(-0.05, 0.05), anat.uniform(0.9, 1.05)
    img = np.full(yy.shape, 0.06, np.float32)
    img += 0.42 * _ellipse(g, cy + 0.08, cx, 0.92 * sc, 0.86 * sc, 0.05)  # thorax soft tissue
    lung_c = [(cy - 0.05, cx + side * 0.36 * sc) for side in (-1, 1)]
    lungs = np.maximum(*[_ellipse(g, y, x, 0.62 * sc, 0.27 * sc, 0.06) for y, x in lung_c])
    img -= 0.30 * lungs
    img += 0.30 * _ellipse(g, cy + 0.05, cx, 0.62 * sc, 0.13 * sc, 0.08)  # mediastinum
    img += 0.22 * _ellipse(g, cy + 0.32, cx + 0.07 * sc, 0.22 * sc, 0.24 * sc, 0.1)  # heart
    img += 0.10 * np.exp(-0.5 * ((xx - cx) / (0.05 * sc)) ** 2)  # spine
    rib_w = max(0.012, 1.4 / size)
    for k in range(8):  # ribs: arcs across each lung field
        y0 = cy - 0.55 * sc + k * 0.14 * sc
        for side in (-1, 1):
            lateral = np.clip((xx - cx) * side, 0.0, None)  # posterior ribs fall laterally
            arc = yy - (y0 + 0.2 * lateral + 0.3 * lateral**2)
            img += 0.10 * np.exp(-0.5 * (arc / rib_w) ** 2) * lungs * ((xx - cx) * side > 0)
    for side in (-1, 1):  # clavicles
        img += 0.14 * _segment(
            g, (cy - 0.72 * sc, cx + side * 0.08), (cy - 0.62 * sc, cx + side * 0.6 * sc), rib_w
        )

    finding = np.zeros_like(img)
    if class_key == "lung-covid":  # bilateral, peripheral, lower-zone ground glass
        for side in (-1, 1):
            for _ in range(find.integers(2, 5)):
                by = cy + find.uniform(-0.05, 0.45) * sc
                bx = cx + side * find.uniform(0.44, 0.56) * sc
                s = find.uniform(0.08, 0.13) * sc
                finding += find.uniform(0.18, 0.28) * _gauss(g, by, bx, s * 1.3, s)
    elif class_key == "lung-opacity":  # one dense lobar consolidation, sharp upper edge
        side = find.choice((-1, 1))
        ly, lx = lung_c[0 if side < 0 else 1]
        lower = find.random() < 0.6
        oy = ly + (0.3 if lower else -0.3) * sc
        finding += find.uniform(0.4, 0.5) * _ellipse(g, oy, lx, 0.3 * sc, 0.26 * sc, 0.05)
    elif class_key == "lung-tuberculosis":  # upper-lobe cavities with nodules around
        for side in find.permutation((-1, 1))[: find.integers(1, 3)]:
            ty = cy - find.uniform(0.35, 0.5) * sc
            tx = cx + side * find.uniform(0.3, 0.42) * sc
            rad = find.uniform(0.06, 0.09) * sc
            r = np.sqrt((yy - ty) ** 2 + (xx - tx) ** 2)
            finding += 0.45 * np.exp(-0.5 * ((r - rad) / max(0.018, 1.5 / size)) ** 2)
            finding -= 0.10 * (r < rad * 0.8)
            for _ in range(find.integers(3, 7)):
                ny, nx = ty + find.uniform(-0.2, 0.2), tx + find.uniform(-0.15, 0.15)
                s = max(0.02, 1.5 / size)
                finding += 0.35 * _gauss(g, ny, nx, s, s)
    elif class_key == "lung-viral-pneumonia":  # perihilar haze and radiating streaks
        width = max(0.012, 1.3 / size)
        for side in (-1, 1):
            hy, hx = cy - 0.02, cx + side * 0.16 * sc
            finding += 0.10 * _gauss(g, hy, hx + side * 0.1, 0.22 * sc, 0.14 * sc)
            for _ in range(find.integers(10, 16)):
                ang = find.uniform(-1.1, 1.1)
                length = find.uniform(0.22, 0.42) * sc
                end = (hy + length * np.sin(ang), hx + side * length * np.cos(ang))
                finding += find.uniform(0.15, 0.22) * _segment(g, (hy, hx), end, width)
    img += finding * np.clip(lungs + 0.2, 0.0, 1.0)
    angle = anat.uniform(-5, 5)
    return _finish(img, noise, size=size, angle=angle, background=0.06, speckle=False)


# --- retinal OCT ------------------------------------------------------------------------
# depth within the retina (0 = inner surface, 1 = RPE) -> reflectivity of the layer there
_LAYER_T = np.array([0.0, 0.06, 0.1, 0.33, 0.37, 0.45, 0.5, 0.78, 0.84, 0.88, 0.92, 1.0, 1.02])
_LAYER_V = np.array([0.75, 0.7, 0.45, 0.42, 0.22, 0.22, 0.55, 0.18, 0.2, 0.75, 0.5, 0.95, 0.6])


def _oct(class_key: str, size: int, anat: Rng, find: Rng, noise: Rng) -> np.ndarray:
    g = _grid(size)
    yy, xx = g
    x = xx[0]
    y0, curv, tilt = anat.uniform(-0.35, -0.15), anat.uniform(0.0, 0.2), anat.uniform(-0.08, 0.08)
    xf, thick = anat.uniform(-0.15, 0.15), anat.uniform(0.4, 0.5)
    rpe = y0 + thick + curv * x**2 + tilt * x
    bruch = rpe.copy()
    pit = 0.12 * np.exp(-0.5 * ((x - xf) / 0.09) ** 2)
    top = y0 + curv * x**2 + tilt * x + pit

    if class_key == "lung-oct-cnv":  # subretinal fibrovascular dome lifting the RPE
        xc, w, h = xf + find.uniform(-0.2, 0.2), find.uniform(0.12, 0.2), find.uniform(0.18, 0.26)
        dome = h * np.exp(-0.5 * ((x - xc) / w) ** 2)
        rpe, top = rpe - dome, top - 0.5 * dome - pit * 0.8 * np.exp(-0.5 * ((x - xc) / w) ** 2)
    elif class_key == "lung-oct-dme":  # thickened, flattened fovea
        swell = find.uniform(0.1, 0.16) * np.exp(-0.5 * ((x - xf) / 0.35) ** 2)
        top = top - swell - 0.8 * pit
    elif class_key == "lung-oct-drusen":  # small RPE bumps
        for _ in range(find.integers(5, 9)):
            xc, w, h = find.uniform(-0.7, 0.7), find.uniform(0.04, 0.07), find.uniform(0.07, 0.11)
            rpe = rpe - h * np.exp(-0.5 * ((x - xc) / w) ** 2)

    t = (yy - top[None, :]) / (rpe - top)[None, :]
    img = np.interp(t, _LAYER_T, _LAYER_V).astype(np.float32)
    img[t < 0] = 0.03  # vitreous
    below = yy - rpe[None, :]
    choroid = 0.55 * np.exp(-np.clip(below, 0, None) / 0.15)
    img = np.where(below > 0.02, choroid, img)
    lifted = (yy > rpe[None, :] + 0.02) & (yy < bruch[None, :])  # under a lifted RPE
    # CNV: bright fibrovascular tissue; drusen: moderately reflective deposits
    img[lifted] = 0.9 if class_key == "lung-oct-cnv" else 0.6

    if class_key == "lung-oct-dme":  # dark intraretinal cysts around the fovea
        for _ in range(find.integers(4, 9)):
            cxs = xf + find.uniform(-0.35, 0.35)
            idx = int(np.clip((cxs + 1) / 2 * (size - 1) + _pad(size), 0, len(x) - 1))
            cys = top[idx] + find.uniform(0.35, 0.7) * (rpe[idx] - top[idx])
            cyst = _ellipse(g, cys, cxs, find.uniform(0.04, 0.07), find.uniform(0.05, 0.11), 0.1)
            img = img * (1 - 0.95 * cyst)
    angle = anat.uniform(-4, 4)
    return _finish(img, noise, size=size, angle=angle, background=0.03, speckle=True)


def generate_phantom(class_key: str, *, size: int = 128, rng: np.random.Generator) -> np.ndarray:
    """One ``size`` x ``size`` uint8 phantom of ``class_key`` (CXR or OCT by modality).

    Anatomy, finding and noise draw from three streams spawned from ``rng``, so two generators
    in the same state give the same anatomy and noise for every class of a modality: the
    difference to the ``*-normal`` phantom is exactly the finding (a ground-truth lesion map
    for tests of explanations).
    """
    check_class_key(class_key)
    if size < 16:
        raise ValueError(f"size must be at least 16, got {size}")
    anat, find, noise = (np.random.default_rng(int(s)) for s in rng.integers(0, 2**63, size=3))
    if modality_of(class_key) == "cxr":
        return _cxr(class_key, size, anat, find, noise)
    return _oct(class_key, size, anat, find, noise)


def make_synthetic_dataset(
    dest: DatasetStore,
    *,
    per_class: int = 40,
    size: int = 128,
    seed: int = 0,
    classes: Sequence[str] = CLASS_KEYS,
    fractions: Mapping[str, float] | None = None,
) -> SplitReport:
    """Write ``per_class`` phantoms per class into the empty store ``dest``, split by patient.

    Patients (``synth-<hex>``) get one to three images of one class, so the patient-level
    split is exercised as on real data. Only exact duplicates are checked: phantoms share
    anatomy by design, and the near-duplicate threshold is tuned for real films.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    for key in classes:
        check_class_key(key)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="radviewer-synth-") as tmp:
        cands: list[Candidate] = []
        for key in classes:
            (Path(tmp) / key).mkdir()
            n = 0
            while n < per_class:
                patient = f"synth-{int(rng.integers(0, 2**32)):08x}"
                for _ in range(min(int(rng.integers(1, 4)), per_class - n)):
                    path = Path(tmp) / key / f"{key}-{n:04d}.png"
                    path.write_bytes(encode_png(generate_phantom(key, size=size, rng=rng)))
                    cands.append(
                        Candidate(
                            path=path,
                            class_key=key,
                            patient_key=patient,
                            source="synthetic",
                            synthetic=True,
                            original_path=f"synthetic/{key}/{path.name}",
                            extra={"generator": GENERATOR_VERSION, "seed": seed},
                        )
                    )
                    n += 1
        return build_dataset(
            cands,
            dest,
            seed=seed,
            fractions=fractions,
            near_dup_hamming=None,
            max_side=None,
            min_side=1,
        )
