"""The atom finder on real micrographs it never saw: points drawn on the images, and checks.

The eleven images of ``../shared/data/real_panel`` (no labels; other materials, modes and
instruments than anything the models were trained or tuned on) and the two real lattices of
``formats/openNCEM`` (SrTiO3 TIA file, Berkeley EMD). For each: the columns found with the
defaults (pixel size from the file or the panel's index; told ABF columns are dark and
HRTEM is HRTEM, as a user would), the same without a pixel size, and a classical check --
``blob_log`` at the column scale with a noise-based threshold and a contrast floor -- in the
same run:

- ``unsupported``: points with image evidence below 3 noise levels (a point there is not
  something the image clearly shows);
- ``blob agreement``: the share of the finder's points within 0.05 nm of a blob_log blob
  and of blob_log's blobs within 0.05 nm of a point (on clean lattices both near 1);
- ``no pixel size``: columns found, the estimated pixel size against the stated one, and the
  share of points that coincide with the calibrated run's;
- ``material named``: the same, with the catalogue material a user would name
  (``material=``; :data:`NAMED`), where the catalogue has it.

A contact sheet of crops with the points (``--sheet``) is the visual check: no point where
the image shows nothing.

    OMP_NUM_THREADS=2 python benchmarks/atoms_real.py --sheet docs/images/real_panel_atoms.png
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from lib.pt import SHARED_DATA
from scipy.spatial import cKDTree

PANEL = SHARED_DATA / "real_panel"
#: (contrast, imaging) a user would tell the finder, by file.
TOLD = {
    "06_sto_abf_5frame_series.hspy": ("dark", "stem"),
    "08_graphene_hrtem_80kV.tif": ("auto", "hrtem"),
}
#: Smallest blob height the check counts, as a fraction of the image's range.
BLOB_FLOOR = 0.05
#: The catalogue material a user would name for each file (none for materials the
#: catalogue lacks: YBCO, NSMO, BaTiO3, the unnamed TMD).
NAMED = {
    "01_mos2_haadf_60kV.npy": "MoS2",
    "02_mos2_vdoped_haadf_60kV.npy": "MoS2",
    "06_sto_abf_5frame_series.hspy": "SrTiO3",
    "07_ptir_nanoparticle_haadf.tif": "Pt",
    "08_graphene_hrtem_80kV.tif": "graphene",
    "09_wsse_janus_haadf_100kV.tif": "WS2",
    "11_zno_ddpc.tif": "ZnO",
    "16_STOimage_1.ser": "SrTiO3",
    "Acquisition_18.emd": "SrTiO3",
}
EXTRA = [
    SHARED_DATA / "formats" / "openNCEM" / "16_STOimage_1.ser",
    SHARED_DATA / "formats" / "openNCEM" / "Acquisition_18.emd",
]


def read(path: Path, stated_nm: float | None) -> tuple[np.ndarray, float | None]:
    """A panel image as a 2-D float array (the first frame of a series) and its pixel size."""
    from napari_atomseg.io import read_image

    if path.suffix == ".npy":
        image, size = np.load(path), None
    else:
        image, cal = read_image(path)
        size = cal.pixel_size_nm
    image = np.asarray(image, np.float32)
    if image.ndim == 3:
        image = image[..., 0] if image.shape[-1] in (3, 4) else image[0]
    return image, size or stated_nm


def stated_sizes() -> dict[str, float | None]:
    with open(PANEL / "index.csv", newline="") as fh:
        return {
            r["file"]: float(r["pixel_size_nm"]) if r["pixel_size_nm"] else None
            for r in csv.DictReader(fh)
        }


def blobs(image: np.ndarray, pixel_size_nm: float, dark: bool) -> np.ndarray:
    """blob_log at the column scale (0.03-0.08 nm): a blob at least 5 noise levels and at least
    :data:`BLOB_FLOOR` of the image's range high.

    The floor: where most of the field is vacuum (a particle), the pixel noise measured over
    the image is the vacuum's, and 5 of its noise levels let blob_log take hundreds of
    faint specks of the support beside the particle's columns (07_ptir: 541 blobs for about
    125 columns without the floor)."""
    from skimage.feature import blob_log

    from napari_atomseg.atoms.evidence import pixel_noise_sigma

    img = -image if dark else image
    img = (img - np.median(img)) / max(float(np.ptp(img)), 1e-12)
    s = 0.045 / pixel_size_nm
    noise = pixel_noise_sigma(img)
    # A Gaussian blob of height A at the matched scale gives a normalised LoG response A / 2.
    threshold = max(5 * noise / s, 0.5 * BLOB_FLOOR)
    found = blob_log(img, min_sigma=0.7 * s, max_sigma=1.8 * s, num_sigma=5, threshold=threshold)
    return found[:, :2]


def agreement(a: np.ndarray, b: np.ndarray, radius_px: float) -> float:
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(np.mean(cKDTree(b).query(a)[0] <= radius_px))


def check(path: Path, stated: float | None, threads: int, model: str = "default") -> dict:
    from napari_atomseg.atoms.find import find_atoms

    image, size = read(path, stated)
    contrast, imaging = TOLD.get(path.name, ("auto", None))
    t0 = time.perf_counter()
    df = find_atoms(image, size, model, contrast=contrast, imaging=imaging, threads=threads)
    seconds = time.perf_counter() - t0
    ps = float(df.attrs["pixel_size_nm"])
    pts = df[["y_px", "x_px"]].to_numpy()
    ref = blobs(image, ps, df.attrs["contrast"] == "dark")
    free = find_atoms(image, None, model, contrast=contrast, imaging=imaging, threads=threads)
    free_pts = free[["y_px", "x_px"]].to_numpy()
    r = 0.05 / ps
    material = NAMED.get(path.name)
    named = (
        find_atoms(image, None, model, contrast=contrast, imaging=imaging, threads=threads,
                   material=material)
        if material
        else None
    )  # fmt: skip
    return {
        "file": path.name,
        "shape": image.shape,
        "pixel_size_nm": size,
        "columns": len(df),
        "contrast": df.attrs["contrast"],
        "unsupported_3": float(np.mean(df["evidence"] < 3)) if len(df) else float("nan"),
        "points_on_blobs": agreement(pts, ref, r),
        "blobs_found": agreement(ref, pts, r),
        "blob_count": len(ref),
        "free_columns": len(free),
        "free_pixel_size_nm": free.attrs["pixel_size_nm"],
        "free_same_points": agreement(pts, free_pts, r),
        "material": material,
        "named_pixel_size_nm": named.attrs["pixel_size_nm"] if named is not None else None,
        "named_same_points": (
            agreement(pts, named[["y_px", "x_px"]].to_numpy(), r) if named is not None else None
        ),
        "seconds": seconds,
        "warnings": df.attrs.get("warnings", []),
        "_image": image,
        "_points": pts,
    }


def sheet(rows: list[dict], out: Path, crop_px: int = 160) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    cols = 4
    fig, axes = plt.subplots(
        (n + cols - 1) // cols, cols, figsize=(4 * cols, 4 * ((n + cols - 1) // cols))
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, r in zip(axes.ravel(), rows):
        img, pts = r["_image"], r["_points"]
        h, w = img.shape
        y0, x0 = (h - crop_px) // 2, (w - crop_px) // 2
        ax.imshow(img[y0 : y0 + crop_px, x0 : x0 + crop_px], cmap="gray")
        inside = (
            (pts[:, 0] >= y0)
            & (pts[:, 0] < y0 + crop_px)
            & (pts[:, 1] >= x0)
            & (pts[:, 1] < x0 + crop_px)
        )
        ax.plot(pts[inside, 1] - x0, pts[inside, 0] - y0, "+", color="#ff3030", ms=6, mew=1.2)
        ax.set_title(f"{r['file'][:28]}\n{r['columns']} columns", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70)
    from PIL import Image  # (matplotlib's own dependency)

    # 64 grey-and-red colours keep the sheet under 400 kB for docs/images.
    Image.open(out).convert("RGB").quantize(colors=64).save(out, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="default", help="model name or card path")
    ap.add_argument(
        "--sheet", type=Path, default=None, help="contact sheet PNG of crops with points"
    )
    args = ap.parse_args(argv)
    if not PANEL.exists():
        print(f"{PANEL} not found", file=sys.stderr)
        return 1
    sizes = stated_sizes()
    files = [PANEL / f for f in sizes] + [p for p in EXTRA if p.exists()]
    rows = []
    from napari_atomseg.errors import AtomsegError

    for path in files:
        try:
            row = check(path, sizes.get(path.name), args.threads, args.model)
        except AtomsegError as exc:  # reported, and the panel goes on
            print(f"{path.name}: not checked ({exc})", flush=True)
            continue
        rows.append(row)
        print(f"{row['file']}: {row['columns']} columns ({row['contrast']}), unsupported "
              f"{row['unsupported_3']:.3f}, on blobs {row['points_on_blobs']:.3f}, blobs found "
              f"{row['blobs_found']:.3f} ({row['blob_count']}), no pixel size: {row['free_columns']} "
              f"columns at {row['free_pixel_size_nm']:.4g} nm/px (stated {row['pixel_size_nm']}), "
              f"same points {row['free_same_points']:.3f}, {row['seconds']:.1f} s", flush=True)  # fmt: skip
    print(
        "\n| image | columns | evidence < 3 | points on blob_log blobs | blobs found (blobs) "
        "| no pixel size: est. nm/px (stated) | same points | material named: est. nm/px | same points |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        stated = f"{r['pixel_size_nm']:.4g}" if r["pixel_size_nm"] else "none"
        named = (f"{r['material']}: {r['named_pixel_size_nm']:.4g} | {r['named_same_points']:.3f}"
                 if r["material"] else "- | -")  # fmt: skip
        print(f"| {r['file']} | {r['columns']} | {r['unsupported_3']:.3f} | {r['points_on_blobs']:.3f} | "
              f"{r['blobs_found']:.3f} ({r['blob_count']}) | {r['free_pixel_size_nm']:.4g} ({stated}) | "
              f"{r['free_same_points']:.3f} | {named} |")  # fmt: skip
    if args.sheet:
        sheet(rows, args.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
