"""Exact integrals over the 2-D latent plane (study part 3).

With two latent dimensions, log p(x) = log of the integral of p(x|z) p(z) dz can be
computed by quadrature instead of bounded. Everything stays in log space: the
integrand p(x|z) p(z) of a 784-pixel image is around exp(-150), and for unlikely images
below exp(-745), where float64 underflows to 0; logsumexp never leaves log space.
"""
import math
import warnings

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive
from matplotlib.figure import Figure

from .distributions import softplus
from .elbo import log_importance_weights, log_prior
from .images import check_images
from .model import data_dim, decoder, encoder, params_dtype


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


def iwae_bound(enc_params, dec_params, x, rng, num_samples, batch_size=None, proposal=None):
    """Importance-weighted bound log mean_k p(x, z_k) / q(z_k), z_k ~ q, per image.

    x (N, 784) -> (N,). q is the encoder's q(z|x), or proposal = (mean, log_std) (N, 2), a
    Gaussian per image (part 8 uses the best one, q*). K = 1 is the ELBO; as K grows it
    rises to log p(x) (Burda et al. 2016), so it checks the quadrature from below with an
    independent method.
    """
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
    on_edge = np.ones((size, size), bool)
    on_edge[1:-1, 1:-1] = False
    on_edge = on_edge.ravel()
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


def _percent(fraction):
    """0.0123 -> '1.2%', 0.5 -> '50%', 0 -> '0%': two significant digits."""
    return f"{100 * fraction:.2g}%"


def _probability(p):
    """A probability in words that never rounds to a certainty it is not: 0.9997 -> 'above 0.99'."""
    return "above 0.99" if p > 0.99 else f"{p:.2g}"


def describe_gaps(summary, set_name):
    """One sentence: how many images of the set lie above log p(x), and what that means."""
    n, k, z = summary["num_images"], summary["num_above"], summary["min_gap_in_se"]
    if k == 0:
        return (f"The ELBO of every {set_name} image lies below log p(x); the smallest gap is "
                f"{z:.1f} Monte Carlo standard errors.")
    head = (f"The ELBO of {k} of the {n} {set_name} images ({_percent(summary['fraction_above'])}) lies "
            f"above log p(x), the lowest gap being {z:.1f} Monte Carlo standard errors")
    reference = (f"the smallest of {n} draws of Student's t with {summary['elbo_samples'] - 1} degrees of "
                 f"freedom (gap / standard error of a {summary['elbo_samples']}-sample ELBO, for a true gap "
                 f"of 0) is {summary['expected_min_z']:.1f} on average and lies at or below {z:.1f} with "
                 f"probability {_probability(summary['min_gap_probability'])}")
    if summary["consistent_with_mc_error"]:
        return (f"{head}: no more than Monte Carlo error, since {reference}; the true gap, "
                "KL(q(z|x) || p(z|x)), is never negative.")
    return (f"{head}, which Monte Carlo error does not explain: {reference}. The ELBO or the "
            f"quadrature of those images is in error.")


def describe_quadrature(summaries):
    """One sentence on the adaptive quadrature's checks; summaries: {set name: summary}."""
    changed = {name: s for name, s in summaries.items() if s.get("halved_spacing_change") is not None}
    parts = []
    if changed:
        moves = " and ".join(f"{s['halved_spacing_change']:.1e} ({name})" for name, s in changed.items())
        worst = max(s["halved_spacing_max_change"] for s in changed.values())
        parts.append(f"halving the spacing of its refined cells moved the mean log p(x) by {moves} nats, "
                     f"and no image's by more than {worst:.1e}")
    edge = max(s["max_edge_mass"] for s in summaries.values())
    bound = max(s["quadrature_bound"] for s in summaries.values())
    parts.append(f"at most {edge:.1e} of any posterior lies in the outermost ring of cells of "
                 f"[-{bound:g}, {bound:g}]^2")
    return "Checks of the adaptive quadrature (`integrate.log_marginal_likelihood`): " + "; ".join(parts) + "."


def describe_coarse_grid(summaries, tolerance=0.01):
    """Sentences on the study's prescribed grid; summaries: {set name: summary}.

    An error counts as small when its mean absolute value is below tolerance nats. The
    error is put down to posteriors leaving the square only when the images inside it
    are accurate, and to narrow posteriors only when those are off by more than the wide.
    """
    grids = {name: s["coarse_grid"] for name, s in summaries.items()}
    first = next(iter(grids.values()))
    k, spacing, bound = first["points_per_axis"], first["spacing"], first["bound"]
    normalized = max(g["max_abs_log_normalized_integral"] for g in grids.values())
    errors = "; ".join(f"{name}: {g['mean_abs_error']:.3g} nats on average (mean signed {g['mean_error']:+.3g}), "
                       f"at most {g['max_abs_error']:.3g}" for name, g in grids.items())
    text = (f"The study's prescribed check, the {k} x {k} grid of spacing {spacing:g} on "
            f"[-{bound:g}, {bound:g}]^2: the posterior normalized on it integrates to log 1 = 0 within "
            f"{normalized:.0e} for every image, and its log p(x) differs from the adaptive quadrature's "
            f"({errors}).")
    threshold = first["edge_threshold"]
    if all(g["images_at_edge"] == 0 for g in grids.values()):
        text += f" No posterior leaves the square: none has more than {threshold:g} of its grid mass on its edge."
    else:
        counts = " and ".join(f"{g['images_at_edge']} {name} images" for name, g in grids.items())
        text += (f" The posteriors of {counts} leave the square (more than {threshold:g} of their grid mass "
                 "on its edge), where the grid cannot see them.")
    for name, g in grids.items():
        if g["mean_abs_error_inside"] is None:
            continue
        inside = (f"the {name} images inside the square" if g["images_at_edge"] else f"the {name} images")
        if g["mean_abs_error_inside"] < tolerance:
            text += (f" For {inside} the grid is off by {g['mean_abs_error_inside']:.2g} nats on average "
                     f"(at most {g['max_abs_error_inside']:.2g})"
                     + (": its error is the mass outside the square." if g["images_at_edge"] else "."))
            continue
        text += (f" For {inside} it is off by {g['mean_abs_error_inside']:.2g} nats on average (at most "
                 f"{g['max_abs_error_inside']:.2g})")
        narrow, wide = g["mean_abs_error_narrow"], g["mean_abs_error_wide"]
        if narrow is not None and (wide is None or narrow > wide):
            text += (f", more where the posterior is narrow against the spacing: {narrow:.2g} on average for "
                     f"the {_percent(g['narrow_fraction'])} of them whose q(z|x) has a standard deviation below "
                     f"{spacing / 2:g}" + (f", {wide:.2g} for the others." if wide is not None else "."))
        else:
            text += "."
    return text


def describe_iwae(summary, tolerance=0.1):
    """One to three sentences on how far the IWAE bounds stay from log p(x); None without them.

    The bound with the largest K counts as reaching log p(x) when within tolerance nats.
    """
    iwae = {int(k): v for k, v in summary["iwae"].items()}  # JSON turns the keys into strings
    if len(iwae) < 2 or summary["log_px_on_iwae_images"] is None:
        return None
    ks = sorted(iwae)
    last = ks[-1]
    distance = {k: summary["log_px_on_iwae_images"] - iwae[k] for k in ks}
    per_decade = [(iwae[b] - iwae[a]) / math.log10(b / a) for a, b in zip(ks, ks[1:])]
    slow = [f"{a}-{b}" for (a, b), rise in zip(zip(ks, ks[1:]), per_decade) if rise < math.log(10)]
    distances = ", ".join(f"{distance[k]:.2f}" for k in ks) + " at K = " + ", ".join(str(k) for k in ks)
    if distance[last] < -tolerance:
        return (f"On the first {summary['iwae_images']} test images the IWAE bound with K = {last} lies "
                f"{-distance[last]:.2f} nats above log p(x) ({distances} below it), which a lower bound "
                "cannot do in expectation: the bounds or the quadrature are in error.")
    if distance[last] <= tolerance:
        return (f"On the first {summary['iwae_images']} test images the IWAE bound with K = {last} reaches "
                f"log p(x) within {tolerance:g} nats ({distances} below it), an independent check of the "
                "quadrature.")
    text = (f"On the first {summary['iwae_images']} test images the IWAE bound with K = {last} stays "
            f"{distance[last]:.2f} nats below log p(x) ({distances}). Each tenfold K closed "
            + ", ".join(f"{r:.2f}" for r in per_decade) + " nats of it")
    if slow:
        text += f", less than log 10 = {math.log(10):.2f} for K = " + ", ".join(slow)
    text += (". The weights p(x, z) / q(z|x) of a proposal close to p(z|x) would be nearly equal and the "
             f"bound tight at small K; q(z|x) is a poor proposal on these images, its ELBO (K = {ks[0]}) "
             f"{distance[ks[0]]:.2f} nats below log p(x).")
    if per_decade[-1] > 0:
        text += (" If no later tenfold K closed more than the last, reaching log p(x) would take K of "
                 f"10^{math.log10(last) + distance[last] / per_decade[-1]:.1f} or more.")
    return text


def describe_marginal_likelihood(summary_test, summary_train):
    """Sentences for the report from the part-3 summaries of the test and training sets.

    Each number comes from the summaries, and each claim is chosen by them: an ELBO above
    log p(x) is called Monte Carlo error only when gap_statistics finds it consistent, the
    coarse grid is called coarse only when its error is large.
    """
    summaries = {"test": summary_test, "train": summary_train}
    sentences = [describe_gaps(summary_test, "test"), describe_gaps(summary_train, "training"),
                 describe_quadrature(summaries), describe_coarse_grid(summaries)]
    iwae = describe_iwae(summary_test)
    return sentences + ([iwae] if iwae else [])


def fig_log_px_vs_elbo(log_px, elbo_per_image, elbo_se, elbo_samples):
    """Scatter of per-image ELBO against log p(x) (N,), with the line ELBO = log p(x).

    elbo_se (N,), the Monte Carlo standard errors of the elbo_samples-sample ELBOs, give
    the title: how many images lie above the line and whether Monte Carlo error explains
    it (gap_statistics).
    """
    stats = gap_statistics(log_px, elbo_per_image, elbo_se, elbo_samples)
    if stats["num_above"] == 0:
        title = "no image above the line"
    elif stats["consistent_with_mc_error"]:
        title = f"{_percent(stats['fraction_above'])} of images above the line, all within Monte Carlo error"
    else:
        title = (f"{_percent(stats['fraction_above'])} of images above the line, the lowest "
                 f"{stats['min_gap_in_se']:.1f} SE: beyond Monte Carlo error")
    fig = Figure(figsize=(9, 4), layout="constrained")
    scatter_ax, hist_ax = fig.subplots(1, 2)
    scatter_ax.scatter(log_px, elbo_per_image, s=2, alpha=0.3)
    lo, hi = np.min(log_px), np.max(log_px)
    scatter_ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="ELBO = log p(x)")
    scatter_ax.set(xlabel="log p(x) by quadrature (nats)", ylabel=f"ELBO, {elbo_samples} samples (nats)")
    scatter_ax.set_title(title, fontsize=10)
    scatter_ax.legend(loc="upper left")
    gap = np.asarray(log_px) - np.asarray(elbo_per_image)
    hist_ax.hist(gap, bins=60)
    hist_ax.axvline(np.mean(gap), color="k", ls="--", lw=1, label=f"mean {np.mean(gap):.2f} nats")
    hist_ax.set(xlabel="log p(x) - ELBO = KL(q(z|x) || p(z|x)) + MC error (nats)", ylabel="images",
                title="the gap per image")
    hist_ax.legend()
    return fig
