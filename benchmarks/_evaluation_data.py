"""Evaluation data of the segmentation benchmarks (read-only, from ../shared/data and runs/).

- :func:`real_panel`: the real out-of-distribution micrographs (real_panel/, the TIA and
  EMD lattices of formats/openNCEM) with what is known about each: stated pixel size,
  whether it is a clean crystal (every pixel should be crystal), a particle, a hole.
- :func:`pt_single_atoms`: the real HAADF images of Pt atoms on amorphous carbon (no
  lattice: nothing should be crystal).
- :func:`graphene_split`: the labelled graphene images as (selection, final).
- :func:`multislice_graphene`: the abTEM multislice set (benchmarks/make_multislice_graphene.py).
- :func:`bf_evaluation_set`: synthetic bright-field survey images of 2-4 nm particles,
  5-10 px each, 8-bit narrow grey ranges (what the issue's real in-situ frames show),
  from held-out seeds.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@dataclass
class PanelImage:
    name: str
    image: np.ndarray
    pixel_size_nm: float | None  # what the file or its source states
    kind: str  # "crystal" (clean: all crystal), "particle", "hole", "other"
    note: str = ""


#: What each real panel image shows (from real_panel/README.md): clean crystals must come
#: out crystal; 07 is a particle in vacuum, 10 a monolayer with a hole and contamination.
PANEL_KIND = {
    "01_mos2_haadf_60kV.npy": ("other", "MoS2 with adsorbate/contamination patches"),
    "02_mos2_vdoped_haadf_60kV.npy": ("crystal", "clean V-doped MoS2"),
    "03_ybco_haadf_300kV_velox.tif": ("crystal", "YBCO, planar defects"),
    "04_nsmo_110_cryo_haadf_registered.tif": ("crystal", "NSMO [110]"),
    "05_bto_adf_stack_average.dm4": ("crystal", "BaTiO3"),
    "06_sto_abf_5frame_series.hspy": ("crystal", "SrTiO3 ABF, frame 0"),
    "07_ptir_nanoparticle_haadf.tif": ("particle", "Pt-Ir particle in vacuum"),
    "08_graphene_hrtem_80kV.tif": ("crystal", "graphene HRTEM, layer steps"),
    "09_wsse_janus_haadf_100kV.tif": ("crystal", "WS2/WSSe"),
    "10_tmd_haadf_hole_contamination.bmp": ("hole", "monolayer, hole, contamination"),
    "11_zno_ddpc.tif": ("crystal", "ZnO dDPC"),
    "16_STOimage_1.ser": ("crystal", "SrTiO3 HAADF (formats/openNCEM)"),
    "Acquisition_18.emd": ("crystal", "lattice (formats/openNCEM)"),
}


def _read(path: Path) -> tuple[np.ndarray, float | None]:
    from napari_atomseg.io import read_images
    from napari_atomseg.segmentation.sorting import read_any

    if path.suffix == ".npy":
        return np.load(path).astype(np.float32), None
    if path.suffix == ".hspy":
        import h5py

        with h5py.File(path, "r") as f:
            data = f["Experiments/004_ABF_movie_21/data"][0]
        return np.asarray(data, np.float32), None
    if path.suffix == ".bmp":
        image, cal = read_any(path)
        return image, cal.pixel_size_nm
    im = read_images(path)[0]
    data = im.data[0] if im.data.ndim == 3 else im.data
    return np.asarray(data, np.float32), im.calibration.pixel_size_nm


def real_panel() -> list[PanelImage]:
    folder = SHARED / "real_panel"
    stated = {}
    with open(folder / "index.csv", newline="") as f:
        for row in csv.DictReader(f):
            stated[row["file"]] = float(row["pixel_size_nm"]) if row["pixel_size_nm"] else None
    out = []
    paths = [folder / name for name in PANEL_KIND if (folder / name).exists()]
    paths += [
        SHARED / "formats" / "openNCEM" / n for n in ("16_STOimage_1.ser", "Acquisition_18.emd")
    ]
    for path in paths:
        if not path.exists():
            continue
        image, from_file = _read(path)
        kind, note = PANEL_KIND[path.name]
        px = from_file or stated.get(path.name)
        out.append(PanelImage(path.name, image, px, kind, note))
    return out


def pt_single_atoms() -> list[PanelImage]:
    from napari_atomseg.io import read_image

    out = []
    for path in sorted((SHARED / "pt_single_atoms" / "images").glob("*.tif")):
        image, cal = read_image(path)
        out.append(PanelImage(path.stem, image, cal.pixel_size_nm, "no_lattice"))
    return out


def graphene_split():
    from napari_atomseg.segmentation.data import final_split, load_graphene_contamination

    items = load_graphene_contamination()
    selection, final = final_split([it.name for it in items])
    return [items[i] for i in selection], [items[i] for i in final]


def multislice_graphene(folder: Path = REPO / "runs" / "multislice_graphene"):
    """[(name, image, truth contamination mask, pixel size nm)] (empty when not made)."""
    out = []
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as z:
            out.append((path.stem, z["image"], z["classes"] == 3, float(z["pixel_size_nm"])))
    return out


#: The issue's real bright-field frames: 2-4 nm Au particles, 5-10 px each (0.3-0.8
#: nm/px), hundreds per frame, 8-bit with the grey levels squeezed into a narrow range.
BF_EVAL_RECIPE = {
    "diameter_nm": (2.0, 4.0),
    "diameter_px": (5.0, 10.0),
    "pixel_size_nm": (0.2, 0.8),
    "shape_px": (512, 512),
    "materials": {"Au": 1.0},
}
BF_EVAL_SEED = 90_000_000


def bf_evaluation_set(n: int = 12):
    """[(name, image, truth mask, pixel size nm)] -- synthetic, held-out seeds, forced to
    the narrow grey ranges and survey sampling of the issue's real frames."""
    from dataclasses import replace

    from napari_atomseg.simulation.bf_particles import random_bf_parameters, render_bf_particles

    out = []
    for k in range(n):
        rng = np.random.default_rng([BF_EVAL_SEED, k])
        p = random_bf_parameters(rng, **BF_EVAL_RECIPE)
        grey = float(rng.uniform(15.0, 60.0))
        p = replace(
            p,
            coverage=float(rng.uniform(0.1, 0.3)),
            grey_range=grey,
            grey_offset=float(rng.uniform(40.0, 200.0 - grey)),
            quantise=True,
        )
        res = render_bf_particles(p)
        out.append((f"bf_{k:02d}", res.image, res.mask, res.pixel_size_nm))
    return out
