"""Quadrature on 2-D latent grids, shared by every part that integrates over z: grids, their
log-integrals and moments, posterior windows (Windows), and the neighbourhood, edge-ring and
second-difference helpers of square grids."""
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np

from ..core.logspace import logsumexp, softplus


def latent_grid(low=-4.0, high=4.0, spacing=0.1, center=(0.0, 0.0)):
    """Equally spaced 2-D points: (z_grid (G, 2), axis (K,)) with G = K * K.

    The axis runs from center + low to center + high in steps of spacing; z_grid lists
    the points in row-major order (z_grid.reshape(K, K, 2)[i, j] = (axis[j], axis[i])
    shifted by center), so values over it reshape to a (K, K) image for contour plots.
    """
    if not spacing > 0:
        raise ValueError(f"grid spacing must be > 0, got {spacing}")
    if not high > low:
        raise ValueError(f"grid bounds must satisfy low < high, got [{low}, {high}]")
    steps = int(round((high - low) / spacing))
    axis = low + spacing * np.arange(steps + 1)
    z1, z2 = np.meshgrid(axis + center[0], axis + center[1])
    return np.stack([z1.ravel(), z2.ravel()], axis=1), axis


def log_integrate_grid(log_f, dz, points_per_axis):
    """log of the Riemann sum of exp(log_f) over a 2-D grid of K x K points, spacing dz.

    log_f holds the values at the grid points in one of two layouts, told apart by K =
    points_per_axis: (..., K * K), flat in latent_grid's order, or (..., K, K), the same
    reshaped to an image. Every point is summed. dz: a number, or an array of spacings
    broadcasting against the leading axes (...) (one grid per row, e.g. posterior
    windows). Returns (...). Any other layout is refused: a (K, K) array read as K flat
    grids would give K one-dimensional sums.
    """
    shape = np.shape(log_f)
    if not (isinstance(points_per_axis, (int, np.integer)) and points_per_axis >= 2):
        raise ValueError(f"points_per_axis must be an integer >= 2 (one point is no grid, and (..., 1, 1) would "
                         f"read as flat), got {points_per_axis!r}")
    if not np.all(np.asarray(dz) > 0):
        raise ValueError(f"grid spacing must be > 0, got {dz}")
    size = int(points_per_axis)
    if shape[-1:] == (size * size,):
        axes = -1
    elif shape[-2:] == (size, size):
        axes = (-2, -1)
    else:
        raise ValueError(f"log_f must hold a grid of {size} x {size} points as (..., {size * size}) "
                         f"(flat, as latent_grid lists them) or (..., {size}, {size}), got shape {shape}")
    return logsumexp(log_f, axis=axes) + 2.0 * anp.log(dz)


def grid_log_likelihood(logits, x):
    """log p(x|z) for every image and every grid point in one matrix product.

    logits (G, 784) decoded once for the grid, x (N, 784) -> (N, G). Bernoulli in the
    expanded form x . logits - sum_d softplus(logits_d): the image enters only through
    a dot product, so all images share the grid's decoding.
    """
    return x @ logits.T - log_partition(logits)


def log_partition(logits, rows_per_block=256, dtype=None):
    """sum_d softplus(logits_d), the part of log p(x|z) that does not depend on x: (..., D) -> (...),
    summed in dtype (by default that of logits).

    In blocks of rows small enough to stay in cache: softplus's passes over millions of decoded
    points otherwise cost as much as the decoding."""
    rows = logits.reshape(-1, logits.shape[-1])
    out = np.empty(len(rows), logits.dtype if dtype is None else dtype)
    for start in range(0, len(rows), rows_per_block):
        out[start:start + rows_per_block] = np.sum(softplus.fun(rows[start:start + rows_per_block]), axis=-1,
                                                   dtype=out.dtype)
    return out.reshape(logits.shape[:-1])


def log_sum_exp(a, axis=-1):
    """logsumexp of finite a along one axis, without float64 exp's slow path: exponents below -700
    are raised to it (exp(-700) = 1e-304, lost next to the largest term, 1), since exp takes ~15 times
    longer on the arguments it underflows, and a posterior on a grid is mostly such points."""
    shift = np.max(a, axis=axis, keepdims=True)
    terms = np.subtract(a, shift, dtype=np.float64)
    np.maximum(terms, -700.0, out=terms)
    np.exp(terms, out=terms)
    return np.log(np.sum(terms, axis=axis)) + np.squeeze(shift, axis)


def grid_moments(z_grid, log_f):
    """Mean and std (..., 2) of the density proportional to exp(log_f) (..., G) on z_grid (..., G, 2)."""
    weights = np.exp(log_f - logsumexp(log_f, axis=-1, keepdims=True))[..., None]
    mean = np.sum(weights * z_grid, axis=-2)
    var = np.sum(weights * (z_grid - mean[..., None, :])**2, axis=-2)
    return mean, np.sqrt(var)


def covering_grids(means, stds, num_points, num_stds):
    """Square grids (N, num_points**2, 2) and spacings (N,) covering mean +- num_stds * std.

    means, stds: (N, M, 2), M Gaussians per grid. Square so contours keep their shape.
    """
    low = np.min(means - num_stds * stds, axis=1)
    high = np.max(means + num_stds * stds, axis=1)
    center, half_width = (low + high) / 2, np.max(high - low, axis=1) / 2
    dz = 2 * half_width / (num_points - 1)
    unit_grid, _ = latent_grid(-1.0, 1.0, 2.0 / (num_points - 1))
    return center[:, None, :] + half_width[:, None, None] * unit_grid, dz


def square_windows(centers, half_widths, num_points):
    """Square grids (N, num_points**2, 2) centred at centers (N, 2), half_widths (N,); and spacings (N,)."""
    unit_grid, _ = latent_grid(-1.0, 1.0, 2.0 / (num_points - 1))
    return centers[:, None, :] + half_widths[:, None, None] * unit_grid, 2 * half_widths / (num_points - 1)


@dataclass(frozen=True, eq=False)
class Windows:
    """Square grids, one per image, and log p(x, z) on them (posterior.posterior_windows).

    z_grids (N, G, 2), G = K * K points in latent_grid's order; dz (N,) their spacings;
    log_joint (N, G). Integrate with log_integrate_grid(log_joint, dz, K).
    """
    z_grids: np.ndarray
    dz: np.ndarray
    log_joint: np.ndarray


def quadrature_kl(log_q, log_p, dz):
    """KL(q || p) = sum q (log q - log p) dz^2 for normalized log-densities (N, G) on windows."""
    return np.sum(np.exp(log_q) * (log_q - log_p), axis=-1) * dz**2


def edge_mass(log_f, num_points):
    """Share of the mass of exp(log_f) (N, K*K) on each square window's outermost ring of points (N,).

    A posterior cut off by its window leaves a visible share there; one the window holds
    whole leaves only its far tail (~1e-6 for a Gaussian at 5 stds).
    """
    on_edge = edge_ring(num_points).ravel()
    return np.exp(logsumexp(log_f[:, on_edge], axis=-1) - logsumexp(log_f, axis=-1))


def edge_ring(points_per_axis):
    """The outermost ring of points of a K x K grid, K = points_per_axis: (K, K) bool."""
    on_edge = np.ones((points_per_axis, points_per_axis), bool)
    on_edge[1:-1, 1:-1] = False
    return on_edge


def neighbourhood_max(a, fill, include_centre=True):
    """The largest value in each point's 3 x 3 neighbourhood over the last two axes of a.

    a (..., K, L) -> (..., K, L); points beyond the edge count as fill. Without
    include_centre, only the 8 neighbours count. On a bool array the max is an "or": a
    mask grown by one point in all eight directions.
    """
    rows, columns = a.shape[-2:]
    padded = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)], constant_values=fill)
    out = None
    for di in range(3):
        for dj in range(3):
            if include_centre or (di, dj) != (1, 1):
                shifted = padded[..., di:di + rows, dj:dj + columns]
                out = shifted.copy() if out is None else np.maximum(out, shifted, out=out)
    return out


def hdr_mask(log_density, mass):
    """The grid points (G,) -> bool (G,) of the highest-density region holding mass of exp(log_density)."""
    order = np.argsort(log_density)[::-1]
    cumulative = np.cumsum(np.exp(log_density[order] - logsumexp(log_density)))
    mask = np.zeros(len(log_density), bool)
    mask[order[:np.searchsorted(cumulative, mass) + 1]] = True
    return mask


def largest_curvature(log_f, near):
    """(B,): the largest |second difference| of log_f (B, K, L) along either axis, at the points
    where near (B, K, L) holds (0 if none)."""
    out = np.zeros(len(log_f))
    for before, centre, after in (np.s_[:, :-2, :], np.s_[:, 1:-1, :], np.s_[:, 2:, :]), \
                                 (np.s_[:, :, :-2], np.s_[:, :, 1:-1], np.s_[:, :, 2:]):
        second = np.multiply(log_f[centre], -2.0)  # in place from here: (after - 2 centre) + before, rounded so
        second += log_f[after]
        second += log_f[before]
        np.abs(second, out=second)
        np.maximum(out, np.max(second, axis=(1, 2), where=near[centre], initial=0.0), out=out)
    return out


def curvature_at(log_f, b, i, j):
    """largest_curvature(log_f, near) in float64, given near's np.nonzero indices (b, i, j): the same
    numbers, at the cost of the points listed rather than of the whole grid."""
    out = np.zeros(len(log_f))
    for along, di, dj in ((i, 1, 0), (j, 0, 1)):
        inner = (along > 0) & (along < log_f.shape[1 + dj] - 1)
        bb, ii, jj = b[inner], i[inner], j[inner]
        second = (np.asarray(log_f[bb, ii + di, jj + dj], np.float64) - 2 * np.asarray(log_f[bb, ii, jj], np.float64)
                  + log_f[bb, ii - di, jj - dj])
        np.maximum.at(out, bb, np.abs(second))
    return out

