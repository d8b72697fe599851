"""Accurate but slow imaging with abTEM multislice, to validate the fast models.

``mode="haadf_multislice"`` scans an abTEM ``Probe`` over the (scan-distorted) pixel
positions through a frozen-phonon potential of the very same atoms and integrates an
``AnnularDetector``; ``mode="hrtem_multislice"`` propagates a ``PlaneWave`` and applies
abTEM's ``CTF`` with the same aberrations and partial-coherence envelopes. Both then go
through the same detector noise and ground truth as the fast models (the fast model of
the same scene supplies the columns' visibility estimates). Meant for fields of a few nm:
validation rejects larger fields, and the work yields Progress per block of scan lines
so it can be cancelled.

abTEM is imported here only. Its arrays are (x, y); we hand it our (row, col) as its
(x, y), so arrays need no transposing and angles measured from our column axis become
pi/2 - angle in abTEM.
"""

from __future__ import annotations

import numpy as np

from .._progress import Progress
from .potentials import debye_waller_sigma_A
from .render import RenderGrid
from .scene import Scene

#: depth (Angstrom) of one multislice slice
SLICE_THICKNESS_A = 1.0
#: abTEM settings for these one-off runs: FFTW_MEASURE (abTEM's default) spends longer
#: planning each new FFT shape than a small validation field spends transforming
ABTEM_CONFIG = {"fftw.planning_effort": "FFTW_ESTIMATE"}


def scene_atoms(scene: Scene, grid: RenderGrid):
    """ase.Atoms of every explicit atom, in abTEM's frame (cell = the internal grid).

    Contamination lies on top (entered first by the beam), the crystal, particles and
    single atoms below it, the amorphous support at the bottom.
    """
    from ase import Atoms

    if np.isnan(scene.point_depth_A).any():
        raise ValueError("multislice needs a scene built with explicit=True")
    depth = scene.point_depth_A.copy()
    layer = scene.point_layer
    top = float(depth[layer == 2].max()) + 1.0 if (layer == 2).any() else 0.0
    structure = layer == 0
    depth[structure] -= depth[structure].min() if structure.any() else 0.0
    depth[structure] += top
    bottom = float(depth[structure].max()) + 1.0 if structure.any() else top
    depth[layer == 1] += bottom
    depth += 2.0  # a little vacuum above the first atom
    y0, x0 = grid.origin_A
    positions = np.stack([scene.point_yx_A[:, 0] - y0, scene.point_yx_A[:, 1] - x0, depth], axis=1)
    symbols = np.asarray(scene.elements, dtype=object)[scene.point_element]
    extent = (grid.shape[0] * grid.sampling_A, grid.shape[1] * grid.sampling_A)
    cell = [extent[0], extent[1], float(depth.max()) + 2.0]
    atoms = Atoms(symbols=list(symbols), positions=positions, cell=cell, pbc=True)
    atoms.wrap()
    return atoms


def _frozen_phonons(atoms, n_configs: int, seed: int):
    import abtem

    if n_configs <= 1:
        return atoms
    sigmas = {s: debye_waller_sigma_A(s) for s in set(atoms.get_chemical_symbols())}
    return abtem.FrozenPhonons(atoms, num_configs=n_configs, sigmas=sigmas, seed=seed)


def haadf_multislice_steps(p, scene: Scene, grid: RenderGrid, probe_yx_A, rng):
    """Generator: yields Progress, returns the ADF fraction at each output pixel (H, W)."""
    import abtem
    import dask

    from . import optics

    h, w = p.shape_px
    atoms = scene_atoms(scene, grid)
    sampling = p.multislice_sampling_nm * 10
    extent = (grid.shape[0] * grid.sampling_A, grid.shape[1] * grid.sampling_A)
    gpts = tuple(int(np.ceil(e / sampling)) for e in extent)
    seed = int(rng.integers(0, 2**31 - 1))
    potential = abtem.Potential(
        _frozen_phonons(atoms, p.frozen_phonons, seed),
        gpts=gpts,
        slice_thickness=SLICE_THICKNESS_A,
        projection="infinite",
        parametrization="lobato",
    )
    probe = abtem.Probe(
        energy=p.energy_keV * 1e3,
        semiangle_cutoff=p.convergence_mrad,
        defocus=p.defocus_nm * 10,
        Cs=p.cs_um * 1e4,
        astigmatism=p.astigmatism_nm * 10,
        astigmatism_angle=np.pi / 2 - np.deg2rad(p.astigmatism_angle_deg),
    )
    detector = abtem.AnnularDetector(inner=p.adf_inner_mrad, outer=p.adf_outer_mrad)
    if probe_yx_A is None:
        px = p.pixel_size_nm * 10
        r, c = np.meshgrid(np.arange(h) * px, np.arange(w) * px, indexing="ij")
    else:
        r, c = probe_yx_A
    positions = np.stack([r - grid.origin_A[0], c - grid.origin_A[1]], axis=-1)
    out = np.zeros((h, w))
    rows_per_block = max(1, 256 // w)
    with dask.config.set(scheduler="synchronous"), abtem.config.set(ABTEM_CONFIG):
        potential = potential.build().compute()
        for start in range(0, h, rows_per_block):
            stop = min(h, start + rows_per_block)
            block = positions[start:stop].reshape(-1, 2)
            measured = probe.scan(
                potential, scan=abtem.CustomScan(block), detectors=detector, lazy=False
            )
            values = np.asarray(measured.array, dtype=np.float64)
            if values.ndim > 1:  # an ensemble axis left unreduced
                values = values.reshape(-1, len(block)).mean(axis=0)
            out[start:stop] = values.reshape(stop - start, w)
            yield Progress(stop, h, f"multislice scan: {stop}/{h} lines")
    # The finite source blurs the scan (incoherently), as in the fast model.
    sigma_px = optics.fwhm_to_sigma(p.source_size_nm * 10) / (p.pixel_size_nm * 10)
    if sigma_px > 0.05:
        from scipy.ndimage import gaussian_filter

        out = gaussian_filter(out, sigma_px, mode="nearest")
    return out.astype(np.float32)


def hrtem_multislice_steps(p, scene: Scene, grid: RenderGrid, rng):
    """Generator: yields Progress, returns the image intensity at output pixels (H, W)."""
    import abtem
    import dask

    atoms = scene_atoms(scene, grid)
    # The multislice grid is the internal grid refined by an integer factor, so that the
    # result bins back onto it exactly.
    factor = max(1, int(np.ceil(grid.sampling_A / (p.multislice_sampling_nm * 10) - 1e-9)))
    gpts = (grid.shape[0] * factor, grid.shape[1] * factor)
    seed = int(rng.integers(0, 2**31 - 1))
    n_configs = max(1, p.frozen_phonons // 2)
    yield Progress(0, 3, "multislice: building the potential")
    with dask.config.set(scheduler="synchronous"), abtem.config.set(ABTEM_CONFIG):
        potential = (
            abtem.Potential(
                _frozen_phonons(atoms, n_configs, seed),
                gpts=gpts,
                slice_thickness=SLICE_THICKNESS_A,
                projection="infinite",
                parametrization="lobato",
            )
            .build()
            .compute()
        )
        yield Progress(1, 3, "multislice: propagating the plane wave")
        exit_wave = abtem.PlaneWave(energy=p.energy_keV * 1e3).multislice(potential).compute()
        yield Progress(2, 3, "multislice: objective lens")
        ctf = abtem.CTF(
            energy=p.energy_keV * 1e3,
            semiangle_cutoff=p.objective_aperture_mrad or np.inf,
            defocus=p.defocus_nm * 10,
            Cs=p.cs_um * 1e4,
            astigmatism=p.astigmatism_nm * 10,
            astigmatism_angle=np.pi / 2 - np.deg2rad(p.astigmatism_angle_deg),
            focal_spread=p.focal_spread_nm * 10,
            angular_spread=p.angular_spread_mrad,
        )
        intensity = exit_wave.apply_ctf(ctf).intensity().compute()
        array = np.asarray(intensity.array, dtype=np.float64)
    while array.ndim > 2:  # average the frozen-phonon (and any other) ensemble axes
        array = array.mean(axis=0)
    if factor > 1:
        ny, nx = grid.shape
        array = array.reshape(ny, factor, nx, factor).mean(axis=(1, 3))
    yield Progress(3, 3, "multislice done")
    return grid.bin_to_output(array).astype(np.float32)
