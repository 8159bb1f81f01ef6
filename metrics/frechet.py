"""Frechet distance between two Gaussians, in float64 with a stable matrix square root.

FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).
The trace term is computed as the sum of square roots of the eigenvalues of the symmetric
PSD matrix S1^(1/2) S2 S1^(1/2), which has the same eigenvalues as S1 S2. Unlike
scipy.linalg.sqrtm on the non-symmetric S1 S2 (clean-fid, pytorch-fid) this needs no
complex part to be discarded and no diagonal offset on singular covariances. Eigenvalues
below the numerical-rank tolerance (dim * eps * largest, as numpy.linalg.matrix_rank uses)
are rounding noise around zero (dead feature units give exactly singular covariances); they
are set to zero, because a square root would magnify 1e-16 of noise into 1e-8 of FID.
"""

from __future__ import annotations

import numpy as np


def _clip_noise(eigenvalues: np.ndarray) -> np.ndarray:
    tol = eigenvalues.size * np.finfo(np.float64).eps * max(float(np.abs(eigenvalues).max()), 0.0)
    return np.where(eigenvalues > tol, eigenvalues, 0.0)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(_clip_noise(w))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    s1 = (s1 + s1.T) / 2
    s2 = (s2 + s2.T) / 2
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = np.sqrt(_clip_noise(eig)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def weighted_frechet_distances(feats: np.ndarray, weights: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray) -> np.ndarray:
    """The Frechet distance to (mu_r, sigma_r) of each weighting of the rows of ``feats``: row i of ``weights``
    counts how often each feature row is in that sample (a bootstrap resample), and the sample's mean and
    unbiased covariance are those of the rows repeated that often.

    With A the rows centred on the sample's mean and scaled by sqrt(w / (N - 1)) (undrawn rows are zero), the
    sample covariance is A^T A, and tr((S S_r)^(1/2)) is the sum of the square roots of the eigenvalues of
    S_r^(1/2) A^T A S_r^(1/2) (d x d) or, when there are fewer rows n than dimensions d, of A S_r A^T (n x n),
    which has the same nonzero eigenvalues: O(min(n, d)^3) per sample, all samples in one batched call.
    """
    x = np.asarray(feats, np.float64)
    w = np.asarray(weights, np.float64)
    s_r = (np.asarray(sigma_r, np.float64) + np.asarray(sigma_r, np.float64).T) / 2
    total = w.sum(axis=1)
    mu = (w @ x) / total[:, None]  # (samples, d)
    a = (x[None, :, :] - mu[:, None, :]) * np.sqrt(w / (total - 1)[:, None])[:, :, None]  # (samples, n, d)
    if x.shape[0] < x.shape[1]:
        inner = a @ s_r @ a.transpose(0, 2, 1)
    else:
        root_r = _sqrt_psd(s_r)
        inner = root_r @ (a.transpose(0, 2, 1) @ a) @ root_r
    eig = np.linalg.eigvalsh((inner + inner.transpose(0, 2, 1)) / 2)
    tr_covmean = np.array([np.sqrt(_clip_noise(e)).sum() for e in eig])
    diff = mu - np.asarray(mu_r, np.float64)
    return (diff * diff).sum(axis=1) + (a * a).sum(axis=(1, 2)) + float(np.trace(s_r)) - 2.0 * tr_covmean
