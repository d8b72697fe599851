"""Mask metrics: pixel accuracy, balanced accuracy, and per class precision, recall,
Jaccard (IoU) and F1 (Dice), for one image or aggregated over a data set.

Everything is computed from a confusion matrix (rows: true class, columns: predicted
class), so a data set is aggregated exactly by adding matrices ("pooled" or micro
average -- what Sadre et al. 2021 report: they score the raveled pixels of all test
images at once). :func:`summarise` also gives the mean and standard deviation over images.

Undefined ratios (0 / 0, e.g. the Jaccard of a class absent from both truth and
prediction) are ``nan``, never silently 0 or 1; means skip them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError

#: The metrics reported for one class, in the order of the tables.
CLASS_METRICS = ("precision", "recall", "jaccard", "f1")


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` int64 counts: ``[i, j]`` = pixels of class i predicted j.

    Boolean masks count as classes 0/1. Raises :class:`InputError` on shape mismatch or
    labels outside ``0 .. n_classes - 1``.
    """
    t = np.asarray(truth)
    p = np.asarray(predicted)
    if t.shape != p.shape:
        raise InputError(f"truth {t.shape} and prediction {p.shape} must have the same shape")
    if n_classes < 2:
        raise InputError(f"n_classes must be >= 2, got {n_classes}")
    t = t.astype(np.int64, copy=False).ravel()
    p = p.astype(np.int64, copy=False).ravel()
    for name, arr in (("truth", t), ("prediction", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise InputError(
                f"{name}: labels must lie in 0..{n_classes - 1}, found {arr.min()}..{arr.max()}"
            )
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


@dataclass(frozen=True)
class MaskScores:
    """Scores of one image (or of a pooled data set) from its confusion matrix.

    Attributes
    ----------
    confusion
        ``(C, C)`` counts, rows true class, columns predicted class.
    class_names
        Names of the C classes.
    """

    confusion: np.ndarray
    class_names: tuple[str, ...]

    @classmethod
    def from_masks(
        cls, truth: np.ndarray, predicted: np.ndarray, class_names: Sequence[str] = ("0", "1")
    ) -> MaskScores:
        """Score a prediction against the truth (label arrays or boolean masks)."""
        names = tuple(str(c) for c in class_names)
        return cls(confusion_matrix(truth, predicted, len(names)), names)

    @property
    def n_pixels(self) -> int:
        """Pixels scored (the confusion matrix's total)."""
        return int(self.confusion.sum())

    @property
    def pixel_accuracy(self) -> float:
        """Fraction of pixels labelled correctly."""
        return float(_ratio(np.trace(self.confusion), self.confusion.sum()))

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall over the classes present in the truth (sklearn's definition)."""
        recall = self.per_class["recall"].to_numpy()
        present = self.confusion.sum(axis=1) > 0
        return float(np.mean(recall[present])) if present.any() else float("nan")

    @property
    def per_class(self) -> pd.DataFrame:
        """One row per class: precision, recall, jaccard, f1, true_px, predicted_px."""
        cm = self.confusion.astype(np.float64)
        tp = np.diag(cm)
        true_px = cm.sum(axis=1)
        pred_px = cm.sum(axis=0)
        fp = pred_px - tp
        fn = true_px - tp
        return pd.DataFrame(
            {
                "precision": _ratio(tp, pred_px),
                "recall": _ratio(tp, true_px),
                "jaccard": _ratio(tp, tp + fp + fn),
                "f1": _ratio(2 * tp, 2 * tp + fp + fn),
                "true_px": true_px.astype(np.int64),
                "predicted_px": pred_px.astype(np.int64),
            },
            index=pd.Index(self.class_names, name="class"),
        )

    def summary(self, positive: str | int = 1) -> dict[str, float]:
        """Flat dict: pixel_accuracy, balanced_accuracy and the positive class's metrics.

        ``positive`` is a class name or index (default 1: e.g. contamination). This is
        the row format of the benchmark tables.
        """
        idx = self._index(positive)
        row = self.per_class.iloc[idx]
        out = {
            "pixel_accuracy": self.pixel_accuracy,
            "balanced_accuracy": self.balanced_accuracy,
        }
        out.update({m: float(row[m]) for m in CLASS_METRICS})
        return out

    def _index(self, cls: str | int) -> int:
        if isinstance(cls, str):
            if cls not in self.class_names:
                raise InputError(f"unknown class {cls!r}; classes are {list(self.class_names)}")
            return self.class_names.index(cls)
        if not 0 <= int(cls) < len(self.class_names):
            raise InputError(f"class index {cls} outside 0..{len(self.class_names) - 1}")
        return int(cls)

    def __add__(self, other: MaskScores) -> MaskScores:
        if self.class_names != other.class_names:
            raise InputError(
                f"cannot pool scores of classes {self.class_names} and {other.class_names}"
            )
        return MaskScores(self.confusion + other.confusion, self.class_names)


def pooled(scores: Iterable[MaskScores]) -> MaskScores:
    """Aggregate images by adding their confusion matrices (micro average).

    Parameters
    ----------
    scores
        At least one :class:`MaskScores`, all with the same class names.

    Returns
    -------
    MaskScores
        The summed confusion matrix.
    """
    items = list(scores)
    if not items:
        raise InputError("no scores to pool")
    total = items[0]
    for s in items[1:]:
        total = total + s
    return total


def summarise(scores: Sequence[MaskScores], positive: str | int = 1) -> pd.DataFrame:
    """Data-set table: rows ``pooled``, ``mean`` and ``std`` over images.

    ``pooled`` is the headline number (as in the papers); ``mean`` / ``std`` show the
    spread between images (nan entries skipped, e.g. the Jaccard of an image without
    contamination where none was predicted).

    Parameters
    ----------
    scores
        One :class:`MaskScores` per image.
    positive
        The class whose metrics are reported: a name or an index (default 1, e.g.
        contamination).

    Returns
    -------
    pandas.DataFrame
        Rows ``pooled``, ``mean``, ``std``; columns as :meth:`MaskScores.summary`.
    """
    per_image = pd.DataFrame([s.summary(positive) for s in scores])
    return pd.DataFrame(
        {
            "pooled": pd.Series(pooled(scores).summary(positive)),
            "mean": per_image.mean(skipna=True),
            "std": per_image.std(skipna=True, ddof=0),
        }
    ).T
