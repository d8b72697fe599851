"""The shipped finder on plain lattices no training set resembles, beside blob_log.

The cases issue 18 measured (the finder put columns between widely spaced columns: precision
0.00-0.85 where blob_log had 1.00). Wherever blob_log at the column scale reaches precision
and recall >= 0.98, so must the finder with its defaults. The whole grid is
``benchmarks/atoms_stress.py``.
"""

from __future__ import annotations

import pytest
from benchmarks.atoms_stress import ISSUE_CASES, PIXEL_SIZE_NM, blob_log_tuned, cases, score

from napari_atomseg.atoms.find import find_atoms

ISSUE = [
    c for c in cases(quick=True) if (c.kind, c.basis, c.spacing_nm, c.noise, c.ramp) in ISSUE_CASES
]


def test_every_issue_case_is_in_the_suite():
    assert len(ISSUE) == len(ISSUE_CASES)


@pytest.mark.parametrize("case", ISSUE, ids=lambda c: c.name)
def test_no_columns_where_the_image_has_none(case):
    _, (blob_precision, blob_recall) = blob_log_tuned(case, tune_seed=101)
    assert min(blob_precision, blob_recall) >= 0.98  # a case a classical detector solves
    ideal = case.image()
    found = find_atoms(ideal.image, PIXEL_SIZE_NM, threads=1)
    precision, recall = score(found[["y_px", "x_px"]].to_numpy(), ideal)
    assert precision >= 0.98, f"{case.name}: {len(found)} points, precision {precision:.3f}"
    assert recall >= 0.98, f"{case.name}: recall {recall:.3f}"
