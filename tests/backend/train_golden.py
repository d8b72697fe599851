"""Recorded outputs of small training runs, to prove that changes to the training code keep
its numbers.

Each scenario trains a tiny network for a few steps through a different path of the
training loop (task examples, example pool, fine-tuning pairs, library, pruning,
distillation, several schedules, worker processes, the user fine-tune command) and
summarises what it wrote: every weight tensor's sha256 and a few of its values, the CSV
log, the text log and the model card, with wall times, dates, hardware and temporary
paths taken out. ``tests/backend/test_train_golden.py`` reruns the scenarios and compares.

Regenerate only on purpose (when a change is *meant* to move the numbers)::

    PYTHONPATH=src python -m tests.backend.train_golden

The record states the platform it was made on (torch, numpy, CPU instruction set):
there the comparison is bit for bit; elsewhere floating-point reductions may round
differently, so numbers are compared with a tolerance.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import platform
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests._synth import blob_image
from tests.backend.blob_task import BlobTask

#: The recorded summaries, and a card written by ``napari-atomseg finetune``.
GOLDEN_DIR = Path(__file__).parent / "data" / "train_golden"
GOLDEN_JSON = GOLDEN_DIR / "golden.json"
USER_CARD_DIR = GOLDEN_DIR / "user_finetuned"

TASK = "tests.backend.blob_task:BlobTask"
TMP = "<tmp>"


class DistilBlobTask(BlobTask):
    """BlobTask that can learn from a teacher (a soft heatmap target)."""

    def distill_loss(
        self, logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        soft = torch.sigmoid(teacher_logits[:, :1])
        return torch.nn.functional.binary_cross_entropy_with_logits(logits[:, :1], soft)


class WideReferenceBlobTask(BlobTask):
    """BlobTask whose scale reference is measured on another task's (wider) images."""

    def scale_reference_task(self) -> BlobTask:
        return BlobTask(patch_px=self.patch_px, sigma_px=3.0)


def platform_key() -> dict[str, str]:
    """What decides whether two runs of the same code round alike."""
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
    }


# --------------------------------------------------------------------------- summaries


def weights_summary(path: Path) -> dict[str, Any]:
    """Per tensor: sha256 of its bytes, its first values and its sum (float64)."""
    from safetensors.torch import load_file

    out = {}
    for name, t in sorted(load_file(str(path)).items()):
        arr = t.numpy()
        out[name] = {
            "sha256": hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest(),
            "dtype": str(arr.dtype),
            "shape": list(arr.shape),
            "head": [float(v) for v in arr.ravel()[:4]],
            "sum": float(arr.astype(np.float64).sum()),
        }
    return out


def _scrub(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        # A weights file's sha256 changes from run to run with the same tensors:
        # safetensors writes its metadata mapping in hash order.
        return {k: "<sha256>" if k == "sha256" else _scrub(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, TMP)
    return value


def csv_summary(path: Path) -> list[dict[str, str]]:
    """The CSV log without its wall-time column."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(fh)]


def text_log_summary(path: Path, root: str) -> list[str]:
    """The text log with speeds and durations replaced by placeholders."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        line = re.sub(r"[0-9.]+ examples/s", "<rate> examples/s", line)
        line = re.sub(r"\(\d+ s\)", "(<s>)", line)
        out.append(line.replace(root, TMP))
    return out


def card_summary(card_path: Path, root: str) -> dict[str, Any]:
    """The card as written, minus what differs between runs (times, hardware, file hashes)."""
    import yaml

    data = yaml.safe_load(card_path.read_text(encoding="utf-8"))
    training = data.get("training", {})
    for key in ("wall_time_s", "finished", "hardware"):
        training.pop(key, None)
    data.get("metrics", {}).get("fine_tuning", {}).pop("wall_time_s", None)
    return _scrub(data, root)


def run_summary(result: Any, root: Path) -> dict[str, Any]:
    """Summary of a :class:`~napari_atomseg.backend.train_loop.TrainResult`."""
    text_log = Path(result.log_csv).with_name(Path(result.log_csv).name[: -len(".csv")] + ".txt")
    return {
        "weights": weights_summary(result.weights_path),
        "log_csv": csv_summary(result.log_csv),
        "text_log": text_log_summary(text_log, str(root)),
        "card": card_summary(Path(result.card_path), str(root)),
        "validation": {k: float(v) for k, v in result.validation.items()},
    }


# --------------------------------------------------------------------------- scenarios


def base_config(root: Path, name: str, **over: Any) -> dict[str, Any]:
    """A tiny blob config: one thread, no worker processes."""
    data = {
        "name": name,
        "task": TASK,
        "task_options": {"patch_px": 32},
        "card": {"architecture": {"base_channels": 4, "depth": 1}},
        "steps": 12,
        "batch_size": 4,
        "lr": 5e-3,
        "workers": 0,
        "threads": 1,
        "val_examples": 8,
        "val_every": 6,
        "log_every": 3,
        "checkpoint_every": 6,
        "out_dir": str(root / name),
    }
    data.update(over)
    return data


def plain(root: Path) -> dict[str, Any]:
    """Examples made on the fly, one-cycle schedule, the default card command."""
    from napari_atomseg.backend.train_loop import train

    return run_summary(train(base_config(root, "plain"), log=None), root)


def _pairs(root: Path, base_card: Any) -> tuple[Path, list[tuple[np.ndarray, np.ndarray]]]:
    from napari_atomseg.backend.train_data import save_pairs
    from napari_atomseg.backend.train_loop import prepare_pair

    rng = np.random.default_rng(7)
    pairs = [prepare_pair(*blob_image(rng, (40, 44)), 0.02, base_card) for _ in range(3)]
    return save_pairs(root / "pairs.npz", pairs), pairs


def pool_pairs_prune_distil(root: Path) -> dict[str, Any]:
    """Example pool + fine-tuning pairs + fixed validation pairs, a narrower network
    pruned from ``plain``'s, distillation from it, cosine schedule, no gradient clip."""
    from napari_atomseg.backend.cards import load_card
    from napari_atomseg.backend.train_loop import train

    base = load_card(root / "plain" / "plain.yaml")
    pairs_file, pairs = _pairs(root, base)
    cfg = base_config(
        root,
        "mixed",
        task="tests.backend.train_golden:DistilBlobTask",
        card={"architecture": {"base_channels": 3, "depth": 1}},
        steps=8,
        schedule="cosine",
        warmup_steps=2,
        grad_clip=None,
        augment={"scale_jitter": 0.1, "noise": 0.1},
        crop_px=24,
        example_pool=6,
        pairs=str(pairs_file),
        pairs_fraction=0.5,
        init_from=str(base.path),
        teacher=str(base.path),
        distill_weight=2.0,
        val_every=4,
        log_every=2,
        checkpoint_every=4,
    )
    result = train(cfg, val_pairs=pairs[:1], log=None, command="golden mixed")
    return run_summary(result, root)


def _library(root: Path, n: int = 10) -> Path:
    import zarr

    rng = np.random.default_rng(3)
    path = root / "lib.zarr"
    g = zarr.open_group(str(path), mode="w")
    imgs, heats = zip(*[blob_image(rng, (32, 32)) for _ in range(n)])
    g.create_array("image", data=np.stack(imgs), chunks=(1, 32, 32))
    g.create_array("heatmap", data=np.stack(heats), chunks=(1, 32, 32))
    g.create_array("done", data=np.array([True] * (n - 1) + [False]))
    g.attrs["parameters"] = [{"pixel_size_nm": 0.02, "seed": i} for i in range(n)]
    return path


def library_workers(root: Path) -> dict[str, Any]:
    """A zarr library only (its last fifth held out for validation), two DataLoader
    worker processes, constant schedule, a scale reference from another task's images."""
    from napari_atomseg.backend.train_loop import train

    cfg = base_config(
        root,
        "library",
        task="tests.backend.train_golden:WideReferenceBlobTask",
        steps=6,
        schedule="constant",
        workers=2,
        library=str(_library(root)),
        library_fraction=1.0,
        val_examples=4,
        val_every=3,
        log_every=2,
        checkpoint_every=3,
    )
    return run_summary(train(cfg, log=None, command="golden library"), root)


def user_finetune(root: Path, keep_card_in: Path | None = None) -> dict[str, Any]:
    """``napari-atomseg finetune`` from Python: a tiny base model, two labelled images."""
    from napari_atomseg.atoms.finetune_user import finetune_atoms
    from tests._models import export_tiny_atoms_model, training_recipe
    from tests._synth import hex_lattice_px, render_columns

    base = export_tiny_atoms_model(
        root / "base",
        "tiny_recipe",
        training=training_recipe(0.025),
    )
    rng = np.random.default_rng(0)
    images, points = [], []
    for k in range(2):
        true = hex_lattice_px((96, 96), 0.25 / 0.025, margin_px=2, seed=k)
        images.append(
            rng.poisson(render_columns((96, 96), true, 0.04 / 0.025, 200, 20)).astype(np.float32)
        )
        points.append(true)
    card_path = finetune_atoms(
        images,
        points,
        0.025,
        root / "user",
        base=str(base.path),
        name="user_tuned",
        steps=3,
        synthetic_fraction=0,
        threads=1,
        command="napari-atomseg finetune im0.tif im1.tif --points points --steps 3",
    )
    if keep_card_in is not None:
        keep_card_in.mkdir(parents=True, exist_ok=True)
        for suffix in (".yaml", ".safetensors"):
            shutil.copy2(card_path.with_suffix(suffix), keep_card_in / (card_path.stem + suffix))
    work = root / "user"
    return {
        "weights": weights_summary(card_path.with_suffix(".safetensors")),
        "log_csv": csv_summary(work / "user_tuned.train_log.csv"),
        "text_log": text_log_summary(work / "user_tuned.train_log.txt", str(root)),
        "card": card_summary(card_path, str(root)),
    }


SCENARIOS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "plain": plain,
    "pool_pairs_prune_distil": pool_pairs_prune_distil,
    "library_workers": library_workers,
    "user_finetune": user_finetune,
}


def run_all(root: Path, keep_user_card_in: Path | None = None) -> dict[str, Any]:
    """Run every scenario in order (later ones start from ``plain``'s model)."""
    out = {}
    for name, fn in SCENARIOS.items():
        if name == "user_finetune":
            out[name] = fn(root, keep_card_in=keep_user_card_in)  # type: ignore[call-arg]
        else:
            out[name] = fn(root)
    return out


# --------------------------------------------------------------------------- comparison


def differences(
    got: Any, want: Any, exact: bool, where: str = "", rtol: float = 1e-2, atol: float = 1e-3
) -> list[str]:
    """Where ``got`` differs from ``want``: equality when ``exact``, else numbers (and
    numeric strings, as the CSV holds them) within ``rtol``/``atol`` and digests ignored."""
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return [f"{where}: keys {sorted(set(got) ^ set(want))} differ"]
        out: list[str] = []
        for k in want:
            if not exact and k == "sha256":
                continue
            out += differences(got[k], want[k], exact, f"{where}.{k}", rtol, atol)
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items, recorded {len(want)}"]
        out = []
        for i, (g, w) in enumerate(zip(got, want)):
            out += differences(g, w, exact, f"{where}[{i}]", rtol, atol)
        return out
    if exact:
        same = got == want or (_is_nan(got) and _is_nan(want))
        return [] if same else [f"{where}: {got!r} != recorded {want!r}"]
    g, w = _number(got), _number(want)
    if g is not None and w is not None:
        ok = (math.isnan(g) and math.isnan(w)) or math.isclose(g, w, rel_tol=rtol, abs_tol=atol)
        return [] if ok else [f"{where}: {got!r} not close to recorded {want!r}"]
    if isinstance(got, str) and isinstance(want, str):
        return [] if _numbers_close(got, want, rtol, atol) else [f"{where}: {got!r} != {want!r}"]
    return [] if got == want else [f"{where}: {got!r} != recorded {want!r}"]


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return None
    return None


_NUM = re.compile(r"-?\d+\.?\d*(?:e-?\d+)?")


def _numbers_close(got: str, want: str, rtol: float, atol: float) -> bool:
    """Text lines equal apart from numbers that are close (e.g. a logged loss)."""
    if _NUM.sub("#", got) != _NUM.sub("#", want):
        return False
    pairs = zip(_NUM.findall(got), _NUM.findall(want))
    return all(math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol) for a, b in pairs)


def main(argv: list[str]) -> int:
    """Rewrite the record (``--check``: compare instead)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "--check" in argv:
            recorded = json.loads(GOLDEN_JSON.read_text())
            exact = recorded["platform"] == platform_key()
            diffs = differences(run_all(root), recorded["scenarios"], exact)
            print(
                "\n".join(diffs) or f"identical ({'bit for bit' if exact else 'within tolerance'})"
            )
            return 1 if diffs else 0
        if USER_CARD_DIR.exists():
            shutil.rmtree(USER_CARD_DIR)
        scenarios = run_all(root, keep_user_card_in=USER_CARD_DIR)
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    record = {"platform": platform_key(), "scenarios": scenarios}
    GOLDEN_JSON.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN_JSON} and {USER_CARD_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
