"""Frechet distance against a closed form and against the scipy.sqrtm formula of clean-fid."""

import numpy as np
import pytest
from scipy import linalg

from metrics.base import FeatureMoments
from metrics.frechet import frechet_distance


def scipy_reference(mu1, s1, mu2, s2):
    """pytorch-fid / clean-fid's formula, written out independently."""
    covmean = linalg.sqrtm(s1.dot(s2))
    covmean = covmean.real
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def test_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(5.0 + (1 + 4 - 4) + (4 + 1 - 4) + (9 + 1 - 6))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scipy_sqrtm(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(300, 16)) * 1.5 + 0.3
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(scipy_reference(mu1, s1, mu2, s2), rel=1e-9)


def test_identical_is_zero_and_singular_is_finite():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 10))  # 5 samples in 10 dims: rank-deficient covariance
    mu, s = x.mean(0), np.cov(x, rowvar=False)
    # the zero eigenvalues of a singular covariance are rounding noise; they must not leak in
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-9 * np.trace(s)
    assert np.isfinite(frechet_distance(mu, s, mu + 1, np.eye(10)))


def test_moments_match_numpy_and_merge():
    rng = np.random.default_rng(4)
    f = rng.normal(size=(101, 6))
    whole = FeatureMoments(6)
    whole.update(f)
    a, b = FeatureMoments(6), FeatureMoments(6)
    a.update(f[:40])
    b.update(f[40:])
    a.merge(b)
    for m in (whole, a):
        mu, cov = m.mean_cov()
        np.testing.assert_allclose(mu, f.mean(0), rtol=1e-12)
        np.testing.assert_allclose(cov, np.cov(f, rowvar=False), rtol=1e-10, atol=1e-12)
