"""Precision, recall, density and coverage against the authors' `prdc` package on the same features,
and the toy metric against --reference / the scikit-learn digits."""

from __future__ import annotations

import numpy as np
import pytest

from benchkit.core.errors import BenchkitError
from metrics import prdc as ours


def _clouds(seed: int, n_real: int, n_fake: int, dim: int, shift: float):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, dim)).astype(np.float32)
    fake = (rng.normal(size=(n_fake, dim)) * 1.3 + shift).astype(np.float32)
    return real, fake


@pytest.mark.parametrize("seed,n_real,n_fake,dim,shift,k", [
    (0, 200, 150, 16, 0.3, 5), (1, 64, 97, 64, 0.3, 5), (2, 120, 120, 8, 0.0, 3), (3, 40, 300, 32, 0.5, 7),
])
def test_prdc_matches_the_prdc_package(seed, n_real, n_fake, dim, shift, k, monkeypatch, capsys):
    from prdc import compute_prdc

    real, fake = _clouds(seed, n_real, n_fake, dim, shift)
    expected = compute_prdc(real, fake, k)
    monkeypatch.setattr(ours, "BLOCK", 37)  # distances in row blocks must not change a single comparison
    got = ours.compute_prdc(real, fake, k)
    assert got == {key: pytest.approx(float(v), abs=1e-12) for key, v in expected.items()}
    # the four numbers say different things here: not one value repeated
    assert len({round(v, 6) for v in got.values()}) >= 3


def test_prdc_orders_a_shifted_cloud_below_a_matching_one():
    real, near = _clouds(5, 300, 300, 16, 0.0)
    _, far = _clouds(6, 300, 300, 16, 3.0)
    close, away = ours.compute_prdc(real, near), ours.compute_prdc(real, far)
    for key in ("precision", "recall", "density", "coverage"):
        assert close[key] > away[key]


def test_prdc_needs_more_than_k_images_on_each_side():
    real, fake = _clouds(0, 20, 5, 4, 0.0)
    with pytest.raises(BenchkitError, match="more than 5 images"):
        ours.compute_prdc(real, fake, 5)


def test_knn_radii_are_the_k_th_neighbour_not_counting_the_point():
    pts = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    # from 0: others at distances 1, 3, 6, 10 -> the 2nd nearest is 3; from 6: 3 (to 3), 4 (to 10), 5, 6 -> 4
    assert ours.knn_radii(pts, 2).tolist() == [3.0, 2.0, 3.0, 4.0, 7.0]
