"""The atom finder's training task for the shared training loop (``napari-atomseg train``).

:class:`AtomsTask` is a ``TrainingTask`` of :mod:`napari_atomseg.backend`. Registered in a
training config as::

    task: napari_atomseg.atoms.training:AtomsTask
    task_options: {mix: default, working_pixel_size_nm: 0.025, patch_px: 256}

Each example follows the path a real image takes at inference:

1. a random recipe from the simulation mixture (``mix``: a shipped mix name or a YAML
   path), simulated at *its own* pixel size over a field just large enough for one patch;
2. resampled to the working pixel size with the backend's anti-aliased resampling;
3. cropped to ``patch_px`` and normalised with the card's normalisation;
4. the target rendered on the working grid from the exact column table: one Gaussian per
   visible column (AtomID style: sigma = ``sigma_fraction`` x the column's nearest-neighbour
   spacing, capped at ``sigma_max_nm``, at least ``sigma_min_px``), maximum over columns.

Pixels the network cannot be fairly asked about are *ignored* (target -1): around columns
the simulator flags as invisible (below its matched-filter SNR) and around columns closer
than the resolvable separation (at the recipe's or the working sampling). With
``spacing_head=True`` a second channel regresses the local column spacing
(``min(nn_spacing, spacing_scale_nm) / spacing_scale_nm`` through a sigmoid) on the column
cores, ignored elsewhere; :mod:`.candidates` uses it for the suppression radius.

Loss: binary cross-entropy on the soft heatmap with column pixels up-weighted
(``1 + positive_weight * target``), ignoring pixels with negative targets; L1 on the
spacing channel. Validation reports detection F1 / precision / recall and the RMS error
(working pixels) of heatmap peaks against the target's peaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from .._validate import check_range
from ..errors import InputError

#: Target value of pixels that do not count in the loss or the metrics.
IGNORE = -1.0


def render_heatmap(
    shape: tuple[int, int],
    positions_px: np.ndarray,
    sigma_px: np.ndarray,
    value: np.ndarray | None = None,
    reach_sigmas: float = 4.0,
) -> np.ndarray:
    """Max-composited isotropic Gaussians (peak ``value``, default 1) on a float32 grid.

    Columns outside the grid still paint their tails inside it. Rendering is local (a
    window of ``reach_sigmas`` around each column), so cost grows with the number of
    columns, not the image area times it.
    """
    h, w = shape
    out = np.zeros(shape, dtype=np.float32)
    pos = np.asarray(positions_px, dtype=np.float64).reshape(-1, 2)
    sig = np.broadcast_to(np.asarray(sigma_px, dtype=np.float64), (len(pos),))
    val = np.ones(len(pos)) if value is None else np.broadcast_to(value, (len(pos),))
    for (y, x), s, v in zip(pos, sig, val):
        r = reach_sigmas * s
        r0, r1 = max(0, math.floor(y - r)), min(h, math.ceil(y + r) + 1)
        c0, c1 = max(0, math.floor(x - r)), min(w, math.ceil(x + r) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        gy = np.exp(-((np.arange(r0, r1) - y) ** 2) / (2 * s * s))
        gx = np.exp(-((np.arange(c0, c1) - x) ** 2) / (2 * s * s))
        block = out[r0:r1, c0:c1]
        np.maximum(block, (v * np.outer(gy, gx)).astype(np.float32), out=block)
    return out


def paint_discs(mask: np.ndarray, positions_px: np.ndarray, radius_px: np.ndarray) -> None:
    """Set ``mask`` True inside a disc around each position (in place)."""
    h, w = mask.shape
    pos = np.asarray(positions_px, dtype=np.float64).reshape(-1, 2)
    rad = np.broadcast_to(np.asarray(radius_px, dtype=np.float64), (len(pos),))
    for (y, x), r in zip(pos, rad):
        r0, r1 = max(0, math.floor(y - r)), min(h, math.ceil(y + r) + 1)
        c0, c1 = max(0, math.floor(x - r)), min(w, math.ceil(x + r) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        yy = (np.arange(r0, r1) - y)[:, None]
        xx = (np.arange(c0, c1) - x)[None, :]
        mask[r0:r1, c0:c1] |= yy * yy + xx * xx <= r * r


def to_working_px(
    coords_px: np.ndarray, from_pixel_size_nm: float, to_pixel_size_nm: float
) -> np.ndarray:
    """Pixel coordinates on a grid resampled from one pixel size to another.

    The backend's resampling keeps the physical frame in which pixel ``i`` is centred at
    ``(i + 0.5) * pixel_size``; the same point is at ``(u + 0.5) * p_from / p_to - 0.5``
    on the new grid.
    """
    return (np.asarray(coords_px, dtype=np.float64) + 0.5) * (
        from_pixel_size_nm / to_pixel_size_nm
    ) - 0.5


def columns_are_dark(result: Any, window_nm: float = 0.6) -> bool:
    """Whether a simulation's visible columns are darker than their surroundings.

    Judged on the noise-free image: the value at each visible column against its local
    mean over ``window_nm``; the majority decides (a thickness gradient whose dark half
    holds most columns must not decide it, as the whole image's median would).
    """
    from ..simulation.groundtruth import local_mean

    cols = result.columns
    if len(cols) == 0:
        return False
    yx = cols[["y_px", "x_px"]].to_numpy(float)[cols["visible"].to_numpy(bool)]
    h, w = result.image_clean.shape
    inside = (yx[:, 0] >= 0) & (yx[:, 1] >= 0) & (yx[:, 0] < h - 0.5) & (yx[:, 1] < w - 0.5)
    if not inside.any():
        return False
    idx = np.rint(yx[inside]).astype(int)
    clean = np.asarray(result.image_clean, np.float64)
    window = max(5, round(window_nm / float(result.pixel_size_nm)))
    signed = (clean - local_mean(clean, window))[idx[:, 0], idx[:, 1]]
    return bool(np.median(signed) < 0)


@dataclass
class AtomsTask:
    """Synthetic training pairs, loss and metrics for the atom-column heatmap U-Net.

    Parameters (the config's ``task_options``)
    ------------------------------------------
    mix
        Simulation mixture: a shipped mix name (``default``, ``atoms``, ``particles``) or a
        YAML path.
    working_pixel_size_nm
        The model's working sampling (nm/px); images are resampled to it.
    patch_px
        Side of the training patches at the working sampling.
    sigma_fraction, sigma_max_nm, sigma_min_px
        Heatmap Gaussian width: ``sigma_fraction`` x nearest-neighbour spacing, at most
        ``sigma_max_nm``, at least ``sigma_min_px`` working pixels.
    min_separation_nm
        Columns closer than ``max(min_separation_nm, 2.5 px of the recipe or the working
        grid)`` to a visible neighbour are not resolvable: ignored, not targets.
    positive_weight
        Extra loss weight of column pixels (class balance: columns cover a few % of pixels).
    spacing_head, spacing_scale_nm
        Add a spacing-regression channel (spacing capped at ``spacing_scale_nm``).
    normalisation
        Normalisation name (must equal the card's; see ``card_defaults``).
    background_sigma_nm
        If set, the slowly varying background (a Gaussian of this width, nm) is subtracted
        from the resampled image before it is cropped and normalised; the card's
        ``input.background_sigma_nm`` makes inference do the same.
    columns_bright
        Show the network every image with its columns bright: phase-contrast images whose
        columns are dark are inverted (judged on the noise-free image), as inference
        inverts an image whose columns are dark. A network that never sees dark columns
        cannot learn that a bright blob may be the hollow between columns.
    """

    mix: str = "default"
    working_pixel_size_nm: float = 0.025
    patch_px: int = 256
    sigma_fraction: float = 0.15
    sigma_max_nm: float = 0.05
    sigma_min_px: float = 1.0
    min_separation_nm: float = 0.08
    positive_weight: float = 4.0
    spacing_head: bool = False
    spacing_scale_nm: float = 1.0
    normalisation: str = "robust_zscore"
    background_sigma_nm: float | None = None
    max_upsample: float = 4.0
    columns_bright: bool = True
    _mix_cache: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_range(self.working_pixel_size_nm, 1e-3, 1.0, "working_pixel_size_nm")
        if not 32 <= int(self.patch_px) <= 2048:
            raise InputError(f"patch_px: {self.patch_px} must be within 32-2048")
        check_range(self.sigma_fraction, 0.01, 1.0, "sigma_fraction")
        check_range(self.sigma_max_nm, 1e-3, 1.0, "sigma_max_nm")
        check_range(self.sigma_min_px, 0.3, 10.0, "sigma_min_px")
        check_range(self.positive_weight, 0.0, 1e3, "positive_weight")
        check_range(self.spacing_scale_nm, 0.05, 10.0, "spacing_scale_nm")
        if self.background_sigma_nm is not None:
            check_range(self.background_sigma_nm, 0.05, 100.0, "background_sigma_nm")

    # ----------------------------------------------------------------- contract
    @property
    def channels_out(self) -> int:
        """Output channels: 1 (heatmap), 2 with the spacing head."""
        return 2 if self.spacing_head else 1

    def card_defaults(self) -> dict[str, Any]:
        """The card fields this task implies (the config's ``card`` section may override)."""
        outputs = [{"name": "heatmap", "activation": "sigmoid"}]
        if self.spacing_head:
            outputs.append({"name": "spacing", "activation": "sigmoid"})
        work = float(self.working_pixel_size_nm)
        background = (
            {}
            if self.background_sigma_nm is None
            else {"background_sigma_nm": float(self.background_sigma_nm)}
        )
        return {
            "task": "atoms",
            "outputs": outputs,
            "input": {
                "normalisation": self.normalisation,
                **background,
                "working_pixel_size_nm": work,
                # Finer images are down-sampled (anti-aliased) without harm; coarser ones
                # only up to the backend's up-sampling cap.
                "pixel_size_range_nm": [round(work / 20, 6), round(work * self.max_upsample, 6)],
            },
            "notes": (
                f"heatmap: Gaussian per visible column, sigma = {self.sigma_fraction} x NN "
                f"spacing (<= {self.sigma_max_nm} nm, >= {self.sigma_min_px} px)"
                + (
                    f"; spacing channel = min(NN spacing, {self.spacing_scale_nm} nm) / "
                    f"{self.spacing_scale_nm} nm"
                    if self.spacing_head
                    else ""
                )
            ),
        }

    def make_example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One (image (1, P, P), target (C, P, P)) pair at the working sampling."""
        from ..simulation import random_parameters, simulate

        params = random_parameters(rng, self._mix())
        params = self._fit_recipe(params)
        result = simulate(params)
        image = result.image
        if self.columns_bright and params.mode != "haadf" and columns_are_dark(result):
            image = -np.asarray(image, dtype=np.float32)
        return self.example_from_simulation(image, params.pixel_size_nm, result.columns, rng)

    # ----------------------------------------------------------------- pieces
    def _mix(self) -> Any:
        if self._mix_cache is None:
            from ..simulation import load_mix

            self._mix_cache = load_mix(self.mix)
        return self._mix_cache

    def _fit_recipe(self, params: Any) -> Any:
        """Clamp the recipe's pixel size to what the model accepts, size the field to one patch."""
        work = float(self.working_pixel_size_nm)
        px = float(params.pixel_size_nm)
        coarsest = work * self.max_upsample * 0.999
        if px > coarsest:
            px = coarsest
        # A few working pixels of margin so the resampled field covers a whole patch.
        n = math.ceil((self.patch_px + 8) * work / px)
        return params.replace(pixel_size_nm=px, shape_px=(n, n))

    def example_from_simulation(
        self,
        image: np.ndarray,
        pixel_size_nm: float,
        columns: Any,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Resample, crop, normalise ``image`` and render its target from ``columns``.

        ``columns`` is the simulator's column table (``y_px``, ``x_px`` on ``image``'s grid,
        ``visible``). Public so that real images with known columns can be turned into
        pairs the same way.
        """
        # Direct imports: the package attribute "normalise" is shadowed by the submodule of
        # the same name once that is imported.
        from ..backend.normalisation import normalise
        from ..backend.sampling import resample

        work = float(self.working_pixel_size_nm)
        img = resample(image, pixel_size_nm, work, max_upsample=self.max_upsample + 1e-6)
        img = self.flatten(img)
        p = int(self.patch_px)
        h, w = img.shape
        if h < p or w < p:
            img = np.pad(img, ((0, max(0, p - h)), (0, max(0, p - w))), mode="reflect")
            h, w = img.shape
        r0 = int(rng.integers(0, h - p + 1))
        c0 = int(rng.integers(0, w - p + 1))
        img = img[r0 : r0 + p, c0 : c0 + p]
        x = normalise(img, self.normalisation).astype(np.float32)[None]
        target = self.render_target(columns, pixel_size_nm, (r0, c0), (p, p))
        return np.ascontiguousarray(x), np.ascontiguousarray(target)

    def scale_reference_task(self) -> AtomsTask:
        """This task without the background subtraction: its examples are what the pixel-size
        estimator sees (it reads the image before any preparation), so the card's
        ``input.scale_reference`` is measured on them."""
        if self.background_sigma_nm is None:
            return self
        return replace(self, background_sigma_nm=None)

    def flatten(self, image_at_working: np.ndarray) -> np.ndarray:
        """The background subtraction of ``background_sigma_nm`` (if set) on a working-grid image."""
        if self.background_sigma_nm is None:
            return image_at_working
        from ..backend.normalisation import subtract_background

        return subtract_background(
            image_at_working, float(self.background_sigma_nm) / float(self.working_pixel_size_nm)
        )

    def render_target(
        self,
        columns: Any,
        pixel_size_nm: float,
        origin_px: tuple[int, int],
        shape: tuple[int, int],
    ) -> np.ndarray:
        """Target (C, H, W) on the working grid window starting at ``origin_px``."""
        work = float(self.working_pixel_size_nm)
        n = len(columns)
        yx = (
            np.stack([columns["y_px"].to_numpy(float), columns["x_px"].to_numpy(float)], 1)
            if n
            else np.zeros((0, 2))
        )
        visible = columns["visible"].to_numpy(bool) if n else np.zeros(0, bool)
        pos = to_working_px(yx, pixel_size_nm, work) - np.asarray(origin_px, float)
        # Nearest-neighbour spacing among visible columns (over the whole simulated field,
        # so columns at the patch edge see their real neighbours).
        nn_nm = np.full(n, np.inf)
        vis_idx = np.flatnonzero(visible)
        if len(vis_idx) >= 2:
            d, _ = cKDTree(yx[vis_idx]).query(yx[vis_idx], k=2)
            nn_nm[vis_idx] = d[:, 1] * pixel_size_nm
        resolvable_nm = max(self.min_separation_nm, 2.5 * pixel_size_nm, 2.5 * work)
        good = visible & (nn_nm >= resolvable_nm)
        bad = ~good
        # Only columns whose Gaussians can reach the window matter.
        reach = 4.0 * self.sigma_max_nm / work + 4.0
        near = (
            (pos[:, 0] > -reach)
            & (pos[:, 0] < shape[0] + reach)
            & (pos[:, 1] > -reach)
            & (pos[:, 1] < shape[1] + reach)
        )
        sigma_nm = np.minimum(self.sigma_fraction * nn_nm, self.sigma_max_nm)
        sigma_px = np.maximum(sigma_nm / work, self.sigma_min_px)
        heat = render_heatmap(shape, pos[good & near], sigma_px[good & near])
        ignore = np.zeros(shape, dtype=bool)
        # Invisible or unresolvable columns: neither targets nor background.
        ignore_r = np.maximum(2.0 * np.minimum(sigma_px, self.sigma_max_nm / work), 1.5)
        paint_discs(ignore, pos[bad & near], ignore_r[bad & near])
        ignore &= heat < 0.5
        heat[ignore] = IGNORE
        if not self.spacing_head:
            return heat[None]
        scaled = np.minimum(nn_nm, self.spacing_scale_nm) / self.spacing_scale_nm
        spacing = render_heatmap(
            shape, pos[good & near], sigma_px[good & near], scaled[good & near]
        )
        core = heat >= 0.3
        # Where two cores overlap the max-composited value belongs to the nearer column:
        # re-rendering with the value as amplitude gives value x exp(...), so divide.
        with np.errstate(invalid="ignore", divide="ignore"):
            sp = np.where(core, spacing / np.maximum(heat, 1e-6), IGNORE)
        sp = np.where(core, np.clip(sp, 0.0, 1.0), IGNORE).astype(np.float32)
        return np.stack([heat, sp])

    # ----------------------------------------------------------------- loss / metrics
    def loss(self, logits: Any, target: Any) -> Any:
        """Weighted BCE on the heatmap (+ L1 on the spacing channel), ignoring negative targets."""
        import torch
        from torch.nn import functional as F

        heat_t = target[:, 0]
        valid = (heat_t >= 0).float()
        t = heat_t.clamp(min=0.0, max=1.0)
        bce = F.binary_cross_entropy_with_logits(logits[:, 0], t, reduction="none")
        weight = valid * (1.0 + self.positive_weight * t)
        loss = (bce * weight).sum() / valid.sum().clamp(min=1.0)
        if self.spacing_head:
            sp_t = target[:, 1]
            sp_valid = (sp_t >= 0).float()
            l1 = (torch.sigmoid(logits[:, 1]) - sp_t.clamp(min=0.0)).abs()
            loss = loss + 10.0 * (l1 * sp_valid).sum() / sp_valid.sum().clamp(min=1.0)
        return loss

    def distill_loss(self, logits: Any, teacher_logits: Any, target: Any) -> Any:
        """BCE of the student's heatmap against the teacher's probabilities (every pixel the
        target does not mark as ignored), + L1 between the spacing channels."""
        import torch
        from torch.nn import functional as F

        valid = (target[:, 0] >= 0).float()
        soft = torch.sigmoid(teacher_logits[:, 0])
        bce = F.binary_cross_entropy_with_logits(logits[:, 0], soft, reduction="none")
        loss = (bce * valid).sum() / valid.sum().clamp(min=1.0)
        if self.spacing_head:
            l1 = (torch.sigmoid(logits[:, 1]) - torch.sigmoid(teacher_logits[:, 1])).abs()
            loss = loss + 10.0 * (l1 * valid).sum() / valid.sum().clamp(min=1.0)
        return loss

    def validation_metrics(self, logits: Any, target: Any) -> dict[str, float]:
        """Detection of heatmap peaks vs the target's peaks (pooled over the batch)."""
        import torch

        from .metrics import point_metrics
        from .peaks import find_peaks

        prob = torch.sigmoid(logits[:, 0]).detach().cpu().numpy()
        tgt = target[:, 0].detach().cpu().numpy()
        tp = fp = fn = 0
        sq, n_sq = 0.0, 0
        for pr, tg in zip(prob, tgt):
            true, _ = find_peaks(np.clip(tg, 0, None), threshold=0.5, min_separation_px=1.5)
            pred, _ = find_peaks(pr, threshold=0.5, min_separation_px=2.0)
            if len(pred):
                rr = np.clip(np.rint(pred).astype(int), 0, np.array(pr.shape) - 1)
                pred = pred[tg[rr[:, 0], rr[:, 1]] >= 0]  # peaks in ignored areas do not count
            m = point_metrics(pred, true, radius_px=max(1.5, 0.04 / self.working_pixel_size_nm))
            tp += m.true_positives
            fp += m.false_positives
            fn += m.false_negatives
            if m.true_positives:
                sq += m.rms_error_px**2 * m.true_positives
                n_sq += m.true_positives
        denom = 2 * tp + fp + fn
        out = {
            "f1": 2 * tp / denom if denom else 1.0,
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0,
        }
        # The loop averages metrics over batches: a NaN would poison the mean, so a batch
        # without any matched column simply does not report an error.
        if n_sq:
            out["rms_px"] = math.sqrt(sq / n_sq)
        if self.spacing_head:
            sp_t = target[:, 1]
            valid = sp_t >= 0
            if bool(valid.any()):
                err = (torch.sigmoid(logits[:, 1]) - sp_t).abs()[valid]
                out["spacing_mae_nm"] = float(err.mean()) * self.spacing_scale_nm
        return out
