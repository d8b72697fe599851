"""The segmentation tasks' class names and flagged class (shared by the API, the U-Net path
and the training task without importing one another)."""

from __future__ import annotations

#: Class names per task, in label order.
TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "contamination": ("crystal", "amorphous", "vacuum"),
    "particles": ("background", "particle"),
}
#: Label value of the class each task flags (what the area fractions and sorting rank by).
FLAGGED_CLASS: dict[str, int] = {"contamination": 1, "particles": 1}
