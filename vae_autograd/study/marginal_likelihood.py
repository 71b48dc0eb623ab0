"""log p(x) by quadrature over the 2-D latent plane (quadrature.log_marginal_likelihood), against the
ELBO and IWAE bounds (study part 3)."""
import math

import numpy as np

from ..core.elbo import check_num_samples, log_importance_weights
from ..core.images import check_images
from ..core.logspace import logsumexp
from ..core.model import data_dim
from .coarse_grid import coarse_grid_summary
from .quadrature import log_marginal_likelihood


def iwae_bound(enc_params, dec_params, x, rng, num_samples, batch_size=None, proposal=None):
    """Importance-weighted bound log mean_k p(x, z_k) / q(z_k), z_k ~ q, per image.

    x (N, 784) -> (N,). q is the encoder's q(z|x), or proposal = (mean, log_std) (N, 2), a
    Gaussian per image (part 8 uses the best one, q*). K = 1 is the ELBO; as K grows it
    rises to log p(x) (Burda et al. 2016), so it checks the quadrature from below with an
    independent method.
    """
    check_num_samples(num_samples)
    batch_size = batch_size or max(1, 20000 // num_samples)
    log_w = log_importance_weights(enc_params, dec_params, x, rng, num_samples, batch_size, proposal,
                                   samples_per_chunk(batch_size))
    return logsumexp(log_w.astype(np.float64), axis=0) - float(np.log(num_samples))


def samples_per_chunk(batch_size, points_per_chunk=2000):
    """Draws per image block decoded at once: about points_per_chunk points, whose (points, 784)
    arrays stay in cache, and memory small, for any number of samples."""
    return max(1, points_per_chunk // batch_size)


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
    axis that each used (at least 4: an image the coarse grid resolved is refined), in the same
    call (its twice), so the check shares decoded cells too.

    images: {set name: x (N_s, 784)}. Returns {name: {"log_px": (N_s,), "edge_mass": (N_s,),
    "finer": (n_s,) the check's log p(x) of the first n_s = min(N_s, num_checked) images,
    or None without a check}}.
    """
    sets = {name: check_images(x, data_dim(dec_params), f"the images of {name}") for name, x in images.items()}
    starts = np.cumsum([0] + [len(x) for x in sets.values()])
    checked = np.concatenate([start + np.arange(min(len(x), num_checked)) for start, x in zip(starts, sets.values())])
    log_px, info = log_marginal_likelihood(dec_params, np.concatenate(list(sets.values())), bound=bound,
                                           return_info=True, twice=checked)
    finer = np.full(len(log_px), np.nan)
    finer[checked] = info["twice"]
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
    log_w = log_importance_weights(enc_params, dec_params, x, rng, elbo_samples, 500,
                                   samples_per_chunk=samples_per_chunk(500)).astype(np.float64)
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
