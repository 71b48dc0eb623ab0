"""Exact integrals over the 2-D latent plane (study part 3).

With two latent dimensions, log p(x) = log of the integral of p(x|z) p(z) dz can be
computed by quadrature instead of bounded. Everything stays in log space: the
integrand p(x|z) p(z) of a 784-pixel image is around exp(-150), and for unlikely images
below exp(-745), where float64 underflows to 0; logsumexp never leaves log space.
"""
import warnings

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive
from matplotlib.figure import Figure

from .distributions import softplus
from .elbo import log_importance_weights, log_prior
from .images import check_images
from .model import data_dim, decoder, params_dtype


@primitive
def logsumexp(a, axis=None, keepdims=False):
    """log(sum(exp(a))) along axis without overflow or underflow.

    Shifts by the maximum, so [1000, 1000] gives 1000 + log 2 and [-1000, -1000] gives
    -1000 + log 2; -inf entries contribute nothing; all -inf gives -inf. Integers and
    booleans are summed as float64 (their log-sum-exp is not an integer).
    """
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.inexact):
        a = a.astype(np.float64)
    shift = np.max(a, axis=axis, keepdims=True, initial=-np.inf)
    shift = np.where(np.isfinite(shift), shift, 0.0)  # all -inf (or +inf): no shift
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer for all -inf
        out = np.log(np.sum(np.exp(a - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


def _logsumexp_vjp(ans, a, axis=None, keepdims=False):
    full = ans if keepdims or axis is None else anp.expand_dims(ans, axis)
    if axis is None and not keepdims:
        full = anp.reshape(ans, (1,) * anp.ndim(a))
    # d/da logsumexp(a) = softmax(a) = exp(a - ans)
    return lambda g: anp.reshape(g, anp.shape(full)) * anp.exp(a - full)


defvjp(logsumexp, _logsumexp_vjp)


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
    if not (isinstance(points_per_axis, (int, np.integer)) and points_per_axis >= 1):
        raise ValueError(f"points_per_axis must be a positive integer, got {points_per_axis!r}")
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
    return x @ logits.T - np.sum(softplus(logits), axis=-1)


def log_marginal_likelihood(dec_params, x, bound=10.0, spacing=0.2, refine=8, check=1e-4,
                            threshold=25.0, block_size=1000, return_info=False):
    """log p(x) = log of the integral of p(x|z) p(z) over [-bound, bound]^2, per image.

    x (N, 784) binary -> (N,). Trained posteriors have standard deviations of a few hundredths,
    too narrow for a coarse grid, while a fine shared grid would cost minutes for the test
    set. The plane is cut into cells of side `spacing` centred on the points of
    latent_grid(-bound, bound, spacing), and:
      1. p(x, z) is evaluated at every cell centre for all images (the grid is decoded
         once; one matrix product per block of images), giving the midpoint rule I_h.
      2. For a smooth integrand the error of this rule falls faster than any power of
         the spacing (about exp(-2 pi^2 sigma^2 / h^2) for a Gaussian of std sigma), so
         if I_h agrees with I_2h (every other point) within `check` in log, I_h is far
         more accurate still and is kept as it is.
      3. Otherwise the posterior is too narrow for the grid: the cells within `threshold`
         nats of the image's largest cell, and their neighbours, are integrated again on
         refine x refine sub-points, spacing / refine apart; the other cells hold less
         than exp(-threshold) of the mass each and keep their one-point value.
    Refined cells are decoded once each, for all the images that need them.

    With return_info, also returns {"edge_mass": (N,) share of the posterior in the
    outermost ring of cells (large means the grid is too small; it also warns),
    "refined_cells": (N,) cells refined per image}.
    """
    x = check_images(x, data_dim(dec_params))
    if not refine >= 1 or int(refine) != refine:
        raise ValueError(f"refine must be a positive integer, got {refine}")
    if not bound > 0:
        raise ValueError(f"the grid bound must be > 0, got {bound}")
    z_grid, axis = latent_grid(-bound, bound, spacing)
    size = len(axis)
    z_grid = z_grid.astype(params_dtype(dec_params))
    coarse_logits = decoder(dec_params, z_grid)
    log_prior_grid = log_prior(z_grid)
    cell_log_area = 2.0 * float(np.log(spacing))
    on_edge = np.ones((size, size), bool)
    on_edge[1:-1, 1:-1] = False
    every_other = np.zeros((size, size), bool)
    every_other[::2, ::2] = True

    num_images = len(x)
    log_px = np.empty(num_images)
    edge_mass = np.empty(num_images)
    selected_t = np.zeros((len(z_grid), num_images), bool)  # cell x image: refine it?
    for start in range(0, num_images, block_size):
        rows = slice(start, start + block_size)
        log_cells = grid_log_likelihood(coarse_logits, x[rows]) + log_prior_grid  # (B, G)
        log_cells = log_cells.astype(np.float64).reshape(-1, size, size) + cell_log_area
        log_total = logsumexp(log_cells, axis=(1, 2))
        log_total_2h = logsumexp(log_cells[:, every_other], axis=1) + np.log(4.0)
        too_coarse = np.abs(log_total - log_total_2h) > check
        near_max = log_cells > log_cells.max(axis=(1, 2), keepdims=True) - threshold
        selected = _dilate(near_max) & too_coarse[:, None, None]
        selected_t[:, rows] = selected.reshape(len(selected), -1).T
        log_px[rows] = logsumexp(np.where(selected, -np.inf, log_cells), axis=(1, 2))
        edge_mass[rows] = np.exp(logsumexp(log_cells[:, on_edge], axis=1) - log_total)

    # Midpoint sub-points of a cell, as offsets from its centre.
    sub_spacing = spacing / refine
    sub_axis = sub_spacing * (np.arange(refine) - 0.5 * (refine - 1))
    offsets = np.stack([a.ravel() for a in np.meshgrid(sub_axis, sub_axis)], 1).astype(z_grid.dtype)
    sub_log_area = 2.0 * float(np.log(sub_spacing))
    for cell in np.flatnonzero(selected_t.any(axis=1)):
        images = np.flatnonzero(selected_t[cell])
        z_sub = z_grid[cell] + offsets
        log_joint = grid_log_likelihood(decoder(dec_params, z_sub), x[images]) + log_prior(z_sub)
        cell_log = logsumexp(log_joint.astype(np.float64), axis=1) + sub_log_area
        log_px[images] = np.logaddexp(log_px[images], cell_log)
    if edge_mass.max() > 1e-4:
        warnings.warn(f"{np.sum(edge_mass > 1e-4)} images have more than 1e-4 of their posterior "
                      f"at the edge of [-{bound}, {bound}]^2 (up to {edge_mass.max():.2g}); "
                      "log p(x) is underestimated: pass a larger bound", stacklevel=2)
    if not return_info:
        return log_px
    return log_px, {"edge_mass": edge_mass, "refined_cells": selected_t.sum(axis=0)}


def _dilate(mask):
    """Grow a boolean (B, K, K) mask by one cell in all eight directions."""
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    size = mask.shape[1]
    grown = np.zeros_like(mask)
    for di in range(3):
        for dj in range(3):
            grown |= padded[:, di:di + size, dj:dj + size]
    return grown


def iwae_bound(enc_params, dec_params, x, rng, num_samples, batch_size=None):
    """Importance-weighted bound log mean_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x), per image.

    x (N, 784) -> (N,). K = 1 is the ELBO; as K grows it rises to log p(x) (Burda et al.
    2016), so it checks the quadrature from below with an independent method.
    """
    batch_size = batch_size or max(1, 20000 // num_samples)
    log_w = log_importance_weights(enc_params, dec_params, x, rng, num_samples, batch_size)
    return logsumexp(log_w.astype(np.float64), axis=0) - float(np.log(num_samples))


def marginal_likelihood_study(enc_params, dec_params, x, rng, elbo_samples=20,
                              iwae_ks=(1, 10, 100, 1000), iwae_images=500):
    """Part 3.2: log p(x) by quadrature against the ELBO and the IWAE bounds.

    x (N, 784). Returns a dict of JSON-ready summaries and the per-image arrays
    "log_px", "elbo", "elbo_se" (N,) for figures. The ELBO of each image averages
    elbo_samples draws; its gap to log p(x) is KL(q(z|x) || p(z|x)) >= 0, so a negative
    gap larger than a few Monte Carlo standard errors would expose an error.
    """
    log_px, info = log_marginal_likelihood(dec_params, x, return_info=True)
    log_w = log_importance_weights(enc_params, dec_params, x, rng, elbo_samples, 500).astype(np.float64)
    elbo_per_image = log_w.mean(axis=0)
    elbo_se = log_w.std(axis=0, ddof=1) / np.sqrt(elbo_samples)
    gap = log_px - elbo_per_image
    subset = x[:iwae_images]
    iwae = {int(k): float(iwae_bound(enc_params, dec_params, subset, rng, k).mean())
            for k in iwae_ks if len(subset)}
    return {
        "num_images": len(x),
        "log_px": float(log_px.mean()),
        "elbo": float(elbo_per_image.mean()),
        "elbo_se": float(np.sqrt(np.sum(elbo_se**2)) / len(x)),
        "gap": float(gap.mean()),
        "min_gap_in_se": float(np.min(gap / elbo_se)),
        "max_edge_mass": float(info["edge_mass"].max()),
        "iwae_images": len(subset),
        "log_px_on_iwae_images": float(log_px[:iwae_images].mean()) if len(subset) else None,
        "iwae": iwae,
        "per_image": {"log_px": log_px, "elbo": elbo_per_image, "elbo_se": elbo_se},
    }


def fig_log_px_vs_elbo(log_px, elbo_per_image):
    """Scatter of per-image ELBO against log p(x) (N,), with the line ELBO = log p(x)."""
    fig = Figure(figsize=(9, 4), layout="constrained")
    scatter_ax, hist_ax = fig.subplots(1, 2)
    scatter_ax.scatter(log_px, elbo_per_image, s=2, alpha=0.3)
    lo, hi = np.min(log_px), np.max(log_px)
    scatter_ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="ELBO = log p(x)")
    scatter_ax.set(xlabel="log p(x) by quadrature (nats)", ylabel="ELBO (nats)",
                   title="every image lies below the line")
    scatter_ax.legend(loc="upper left")
    gap = log_px - elbo_per_image
    hist_ax.hist(gap, bins=60)
    hist_ax.axvline(np.mean(gap), color="k", ls="--", lw=1, label=f"mean {np.mean(gap):.2f} nats")
    hist_ax.set(xlabel="log p(x) - ELBO = KL(q(z|x) || p(z|x)) (nats)", ylabel="images",
                title="the gap per image")
    hist_ax.legend()
    return fig
