"""Noise, contrast and texture of real micrographs beside those of a simulation mixture.

Measures the same statistics (:mod:`napari_atomseg.simulation.imagestats`) on

- the real HAADF / ABF / HRTEM images in ``../shared/data`` (Pt single atoms on N-doped
  carbon with their hand-placed atoms, the real_panel lattices, the openNCEM SrTiO3 and
  EMD files);
- images drawn from a mixture (``--mix``), at the mixture's own pixel sizes;

and prints a Markdown table of each statistic: the real values beside the mixture's
10-90 % range and its extremes, so one can see whether training covers what the
microscope gives. ``--figure`` also draws real and simulated images side by side::

    OMP_NUM_THREADS=1 python benchmarks/calibrate_noise.py --mix configs/atoms_mix_v2.yaml \\
        --n-sim 120 --figure docs/images/sim_vs_real.png

Statistics: effective electrons per pixel (Poisson-Gaussian fit; the zero level from the
vacuum where the image has one), read noise, noise correlation along the fast scan,
scan-line noise, line jitter (lattices), and for single atoms: their contrast relative to
the support, to the noise and to the support's texture, their mean width, and the
texture's rms per band of periods and spectral exponent.
"""

from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@dataclass
class Real:
    label: str
    path: str
    mode: str
    pixel_size_nm: float | None
    note: str = ""


REAL_PANEL = [
    Real("MoS2 60 kV", "real_panel/01_mos2_haadf_60kV.npy", "HAADF", 0.013672, "rescaled"),
    Real("MoS2:V 60 kV", "real_panel/02_mos2_vdoped_haadf_60kV.npy", "HAADF", 0.017578, "rescaled"),
    Real("YBCO 300 kV", "real_panel/03_ybco_haadf_300kV_velox.tif", "HAADF", 0.035246),
    Real(
        "WSSe 100 kV",
        "real_panel/09_wsse_janus_haadf_100kV.tif",
        "HAADF",
        0.0078125,
        "8-bit, background-subtracted",
    ),
    Real("TMD hole", "real_panel/10_tmd_haadf_hole_contamination.bmp", "HAADF", None, "8-bit"),
    Real("SrTiO3 (TIA)", "formats/openNCEM/16_STOimage_1.ser", "HAADF", 0.0100127),
    Real("lattice (EMD)", "formats/openNCEM/Acquisition_18.emd", "HAADF", 0.0122465),
    Real("SrTiO3 ABF frame", "real_panel/06_sto_abf_5frame_series.hspy", "ABF", 0.0092024),
    Real("graphene 80 kV", "real_panel/08_graphene_hrtem_80kV.tif", "HRTEM", 0.011955),
]


def load_real(item: Real) -> np.ndarray:
    path = DATA / item.path
    if path.suffix == ".npy":
        return np.load(path).astype(np.float64)
    if path.suffix == ".bmp":
        import imageio.v3 as iio

        return iio.imread(path)[..., 0].astype(np.float64)
    if path.suffix == ".hspy":
        import h5py

        with h5py.File(path) as h:
            return np.asarray(h["Experiments/004_ABF_movie_21/data"][0], dtype=np.float64)
    from napari_atomseg import read_image

    return read_image(path)[0].astype(np.float64)


def pt_items() -> list[tuple[str, Path, Path]]:
    images = sorted((DATA / "pt_single_atoms" / "images").glob("*.tif"))
    return [
        (p.name[:3], p, DATA / "pt_single_atoms" / "coordinates" / f"{p.name[:3]}_Results.csv")
        for p in images
    ]


# --- statistics ---------------------------------------------------------------------------
def noise_stats(image: np.ndarray, zero_level: float | None = None) -> dict[str, float]:
    from napari_atomseg.simulation.imagestats import fit_poisson_gaussian, line_jitter_px

    fit = fit_poisson_gaussian(image, zero_level=zero_level)
    return {
        "electrons_per_pixel": fit.electrons_per_pixel,
        "read_noise_electrons": fit.read_noise_electrons,
        "fast_scan_correlation": fit.fast_scan_correlation,
        "line_noise_fraction": fit.line_noise_fraction,
        "line_jitter_px": line_jitter_px(image),
        "_fit": fit,
    }


def atom_stats(image: np.ndarray, positions_px: np.ndarray, pixel_size_nm: float, fit) -> dict:
    """Single atoms against their support: contrast, width, texture of the support."""
    from scipy.ndimage import gaussian_filter

    from napari_atomseg.simulation.imagestats import spot_contrast, spot_width_nm, texture_spectrum

    sc = spot_contrast(image, positions_px, pixel_size_nm, fit)
    # The support: pixels whose 1-nm mean is above a third of the median (not vacuum).
    zero = fit.zero_level if math.isfinite(fit.zero_level) else 0.0
    smooth = gaussian_filter(image - zero, 1.0 / pixel_size_nm)
    support = smooth > 0.35 * np.median(smooth)
    tx = texture_spectrum(image, pixel_size_nm, fit, mask=support)
    out = {
        "atoms": sc.n,
        "atom_relative_contrast": sc.relative[0],
        "atom_snr": sc.snr[0],
        "atom_texture_ratio": sc.texture_ratio[0],
        "atom_width_nm": spot_width_nm(image, positions_px, pixel_size_nm),
        "texture_exponent": tx.exponent,
    }
    for (lo, hi), rms in zip(tx.band_periods_nm, tx.band_rms):
        out[f"texture_rms_{lo:g}-{hi:g}nm"] = rms
    return out


def real_rows() -> list[dict]:
    import pandas as pd

    rows = []
    for label, image_path, coords in pt_items():
        from napari_atomseg import read_image

        image, cal = read_image(image_path)
        image = image.astype(np.float64)
        # The vacuum (a hole in the support) is the zero-electron level where there is one.
        vacuum = float(np.percentile(image, 0.5))
        stats = noise_stats(image, zero_level=vacuum)
        table = pd.read_csv(coords)
        positions = np.stack([table.Y.to_numpy(float), table.X.to_numpy(float)], axis=1)
        stats.update(atom_stats(image, positions, cal.pixel_size_nm, stats["_fit"]))
        rows.append({"group": "Pt single atoms", "label": f"Pt {label}", "mode": "HAADF", **stats})
    for item in REAL_PANEL:
        if not (DATA / item.path).exists():
            continue
        image = load_real(item)
        stats = noise_stats(image)
        rows.append({"group": item.mode, "label": item.label, "mode": item.mode, **stats})
    return rows


def sim_rows(mix_path: str, n: int, seed: int) -> list[dict]:
    """Statistics of ``n`` images of the mix: HAADF single-atom scenes (with the atom
    statistics on the visible isolated atoms), HAADF lattices and HRTEM images."""
    from napari_atomseg.simulation import load_mix, random_parameters, simulate

    mix = load_mix(mix_path)
    rng = np.random.default_rng(seed)
    rows = []
    want = {"single": n // 2, "haadf": n // 4, "hrtem": n - n // 2 - n // 4}
    made = dict.fromkeys(want, 0)
    for _ in range(50 * n):
        if all(made[k] >= want[k] for k in want):
            break
        p = random_parameters(rng, mix).replace(shape_px=(256, 256))
        group = "hrtem" if p.mode == "hrtem" else "single" if p.scene == "single_atoms" else "haadf"
        if made[group] >= want[group]:
            continue
        made[group] += 1
        r = simulate(p)
        image = r.image.astype(np.float64)
        stats = noise_stats(image)
        if group == "single":
            t = r.columns
            atoms = t[(t.region == "single_atom") & (t.n_atoms == 1) & t.visible]
            positions = atoms[["y_px", "x_px"]].to_numpy(float)
            stats.update(atom_stats(image, positions, p.pixel_size_nm, stats["_fit"]))
        rows.append({"group": group, "label": f"{p.material}/{p.scene}", "mode": p.mode, **stats})
    return rows


# --- table ---------------------------------------------------------------------------------
STATS = [
    ("electrons_per_pixel", "effective electrons / pixel", "{:.3g}"),
    ("read_noise_electrons", "read noise (electrons)", "{:.2f}"),
    ("fast_scan_correlation", "noise correlation along the fast scan", "{:.2f}"),
    ("line_noise_fraction", "scan-line offsets / pixel noise", "{:.2f}"),
    ("line_jitter_px", "line jitter (px, lattices)", "{:.2f}"),
    ("atom_relative_contrast", "atom peak / support signal", "{:.2f}"),
    ("atom_snr", "atom peak / noise (0.04 nm smoothing)", "{:.1f}"),
    ("atom_texture_ratio", "atom peak / support texture", "{:.1f}"),
    ("atom_width_nm", "atom width, sigma (nm)", "{:.3f}"),
    ("texture_rms_0.15-0.4nm", "support texture rms, 0.15-0.4 nm", "{:.3f}"),
    ("texture_rms_0.4-1nm", "support texture rms, 0.4-1 nm", "{:.3f}"),
    ("texture_rms_1-2.5nm", "support texture rms, 1-2.5 nm", "{:.3f}"),
    ("texture_exponent", "support spectrum exponent", "{:.2f}"),
]


def _values(rows: list[dict], key: str, groups: tuple[str, ...]) -> np.ndarray:
    v = np.array([r.get(key, np.nan) for r in rows if r["group"] in groups], dtype=float)
    return v[np.isfinite(v)]


def _range(v: np.ndarray, fmt: str, quantiles: bool) -> str:
    if len(v) == 0:
        return "-"
    if quantiles and len(v) >= 5:
        lo, hi = np.quantile(v, [0.1, 0.9])
        return f"{fmt.format(lo)}-{fmt.format(hi)}"
    return f"{fmt.format(v.min())}-{fmt.format(v.max())}"


def print_table(real: list[dict], sim: list[dict]) -> None:
    print(
        "\n| statistic | real Pt single atoms (11) | real HAADF/ABF lattices | real HRTEM | "
        "mix, single atoms: 10-90 % (min-max) | mix, HAADF lattices etc. | mix, HRTEM |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, name, fmt in STATS:
        cells = [
            _range(_values(real, key, ("Pt single atoms",)), fmt, False),
            _range(_values(real, key, ("HAADF", "ABF")), fmt, False),
            _range(_values(real, key, ("HRTEM",)), fmt, False),
        ]
        for groups in (("single",), ("haadf",), ("hrtem",)):
            v = _values(sim, key, groups)
            q = _range(v, fmt, True)
            cells.append(f"{q} ({_range(v, fmt, False)})" if len(v) >= 5 else q)
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nReal images, one by one:")
    keys = [k for k, _, _ in STATS]
    print("| image | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for r in real:
        vals = []
        for key, _, fmt in STATS:
            v = r.get(key, np.nan)
            vals.append(fmt.format(v) if isinstance(v, float) and math.isfinite(v) else "-")
        print(f"| {r['label']} | " + " | ".join(vals) + " |")


# --- figure --------------------------------------------------------------------------------
def _like(mix, rng, accept, pixel_size_nm: float, electrons: tuple[float, float], tries=5000):
    """The first recipe of the mix that ``accept`` takes, simulated at ``pixel_size_nm``
    with its electrons per probe position (or camera pixel) kept, whose effective
    electrons per pixel fall within ``electrons``: the mix's own images at the real
    sampling and dose."""
    from napari_atomseg.simulation import random_parameters, simulate
    from napari_atomseg.simulation.imagestats import fit_poisson_gaussian

    for _ in range(tries):
        p = random_parameters(rng, mix)
        if not accept(p):
            continue
        scale = (p.pixel_size_nm / pixel_size_nm) ** 2
        p = p.replace(
            pixel_size_nm=pixel_size_nm, shape_px=(256, 256), dose_e_per_A2=p.dose_e_per_A2 * scale
        )
        r = simulate(p)
        e = fit_poisson_gaussian(r.image).electrons_per_pixel
        if electrons[0] <= e <= electrons[1]:
            return p, r, e
    raise RuntimeError("no recipe of the mix matched")


def draw_figure(mix_path: str, path: str, seed: int) -> None:
    """Real micrographs beside images of the mix at the same sampling and dose."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from napari_atomseg import read_image
    from napari_atomseg.simulation import load_mix

    mix = load_mix(mix_path)
    rng = np.random.default_rng(seed)
    top = []
    for label, image_path, coords in [pt_items()[i] for i in (0, 2, 7)]:
        image, _ = read_image(image_path)
        t = pd.read_csv(coords)
        y, x = t.Y.to_numpy(float) - 128, t.X.to_numpy(float) - 128
        inside = (y >= 0) & (y < 256) & (x >= 0) & (x < 256)
        top.append((f"real Pt {label}", image[128:384, 128:384], y[inside], x[inside]))
    for _ in range(3):
        p, r, e = _like(
            mix,
            rng,
            lambda p: (
                p.scene == "single_atoms" and p.mode == "haadf" and p.single_atom_element == "Pt"
            ),
            0.029296875,
            (20.0, 100.0),
        )
        a = r.columns[(r.columns.region == "single_atom") & r.columns.visible]
        title = f"mix: Pt on {p.support_thickness_nm:.0f} nm C, {e:.0f} e/px"
        top.append((title, r.image, a.y_px.to_numpy(), a.x_px.to_numpy()))
    bottom = []
    for index, material, mode in (
        (0, "MoS2", "haadf"),
        (5, "SrTiO3", "haadf"),
        (8, "graphene", "hrtem"),
    ):
        item = REAL_PANEL[index]
        real = load_real(item)
        e_real = noise_stats(real)["electrons_per_pixel"]
        bottom.append((f"real {item.label}, {e_real:.3g} e/px", real[:256, :256], None, None))
        p, r, e = _like(
            mix,
            rng,
            lambda p, m=material, md=mode: (
                p.scene == "lattice" and p.mode == md and p.material == m
            ),
            item.pixel_size_nm,
            (e_real / 2, e_real * 2),
        )
        bottom.append(
            (f"mix: {material}, {p.energy_keV:.0f} kV, {e:.3g} e/px", r.image, None, None)
        )
    fig, axes = plt.subplots(2, 6, figsize=(18, 6.6))
    for ax_row, row in zip(axes, (top, bottom)):
        for ax, (title, image, ys, xs) in zip(ax_row, row):
            lo, hi = np.percentile(image, [0.5, 99.5])
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
            if ys is not None:
                ax.plot(xs, ys, "o", mfc="none", mec="tab:orange", ms=10, mew=0.7)
                ax.set_xlim(-0.5, 255.5)
                ax.set_ylim(255.5, -0.5)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    # A 64-colour palette at 64 dpi keeps the noisy panels near 250 kB (RGBA: 1.1 MB).
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=64, format="png")
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=64, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", default="configs/atoms_mix_v2.yaml")
    parser.add_argument("--n-sim", type=int, default=120)
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--figure", default=None)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    if not DATA.exists():
        raise SystemExit(f"real data not found at {DATA}")
    real = real_rows()
    sim = sim_rows(args.mix, args.n_sim, args.seed)
    print(f"mix {args.mix}: {len(sim)} simulated images (256 px), seed {args.seed}")
    print_table(real, sim)
    if args.figure:
        draw_figure(args.mix, args.figure, args.seed)


if __name__ == "__main__":
    main()
