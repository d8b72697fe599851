"""Run Atomap's distance maps and polarisation on given positions (for benchmarks/lattice.py).

Runs in Atomap's own virtual environment (it pins HyperSpy and its dependencies), never the
project's: ``/work/venvs/atomap/bin/python benchmarks/_atomap_driver.py IN.npz OUT.npz``.
Imports nothing from napari_atomseg. For every job ``k`` in IN.npz (``k_pos_a``: the
A-site columns (y, x) px, ``k_pos_b``: the B-site columns, ``k_image``: the image or
zeros, ``k_a_px``: the unstrained spacing in px), it writes to OUT.npz:

- ``k_xx`` / ``k_yy``: (x_mid, y_mid, strain) along the zone axis nearest x / y -- the
  distance between neighbouring A columns in an atom plane over the unstrained spacing,
  minus one, at the midpoint (Atomap's ``get_atom_distance_list_from_zone_vector``, the
  numbers behind ``get_atom_distance_map``);
- ``k_pol``: (y_b, x_b, disp_y, disp_x) px from ``get_polarization_from_second_sublattice``
  (Atomap's vector points from the B column to the middle of the four A columns; the
  displacement is its negative);
- ``k_seconds``: Atomap's time for the job (zone axes, distances, polarisation).
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np


def _axis_nearest(sublattice, direction_xy):
    best, best_cos = None, -1.0
    for zv in sublattice.zones_axis_average_distances[:4]:
        v = np.asarray(zv, dtype=float)
        cos = abs(v @ direction_xy) / np.linalg.norm(v)
        if cos > best_cos:
            best, best_cos = zv, cos
    return best


def run_job(pos_a, pos_b, image, a_px):
    import atomap.api as am

    t0 = time.perf_counter()
    sub_a = am.Sublattice(pos_a[:, ::-1], image=image)
    sub_a.construct_zone_axes()
    out = {}
    for name, direction in (("xx", np.array([1.0, 0.0])), ("yy", np.array([0.0, 1.0]))):
        zv = _axis_nearest(sub_a, direction)
        x, y, d = sub_a.get_atom_distance_list_from_zone_vector(zv)
        out[name] = np.column_stack([x, y, np.asarray(d) / a_px - 1.0])
    za_x = _axis_nearest(sub_a, np.array([1.0, 0.0]))
    za_y = _axis_nearest(sub_a, np.array([0.0, 1.0]))
    sub_b = am.Sublattice(pos_b[:, ::-1], image=image)
    s_p = sub_a.get_polarization_from_second_sublattice(za_x, za_y, sub_b)
    vec = np.asarray(s_p.metadata.vector_list, dtype=float).reshape(-1, 4)
    # (x_mid, y_mid, x_mid - x_b, y_mid - y_b) -> B position and displacement (y, x)
    x_b, y_b = vec[:, 0] - vec[:, 2], vec[:, 1] - vec[:, 3]
    out["pol"] = np.column_stack([y_b, x_b, -vec[:, 3], -vec[:, 2]])
    out["seconds"] = np.array(time.perf_counter() - t0)
    return out


def main(inp: str, outp: str) -> None:
    warnings.filterwarnings("ignore")
    data = np.load(inp)
    jobs = sorted({k.rsplit("_", 2)[0] for k in data.files if k.endswith("_pos_a")})
    results = {}
    for job in jobs:
        try:
            res = run_job(
                data[f"{job}_pos_a"],
                data[f"{job}_pos_b"],
                data[f"{job}_image"],
                float(data[f"{job}_a_px"]),
            )
            for key, value in res.items():
                results[f"{job}_{key}"] = value
        except Exception as exc:  # reported to the benchmark, which says so in its table
            results[f"{job}_error"] = np.array(repr(exc)[:500])
        print(f"atomap: {job} done", file=sys.stderr, flush=True)
    np.savez(outp, **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
