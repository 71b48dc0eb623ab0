"""log p(x) by quadrature over the 2-D latent plane, against the ELBO and IWAE bounds (study part 3).

With two latent dimensions, log p(x) = log of the integral of p(x|z) p(z) dz can be
computed by quadrature instead of bounded. Everything stays in log space: the
integrand p(x|z) p(z) of a 784-pixel image is around exp(-150), and for unlikely images
below exp(-745), where float64 underflows to 0; logsumexp never leaves log space.
"""
import math
import warnings

import numpy as np

from ..core.elbo import check_num_samples, log_importance_weights, log_prior
from ..core.images import check_images
from ..core.logspace import logsumexp
from ..core.model import data_dim, decoder, encoder, params_dtype
from .grids import edge_ring, grid_log_likelihood, latent_grid, log_integrate_grid, neighbourhood_max


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
    if not (math.isfinite(bound) and bound > 0 and 0 < spacing <= bound):
        raise ValueError(f"need a finite bound > 0 and 0 < spacing <= bound (3 or more points per axis), got "
                         f"bound {bound} and spacing {spacing}")
    z_grid, axis = latent_grid(-bound, bound, spacing)
    size = len(axis)
    z_grid = z_grid.astype(params_dtype(dec_params))
    coarse_logits = decoder(dec_params, z_grid)
    log_prior_grid = log_prior(z_grid)
    cell_log_area = 2.0 * float(np.log(spacing))
    on_edge = edge_ring(size)
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
        selected = neighbourhood_max(near_max, False) & too_coarse[:, None, None]  # and their neighbours
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


def iwae_bound(enc_params, dec_params, x, rng, num_samples, batch_size=None, proposal=None):
    """Importance-weighted bound log mean_k p(x, z_k) / q(z_k), z_k ~ q, per image.

    x (N, 784) -> (N,). q is the encoder's q(z|x), or proposal = (mean, log_std) (N, 2), a
    Gaussian per image (part 8 uses the best one, q*). K = 1 is the ELBO; as K grows it
    rises to log p(x) (Burda et al. 2016), so it checks the quadrature from below with an
    independent method.
    """
    check_num_samples(num_samples)
    batch_size = batch_size or max(1, 20000 // num_samples)
    log_w = log_importance_weights(enc_params, dec_params, x, rng, num_samples, batch_size, proposal)
    return logsumexp(log_w.astype(np.float64), axis=0) - float(np.log(num_samples))


def coarse_grid_log_marginal_likelihood(dec_params, x, bound=4.0, spacing=0.1, block_size=1000):
    """log p(x) by the plain Riemann sum on latent_grid(-bound, bound, spacing), per image.

    The study's prescribed check of part 3.2 (81 x 81 points by default), to be compared
    with the adaptive log_marginal_likelihood. The grid is decoded once and each block of
    images costs one matrix product. x (N, 784) binary -> {
      "log_px": (N,) the Riemann sum of p(x, z) in log,
      "log_normalized_integral": (N,) the Riemann sum of the posterior normalized on the
          grid, in log: 0 up to rounding, the check that the normalization is right,
      "edge_mass": (N,) share of that posterior on the outermost ring of points; large
          when the posterior leaves the square, whose mass the grid cannot see}.
    """
    x = check_images(x, data_dim(dec_params))
    z_grid, axis = latent_grid(-bound, bound, spacing)
    size = len(axis)
    z_grid = z_grid.astype(params_dtype(dec_params))
    logits = decoder(dec_params, z_grid)
    log_prior_grid = log_prior(z_grid)
    on_edge = edge_ring(size).ravel()
    out = {key: np.empty(len(x)) for key in ("log_px", "log_normalized_integral", "edge_mass")}
    for start in range(0, len(x), block_size):  # blocks keep the (B, G) matrix small
        rows = slice(start, start + block_size)
        log_joint = (grid_log_likelihood(logits, x[rows]) + log_prior_grid).astype(np.float64)
        log_px = log_integrate_grid(log_joint, spacing, size)
        log_post = log_joint - log_px[:, None]
        out["log_px"][rows] = log_px
        out["log_normalized_integral"][rows] = log_integrate_grid(log_post, spacing, size)
        out["edge_mass"][rows] = np.exp(logsumexp(log_post[:, on_edge], axis=1) - logsumexp(log_post, axis=1))
    return out


def student_t_min_reference(num_draws, dof, observed_min=None):
    """Where the smallest of num_draws independent Student-t(dof) draws lies.

    The reference for the per-image gap log p(x) - ELBO divided by its Monte Carlo
    standard error: for an image whose true gap is 0, with the ELBO averaging dof + 1
    normal log-weights and the standard error estimated from them, that ratio is
    Student-t with dof degrees of freedom. True gaps are KL >= 0 and only push the ratio
    up, so a smallest ratio far below this reference cannot be Monte Carlo error.
    Returns (expected minimum, probability that the minimum is <= observed_min, or None).

    No scipy at run time: the t density is elementary, and its CDF is integrated on
    z = sinh(y) for y evenly spaced, dense at the centre and reaching |z| = 1e6, beyond
    which even the Cauchy (dof = 1) keeps only 3e-7 of its mass.
    """
    if not (num_draws >= 1 and dof >= 1):
        raise ValueError(f"need num_draws >= 1 and dof >= 1, got {num_draws} and {dof}")
    y = np.linspace(-math.asinh(1e6), math.asinh(1e6), 40001)
    z = np.sinh(y)
    log_density = (math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
                   - 0.5 * (dof + 1) * np.log1p(z**2 / dof))
    density_dy = np.exp(log_density) * np.cosh(y)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density_dy[1:] + density_dy[:-1]) * np.diff(y))])
    cdf /= cdf[-1]

    def prob_min_below(value):  # 1 - (1 - F)^N without cancellation for small F
        return -np.expm1(num_draws * np.log1p(-np.minimum(value, 1.0 - 1e-16)))

    min_cdf = prob_min_below(cdf)
    expected_min = float(np.sum(0.5 * (z[1:] + z[:-1]) * np.diff(min_cdf)))
    if observed_min is None:
        return expected_min, None
    return expected_min, float(prob_min_below(np.interp(observed_min, z, cdf)))


def gap_statistics(log_px, elbo_per_image, elbo_se, elbo_samples, level=1e-3):
    """How the per-image ELBOs (N,) sit against log p(x) (N,), given their standard errors (N,).

    Returns a JSON-ready dict: num_above / fraction_above, the images whose ELBO exceeds
    log p(x); min_gap_in_se, the smallest (log p(x) - ELBO) / SE; expected_min_z, where
    the smallest of N Student-t(elbo_samples - 1) draws lies on average, and
    min_gap_probability, the chance it lies at or below min_gap_in_se
    (student_t_min_reference); consistent_with_mc_error, whether that chance is at
    least level.
    """
    gap = np.asarray(log_px, np.float64) - np.asarray(elbo_per_image, np.float64)
    z = gap / np.asarray(elbo_se, np.float64)
    min_z = float(np.min(z))
    expected_min, probability = student_t_min_reference(len(gap), elbo_samples - 1, min_z)
    return {"num_above": int(np.sum(gap < 0)), "fraction_above": float(np.mean(gap < 0)),
            "min_gap_in_se": min_z, "expected_min_z": expected_min, "min_gap_probability": probability,
            "consistent_with_mc_error": bool(probability >= level)}


def marginal_likelihood_study(enc_params, dec_params, x, rng, elbo_samples=20,
                              iwae_ks=(1, 10, 100, 1000), iwae_images=500, halved_check=True,
                              edge_threshold=1e-3):
    """Part 3.2: log p(x) by quadrature against the ELBO, the IWAE bounds and a coarse grid.

    x (N, 784). Returns {"summary": JSON-ready dict, "log_px", "elbo", "elbo_se": (N,)
    per image, for fig_log_px_vs_elbo, "iwae": {K: (iwae_images,) bounds per image}}.
    The ELBO of each image averages elbo_samples draws; its gap to log p(x) is
    KL(q(z|x) || p(z|x)) >= 0, so gap_statistics says how many images lie above log p(x)
    and whether Monte Carlo error explains it. The summary
    also holds the quadrature's own checks (halved_spacing_change, with halved_check:
    the refined cells' spacing halved; max_edge_mass) and "coarse_grid", the study's
    prescribed 81 x 81 grid on [-4, 4]^2 against the adaptive quadrature, counting the
    images with more than edge_threshold of their posterior on the square's edge.
    """
    quadrature_bound = 10.0
    log_px, info = log_marginal_likelihood(dec_params, x, bound=quadrature_bound, return_info=True)
    log_w = log_importance_weights(enc_params, dec_params, x, rng, elbo_samples, 500).astype(np.float64)
    elbo_per_image = log_w.mean(axis=0)
    elbo_se = log_w.std(axis=0, ddof=1) / np.sqrt(elbo_samples)
    gap = log_px - elbo_per_image
    subset = x[:iwae_images]
    iwae = {int(k): iwae_bound(enc_params, dec_params, subset, rng, k) for k in iwae_ks if len(subset)}
    summary = {
        "num_images": len(x),
        "elbo_samples": int(elbo_samples),
        "log_px": float(log_px.mean()),
        "elbo": float(elbo_per_image.mean()),
        "elbo_se": float(np.sqrt(np.sum(elbo_se**2)) / len(x)),
        "gap": float(gap.mean()),
        **gap_statistics(log_px, elbo_per_image, elbo_se, elbo_samples),
        "quadrature_bound": quadrature_bound,
        "max_edge_mass": float(info["edge_mass"].max()),
        "halved_spacing_change": None,
        "halved_spacing_max_change": None,
        "iwae_images": len(subset),
        "log_px_on_iwae_images": float(log_px[:iwae_images].mean()) if len(subset) else None,
        "iwae": {k: float(bounds.mean()) for k, bounds in iwae.items()},
    }
    if halved_check:
        halved = log_marginal_likelihood(dec_params, x, bound=quadrature_bound, refine=16)
        summary["halved_spacing_change"] = float(halved.mean() - log_px.mean())
        summary["halved_spacing_max_change"] = float(np.max(np.abs(halved - log_px)))
    summary["coarse_grid"] = coarse_grid_summary(enc_params, dec_params, x, log_px, edge_threshold)
    return {"summary": summary, "log_px": log_px, "elbo": elbo_per_image, "elbo_se": elbo_se, "iwae": iwae}


def coarse_grid_summary(enc_params, dec_params, x, log_px, edge_threshold=1e-3, bound=4.0, spacing=0.1):
    """The coarse grid of coarse_grid_log_marginal_likelihood against log p(x) (N,) by the
    adaptive quadrature, as a JSON-ready dict; errors are coarse minus adaptive, in nats.

    The images with more than edge_threshold of their grid posterior on the edge are
    counted, and the errors given also over the others, "inside" (None when none are
    left). Among those, the narrow ones, whose q(z|x) has a standard deviation below half
    the spacing in some dimension, are told apart from the wide ones: the midpoint rule's
    error grows as the posterior narrows against the spacing.
    """
    coarse = coarse_grid_log_marginal_likelihood(dec_params, x, bound, spacing)
    abs_error = np.abs(coarse["log_px"] - log_px)
    inside = coarse["edge_mass"] <= edge_threshold
    _, log_std = encoder(enc_params, x)
    q_std = np.exp(np.asarray(log_std, np.float64))
    narrow = np.min(q_std, axis=1) < spacing / 2

    def mean_or_none(values):
        return float(np.mean(values)) if len(values) else None

    return {
        "bound": bound, "spacing": spacing, "points_per_axis": int(round(2 * bound / spacing)) + 1,
        "max_abs_log_normalized_integral": float(np.max(np.abs(coarse["log_normalized_integral"]))),
        "mean_error": float(np.mean(coarse["log_px"] - log_px)),
        "mean_abs_error": float(np.mean(abs_error)),
        "max_abs_error": float(np.max(abs_error)),
        "edge_threshold": edge_threshold,
        "images_at_edge": int(np.sum(~inside)),
        "mean_abs_error_inside": mean_or_none(abs_error[inside]),
        "max_abs_error_inside": float(np.max(abs_error[inside])) if inside.any() else None,
        "median_q_std": float(np.median(q_std)),
        "narrow_fraction": float(np.mean(narrow[inside])) if inside.any() else None,
        "mean_abs_error_narrow": mean_or_none(abs_error[inside & narrow]),
        "mean_abs_error_wide": mean_or_none(abs_error[inside & ~narrow]),
    }
