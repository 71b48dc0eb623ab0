"""Part 3.2's prescribed check: log p(x) as the plain Riemann sum on an 81 x 81 grid over
[-4, 4]^2, against the adaptive quadrature (quadrature.log_marginal_likelihood), and
the grid itself checked on the prior, whose integral is known in closed form."""
import math

import numpy as np

from ..core.elbo import log_prior
from ..core.images import check_images
from ..core.model import data_dim, decoder, encoder, params_dtype
from .grids import edge_ring, grid_log_likelihood, latent_grid, log_integrate_grid, log_sum_exp


def coarse_grid_log_marginal_likelihood(dec_params, x, bound=4.0, spacing=0.1, block_size=1000):
    """log p(x) by the plain Riemann sum on latent_grid(-bound, bound, spacing), per image.

    The study's prescribed check of part 3.2 (81 x 81 points by default), against the adaptive
    quadrature.log_marginal_likelihood; one matrix product per block of images. x (N, 784) binary -> {"log_px":
    (N,) the Riemann sum of p(x, z) in log, "edge_mass": (N,) the grid posterior's share on the
    outermost ring of points, large when the posterior leaves the square}."""
    x = check_images(x, data_dim(dec_params))
    z_grid, axis = latent_grid(-bound, bound, spacing)
    size = len(axis)
    z_grid = z_grid.astype(params_dtype(dec_params))
    logits = decoder(dec_params, z_grid)
    log_prior_grid = log_prior(z_grid)
    on_edge = edge_ring(size).ravel()
    out = {key: np.empty(len(x)) for key in ("log_px", "edge_mass")}
    for start in range(0, len(x), block_size):  # blocks keep the (B, G) matrix small
        rows = slice(start, start + block_size)
        log_joint = grid_log_likelihood(logits, x[rows]) + log_prior_grid
        log_sum = log_sum_exp(log_joint)  # in float64
        out["log_px"][rows] = log_sum + 2.0 * math.log(spacing)  # the Riemann sum, and the edge's share of it
        out["edge_mass"][rows] = np.exp(log_sum_exp(log_joint[:, on_edge]) - log_sum)
    return out


def prior_grid_check(bound=4.0, spacing=0.1):
    """The study's check of the grid itself (part 3.2): the Riemann sum of the standard normal prior
    on latent_grid(-bound, bound, spacing), in log, against what it should be, the log of the
    prior's mass in the grid's cells, [-bound - spacing/2, bound + spacing/2]^2, in closed form.
    They differ by the midpoint rule's error at the square's edge, spacing^2 a phi(a) / 12 per
    axis (a = bound + spacing/2): 7e-7 in all at the defaults; a wrong spacing, cell area or
    grid would be off by orders of magnitude more."""
    z_grid, axis = latent_grid(-bound, bound, spacing)
    half_width = (bound + spacing / 2) / math.sqrt(2.0)
    return {"prior_log_riemann_sum": float(log_integrate_grid(log_prior(z_grid), spacing, len(axis))),
            "prior_log_mass_in_cells": 2.0 * math.log1p(-math.erfc(half_width))}


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
        **prior_grid_check(bound, spacing),
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
