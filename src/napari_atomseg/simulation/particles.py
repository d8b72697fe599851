"""Nanoparticles (ase.cluster) and small clusters, oriented for viewing along the beam.

Particles are built once per (element, shape, size) and cached; each image only rotates
the cached atoms. The beam is along +z; returned positions are (y, x, depth) in Angstrom
centred on the particle's centre of mass.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from ase.cluster import Decahedron, Icosahedron, Octahedron

from .materials import get_material


def _rotation_to_z(axis: np.ndarray) -> np.ndarray:
    """Rotation matrix taking unit vector ``axis`` onto +z (Rodrigues)."""
    a = axis / np.linalg.norm(axis)
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(a, z)
    c = float(a @ z)
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * (1 / (1 + c))


def rotation_about_z(angle_rad: float) -> np.ndarray:
    """3 x 3 rotation by ``angle_rad`` about the beam (z) axis."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def tilt_rotation(tilt_rad: float, azimuth_rad: float) -> np.ndarray:
    """Small tilt of the beam axis by ``tilt_rad`` towards azimuth ``azimuth_rad``."""
    axis = np.array([-np.sin(azimuth_rad), np.cos(azimuth_rad), 0.0])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(tilt_rad) * k + (1 - np.cos(tilt_rad)) * k @ k


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random 3-D rotation (from a random unit quaternion)."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _diameter(positions: np.ndarray) -> float:
    centred = positions - positions.mean(0)
    return 2.0 * float(np.sqrt((centred**2).sum(1)).max())


@lru_cache(maxsize=256)
def _cluster(element: str, shape: str, diameter_A: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (centred, Angstrom) and symmetry axes of the closest-size cluster.

    Sizes follow from the shapes' geometry (diameter / nearest-neighbour distance is
    ~1.73 (p - 1) + 2.45 r for Marks decahedra, ~1.1 (L - 1) for octahedra truncated by
    a third, 2 (shells - 1) for icosahedra); the two or three nearest sizes are built and
    the closest kept, so a new size costs milliseconds.
    """
    a = get_material(element).lattice_constant_A
    nn = a / np.sqrt(2)
    ratio = diameter_A / nn
    candidates = []
    if shape == "octahedron":
        guess = round(ratio / 1.1) + 1
        for length in range(max(3, guess - 1), guess + 2):
            cutoff = round((length - 1) * 0.3)
            candidates.append(
                lambda L=length, c=cutoff: Octahedron(element, L, c, latticeconstant=a)
            )
    elif shape == "decahedron":
        r = 1 if ratio > 6 else 0
        guess = round((ratio - 2.45 * r) / 1.73) + 1
        for p in range(max(2, guess - 1), guess + 2):
            candidates.append(
                lambda p=p: Decahedron(element, p, max(1, p // 3), r, latticeconstant=a)
            )
    elif shape == "icosahedron":
        guess = round(ratio / 2) + 1
        for shells in range(max(2, guess - 1), guess + 2):
            candidates.append(lambda n=shells: Icosahedron(element, n, latticeconstant=a))
    else:  # pragma: no cover - validated earlier
        raise ValueError(shape)
    best = None
    for make in candidates:
        pos = make().positions
        d = _diameter(pos)
        if best is None or abs(d - diameter_A) < abs(best[0] - diameter_A):
            best = (d, pos)
    assert best is not None
    pos = best[1] - best[1].mean(0)
    pos.setflags(write=False)
    return pos, _symmetry_axes(pos, shape)


def _symmetry_axes(pos: np.ndarray, shape: str) -> np.ndarray:
    """Unit vectors: [5fold, 3fold, 2fold] for icosahedra, [5fold, 2fold] for decahedra."""
    if shape == "decahedron":
        five = np.array([0.0, 0.0, 1.0])
        equator = pos[np.abs(pos[:, 2]) < 0.5]
        if len(equator) == 0:
            equator = pos
        corner = equator[np.argmax((equator[:, :2] ** 2).sum(1))]
        two = np.array([corner[0], corner[1], 0.0])
        return np.array([five, two / np.linalg.norm(two), two / np.linalg.norm(two)])
    if shape == "icosahedron":
        r = np.linalg.norm(pos, axis=1)
        vertices = pos[r > r.max() - 0.01]
        v0 = vertices[0]
        dots = vertices @ v0 / np.linalg.norm(v0) ** 2
        neighbours = vertices[np.argsort(-dots)[1:3]]  # the two nearest vertices
        three = v0 + neighbours[0] + neighbours[1]
        two = v0 + neighbours[0]
        axes = [v0, three, two]
        return np.array([a / np.linalg.norm(a) for a in axes])
    return np.eye(3)


def oriented_particle(
    element: str,
    shape: str,
    axis: str,
    diameter_A: float,
    rotation_rad: float,
    tilt_rad: float,
    tilt_azimuth_rad: float,
    rng: np.random.Generator | None = None,
    random_orientation: bool = False,
) -> np.ndarray:
    """Atom positions (n, 3) as (y, x, depth) Angstrom, centred, viewed along ``axis``."""
    from .materials import parse_zone_axis

    # Sizes are binned to 2 A so the cache is reused across images.
    pos, axes = _cluster(element, shape, 2.0 * round(float(diameter_A) / 2.0))
    if random_orientation:
        assert rng is not None
        rot = random_rotation(rng)
    else:
        if shape == "octahedron":
            direction = np.array(parse_zone_axis(axis), dtype=float)
        elif shape == "decahedron":
            direction = axes[0] if axis == "5fold" else axes[1]
        else:
            direction = axes[{"5fold": 0, "3fold": 1, "2fold": 2}[axis]]
        rot = tilt_rotation(tilt_rad, tilt_azimuth_rad) @ rotation_about_z(rotation_rad)
        rot = rot @ _rotation_to_z(direction)
    xyz = pos @ rot.T
    return np.stack([xyz[:, 1], xyz[:, 0], xyz[:, 2]], axis=1)


def small_cluster(element: str, n_atoms: int, rng: np.random.Generator) -> np.ndarray:
    """A compact cluster of ``n_atoms`` (1-13) atoms, randomly oriented: (y, x, depth) A."""
    from ase.data import atomic_numbers, covalent_radii

    bond = 2 * covalent_radii[atomic_numbers[element]] * 1.05
    # Cut a compact piece out of a 13-atom icosahedron with the right bond length.
    ico = Icosahedron("Au", 2, latticeconstant=bond * np.sqrt(2)).positions
    ico = ico - ico.mean(0)
    start = ico[rng.integers(len(ico))]
    order = np.argsort(np.linalg.norm(ico - start, axis=1))
    piece = ico[order[: max(1, min(13, n_atoms))]]
    piece = (piece - piece.mean(0)) @ random_rotation(rng).T
    return np.stack([piece[:, 1], piece[:, 0], piece[:, 2]], axis=1)
