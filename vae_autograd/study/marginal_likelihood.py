"""log p(x) by quadrature over the 2-D latent plane, against the ELBO and IWAE bounds (study part 3).

With two latent dimensions, log p(x) = log of the integral of p(x|z) p(z) dz can be computed by
quadrature instead of bounded. Everything stays in log space: the integrand p(x|z) p(z) of a
784-pixel image is around exp(-150), and for unlikely images below exp(-745), where float64
underflows to 0; logsumexp never leaves log space."""
import math
import warnings

import numpy as np

from ..core.elbo import check_num_samples, log_importance_weights, log_prior
from ..core.images import check_images
from ..core.logspace import logsumexp, softplus
from ..core.model import data_dim, decoder, params_dtype
from .coarse_grid import coarse_grid_summary
from .grids import edge_ring, grid_log_likelihood, latent_grid, neighbourhood_max


def log_marginal_likelihood(dec_params, x, bound=10.0, spacing=0.2, refine=4, max_curvature=0.5, check=1e-4,
                            threshold=25.0, block_size=250, max_refine=128, refine_all=False, return_info=False):
    """log p(x) = log of the integral of p(x|z) p(z) over [-bound, bound]^2, per image.

    x (N, 784) binary -> (N,). Trained posteriors have standard deviations of a few hundredths,
    too narrow for a coarse grid, while a fine shared grid would cost minutes for the test
    set. The plane is cut into cells of side `spacing` centred on the points of
    latent_grid(-bound, bound, spacing), and:
      1. p(x, z) is evaluated at every cell centre for all images (the grid is decoded
         once; one matrix product per block of images), giving the midpoint rule.
      2. The rule is kept for an image whose grid resolves its posterior: everywhere within
         `threshold` nats of its largest point, the second difference of log p(x, z) along
         each axis is at most max_curvature, and the sum agrees with the sum over every
         other point (spacing 2h) within `check` in log. For a Gaussian of std sigma the
         second difference is h^2 / sigma^2 at every point, and the rule's relative error is
         about 2 exp(-2 pi^2 sigma^2 / h^2) per axis: 1e-17 at h^2 / sigma^2 = 0.5. The sums
         alone can agree by chance while both miss a posterior narrow in one direction (the
         tests build one); the curvature is large wherever the grid is too coarse.
      3. Otherwise the cells within `threshold` nats of the image's largest point, and their
         neighbours, are integrated again on r x r sub-points, spacing / r apart; the other
         cells hold less than exp(-threshold) of the mass each and keep their one-point
         value. r is the smallest power of two, at least `refine`, that brings the largest
         second difference seen on the coarse grid under max_curvature (second differences
         shrink as the spacing squared). Each refined cell must pass the curvature test on its
         own sub-points, or the image is integrated again at 2r, up to max_refine; an image
         still unresolved there raises ValueError.
    Refined cells are decoded once each, for all the images that need them. refine may also be
    an (N,) array, a least r per image, and with refine_all every image is refined (even one
    the coarse grid resolves): quadrature_of_sets checks the quadrature's own error so, with
    twice the r of each image.

    With return_info, also returns {"edge_mass": (N,) share of the posterior in the
    outermost ring of cells (large means the grid is too small; it also warns),
    "refined_cells": (N,) cells refined per image, "refine": (N,) the sub-points per cell
    side that resolved it (1: the coarse grid did)}.
    """
    x = check_images(x, data_dim(dec_params))
    if np.ndim(refine) and np.shape(refine) != (len(x),):
        raise ValueError(f"refine must be one integer or one per image ({len(x)}), got shape {np.shape(refine)}")
    refine = np.broadcast_to(refine, (len(x),))
    if not (refine >= 4).all() or (refine.astype(int) != refine).any():  # a cell's own sub-points test it: 3 a side
        raise ValueError(f"refine must be an integer >= 4 (or one per image), got {refine[refine.argmin()]}")
    if not (math.isfinite(bound) and bound > 0 and 0 < spacing <= bound):
        raise ValueError(f"need a finite bound > 0 and 0 < spacing <= bound (3 or more points per axis), got "
                         f"bound {bound} and spacing {spacing}")
    if not max_curvature > 0:
        raise ValueError(f"max_curvature must be > 0, got {max_curvature}")
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
    coarse_part = np.empty(num_images)  # log of the sum over the cells that are not refined
    peak = np.empty(num_images)  # the largest log p(x, z) on the coarse grid
    curvature = np.empty(num_images)  # the largest second difference near it
    edge_mass = np.empty(num_images)
    pairs = []  # (image, cell) of the cells to refine, per block of images
    for start in range(0, num_images, block_size):
        rows = slice(start, start + block_size)
        log_joint = (grid_log_likelihood(coarse_logits, x[rows]) + log_prior_grid).astype(np.float64)
        log_joint = log_joint.reshape(-1, size, size)
        peak[rows] = log_joint.max(axis=(1, 2))
        near_max = log_joint > peak[rows, None, None] - threshold
        log_cells = log_joint + cell_log_area
        curvature[rows] = largest_curvature(log_joint, near_max)
        log_total = logsumexp(log_cells, axis=(1, 2))  # against the sum over every other point (spacing 2h):
        disagree = np.abs(log_total - logsumexp(log_cells[:, every_other], axis=1) - np.log(4.0)) > check
        too_coarse = (curvature[rows] > max_curvature) | disagree | refine_all
        selected = neighbourhood_max(near_max, False) & too_coarse[:, None, None]  # and their neighbours
        pairs.append(np.stack(np.nonzero(selected.reshape(len(selected), -1))) + [[start], [0]])
        coarse_part[rows] = logsumexp(np.where(selected, -np.inf, log_cells), axis=(1, 2))
        edge_mass[rows] = np.exp(logsumexp(log_cells[:, on_edge], axis=1) - log_total)

    pair_image, pair_cell = np.concatenate(pairs, axis=1)
    log_px, used = coarse_part.copy(), np.ones(num_images, int)
    pending = np.unique(pair_image)
    # The least refinement that would bring the coarse grid's curvature under max_curvature.
    needed = np.sqrt(np.maximum(curvature[pending], 1e-300) / max_curvature)
    sub_points = np.maximum(refine[pending], 2 ** np.ceil(np.log2(np.maximum(needed, 1.0)))).astype(int)
    while len(pending):
        if sub_points.max() > max_refine:
            worst = pending[sub_points > max_refine]
            raise ValueError(f"{len(worst)} images (e.g. image {worst[0]}) have posteriors too narrow to resolve "
                             f"with {max_refine} x {max_refine} points per cell of side {spacing}; pass a larger "
                             "max_refine")
        still_coarse = np.zeros(len(pending), bool)
        for r in np.unique(sub_points):
            group = np.flatnonzero(sub_points == r)
            images = pending[group]
            mine = np.isin(pair_image, images)
            fine, still_coarse[group] = _refined_cells(dec_params, x, z_grid, pair_image[mine], pair_cell[mine], images,
                                                       spacing, r, peak[images] - threshold, max_curvature)
            log_px[images], used[images] = np.logaddexp(coarse_part[images], fine), r
        pending, sub_points = pending[still_coarse], 2 * sub_points[still_coarse]
    if edge_mass.max() > 1e-4:
        warnings.warn(f"{np.sum(edge_mass > 1e-4)} images have more than 1e-4 of their posterior "
                      f"at the edge of [-{bound}, {bound}]^2 (up to {edge_mass.max():.2g}); "
                      "log p(x) is underestimated: pass a larger bound", stacklevel=2)
    if not return_info:
        return log_px
    return log_px, {"edge_mass": edge_mass, "refined_cells": np.bincount(pair_image, minlength=num_images),
                    "refine": used}


def largest_curvature(log_f, near):
    """(B,): the largest |second difference| of log_f (B, K, L) along either axis, at the points
    where near (B, K, L) holds (0 if none)."""
    along_rows = np.abs(log_f[:, 2:, :] - 2 * log_f[:, 1:-1, :] + log_f[:, :-2, :])
    along_columns = np.abs(log_f[:, :, 2:] - 2 * log_f[:, :, 1:-1] + log_f[:, :, :-2])
    return np.maximum(np.where(near[:, 1:-1, :], along_rows, 0.0).max(axis=(1, 2), initial=0.0),
                      np.where(near[:, :, 1:-1], along_columns, 0.0).max(axis=(1, 2), initial=0.0))


def _refined_cells(dec_params, x, z_grid, pair_image, pair_cell, images, spacing, refine, floor, max_curvature,
                   points_per_batch=4096):
    """The log of the integral over each image's selected cells on refine x refine sub-points.

    (pair_image, pair_cell): the selected cells, as indices into x and z_grid, of images (M,)
    (sorted indices into x). floor (M,): the log density below which a sub-point is too small
    to matter for the resolution test. Returns (log integral (M,), bool (M,): the sub-points
    of some cell do not resolve it). Cells are decoded in batches of about points_per_batch
    sub-points, each cell once; each cell then meets only the images that selected it (a
    product over all images of a batch would do 5 to 10 times the work: an image's cells are
    a few of the batch's).
    """
    sub_spacing = spacing / refine
    sub_axis = sub_spacing * (np.arange(refine) - 0.5 * (refine - 1))
    offsets = np.stack([a.ravel() for a in np.meshgrid(sub_axis, sub_axis)], 1).astype(z_grid.dtype)
    by_cell = np.argsort(pair_cell, kind="stable")
    pair_local = np.searchsorted(images, pair_image[by_cell])  # (P,): which of images, pairs in cell order
    cells, first_pair = np.unique(pair_cell[by_cell], return_index=True)
    bounds = np.append(first_pair, len(by_cell))
    per_batch = max(1, points_per_batch // len(offsets))
    x = x[images]
    image_of, log_of, bad_of = [], [], []  # per (cell, image) pair: which image, log integral, unresolved
    for first in range(0, len(cells), per_batch):
        batch = cells[first:first + per_batch]
        z_sub = (z_grid[batch][:, None, :] + offsets).reshape(-1, 2)  # (C * r^2, 2)
        logits = decoder(dec_params, z_sub).reshape(len(batch), len(offsets), -1)
        log_partition = np.sum(softplus(logits), axis=-1)  # (C, r^2), as grid_log_likelihood sums it
        prior = log_prior(z_sub).reshape(len(batch), -1)
        for k, cell_logits, cell_partition, cell_prior in zip(range(first, first + len(batch)), logits, log_partition,
                                                              prior):
            among = pair_local[bounds[k]:bounds[k + 1]]  # (A,): the images that selected this cell
            # x . logits in float32 over the 784 pixels: (x @ W.T) . hidden would be narrower, but
            # its cancellations cost up to 1e-4 nats where this keeps 5e-6 (against float64).
            log_joint = ((x[among] @ cell_logits.T - cell_partition) + cell_prior).astype(np.float64)
            square = log_joint.reshape(len(among), refine, refine)
            bad_of.append(largest_curvature(square, square > floor[among, None, None]) > max_curvature)
            image_of.append(among)
            log_of.append(logsumexp(log_joint, axis=1))
    image_of, log_of, bad_of = (np.concatenate(a) for a in (image_of, log_of, bad_of))
    log_integral = np.full(len(images), -np.inf)
    np.logaddexp.at(log_integral, image_of, log_of)  # each image's cells summed
    log_integral += 2.0 * float(np.log(sub_spacing))
    return log_integral, np.bincount(image_of, weights=bad_of, minlength=len(images)) > 0


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


QUADRATURE_BOUND = 10.0  # part 3 integrates over [-10, 10]^2 (the edge mass it reports says whether that suffices)


def quadrature_of_sets(dec_params, images, num_checked=500, bound=QUADRATURE_BOUND):
    """log_marginal_likelihood of several sets of images in one call, since they share decoded
    cells, and its check: the first num_checked of each set again on twice the sub-points per
    axis that each used (at least 4: an image the coarse grid resolved is refined).

    images: {set name: x (N_s, 784)}. Returns {name: {"log_px": (N_s,), "edge_mass": (N_s,),
    "finer": (n_s,) the check's log p(x) of the first n_s = min(N_s, num_checked) images,
    or None without a check}}.
    """
    sets = {name: check_images(x, data_dim(dec_params), f"the images of {name}") for name, x in images.items()}
    starts = np.cumsum([0] + [len(x) for x in sets.values()])
    log_px, info = log_marginal_likelihood(dec_params, np.concatenate(list(sets.values())), bound=bound,
                                           return_info=True)
    checked = np.concatenate([start + np.arange(min(len(x), num_checked)) for start, x in zip(starts, sets.values())])
    finer = np.full(len(log_px), np.nan)
    if len(checked):
        finer[checked] = log_marginal_likelihood(
            dec_params, np.concatenate(list(sets.values()))[checked], bound=bound,
            refine=np.maximum(4, 2 * info["refine"][checked]), refine_all=True)
    return {name: {"log_px": log_px[start:start + len(x)], "edge_mass": info["edge_mass"][start:start + len(x)],
                   "finer": finer[start:start + min(len(x), num_checked)] if num_checked else None}
            for (name, x), start in zip(sets.items(), starts)}


def marginal_likelihood_study(enc_params, dec_params, x, rng, elbo_samples=20,
                              iwae_ks=(1, 10, 100, 1000), iwae_images=500, num_checked=500,
                              edge_threshold=1e-3, quadrature=None):
    """Part 3.2: log p(x) by quadrature against the ELBO, the IWAE bounds and a coarse grid.

    x (N, 784). Returns {"summary": JSON-ready dict, "log_px", "elbo", "elbo_se": (N,)
    per image, for fig_log_px_vs_elbo, "iwae": {K: (iwae_images,) bounds per image}}.
    The ELBO of each image averages elbo_samples draws; its gap to log p(x) is
    KL(q(z|x) || p(z|x)) >= 0, so gap_statistics says how many images lie above log p(x)
    and whether Monte Carlo error explains it. The summary also holds the quadrature's own
    checks (halved_spacing_change: its first num_checked integrated again on twice the
    sub-points per axis; max_edge_mass) and "coarse_grid", the study's prescribed 81 x 81
    grid on [-4, 4]^2 against the adaptive quadrature, counting the images with more than
    edge_threshold of their posterior on the square's edge. quadrature: x's entry of
    quadrature_of_sets, if computed with other sets (else it is computed here).
    """
    quadrature = quadrature or quadrature_of_sets(dec_params, {"x": x}, num_checked)["x"]
    log_px = quadrature["log_px"]
    log_w = log_importance_weights(enc_params, dec_params, x, rng, elbo_samples, 500).astype(np.float64)
    elbo_per_image = log_w.mean(axis=0)
    elbo_se = log_w.std(axis=0, ddof=1) / np.sqrt(elbo_samples)
    gap = log_px - elbo_per_image
    subset = x[:iwae_images]
    iwae = {int(k): iwae_bound(enc_params, dec_params, subset, rng, k) for k in iwae_ks if len(subset)}
    finer = quadrature["finer"]
    summary = {
        "num_images": len(x),
        "elbo_samples": int(elbo_samples),
        "log_px": float(log_px.mean()),
        "log_px_se": float(log_px.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0,  # over images
        "elbo": float(elbo_per_image.mean()),
        "elbo_se": float(np.sqrt(np.sum(elbo_se**2)) / len(x)),
        "gap": float(gap.mean()),
        **gap_statistics(log_px, elbo_per_image, elbo_se, elbo_samples),
        "quadrature_bound": QUADRATURE_BOUND,
        "max_edge_mass": float(quadrature["edge_mass"].max()),
        "halved_spacing_images": None if finer is None else len(finer),
        "halved_spacing_change": None if finer is None else float(np.mean(finer - log_px[:len(finer)])),
        "halved_spacing_max_change": None if finer is None else float(np.max(np.abs(finer - log_px[:len(finer)]))),
        "iwae_images": len(subset),
        "log_px_on_iwae_images": float(log_px[:iwae_images].mean()) if len(subset) else None,
        "iwae": {k: float(bounds.mean()) for k, bounds in iwae.items()},
    }
    summary["coarse_grid"] = coarse_grid_summary(enc_params, dec_params, x, log_px, edge_threshold)
    return {"summary": summary, "log_px": log_px, "elbo": elbo_per_image, "elbo_se": elbo_se, "iwae": iwae}
