"""Where the ELBO loses its nats: approximation and amortization gaps (study part 8).

Following Cremer, Li & Duvenaud (2018), three Gaussians are compared per image
(gaussian_fit.best_gaussians finds the last two):
    q          the encoder's q(z|x) (amortized inference);
    q_refined  the ELBO's local optimum reached from q (test-time refinement);
    q*         the global optimum over diagonal Gaussians for this one image.
With log p(x) from the 2-D quadrature (quadrature.log_marginal_likelihood):
    approximation gap = log p(x) - ELBO(q*)       (the Gaussian family's limit)
    amortization gap  = ELBO(q*) - ELBO(q)        (the encoder's limit)
    refinement gain   = ELBO(q_refined) - ELBO(q)
and the two gaps add up to log p(x) - ELBO(q). An image is in a wrong basin when
ELBO(q_refined) < ELBO(q*) - 0.1: the encoder pointed where local search cannot leave.
All three ELBOs are exact up to quadrature error (no Monte Carlo), so the gaps of single
images are meaningful, and their means carry only the sampling error of the images.
"""
import numpy as np

from ..core.images import check_images
from ..core.model import data_dim, encoder
from .gaussian_fit import (
    MODE_GRID_BOUND,
    MODE_GRID_SPACING,
    BestGaussians,
    Gaussians,
    best_gaussians,
    fit_on_windows,
    global_fit,
    joined,
    posterior_starts,
)
from .grids import covering_grids, grid_moments, latent_grid
from .marginal_likelihood import iwae_bound
from .posterior import log_joint_on_windows, mass_outside
from .quadrature import log_marginal_likelihood
from .windows import decoder_target, lattice_refinement

WRONG_BASIN_NATS = 0.1  # q_refined this far below q* counts as a wrong basin
# ELBO(q*) <= log p(x) for every q: an ELBO above log p(x) by more than this is an error of the
# quadrature or of the ELBO, never an approximation gap. Both are exact to far less (the
# quadrature to 1e-6 against brute force, the window ELBOs to 1e-5, a relu decoder's on its finer windows to
# 6e-4: study.windows).
GAP_TOLERANCE = 1e-3


def mean_and_se(values):
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def inference_gap_study(enc_params, dec_params, x, rng=None, num_steps=100,
                        iwae_ks=(1, 10, 100, 1000), iwae_images=500, convergence_images=1000, log_px=None,
                        iwae_encoder=None, block_size=2500):
    """Part 8: split log p(x) - ELBO(q) of every image x (N, 784) into its two gaps.

    log_px (N,): quadrature.log_marginal_likelihood of x if already computed (part 3), and
    iwae_encoder: {K: bounds (M,)} with the encoder's q(z|x) as the proposal on the first
    M >= iwae_images images, if already computed (part 3; its Ks replace iwae_ks).
    The convergence checks run on the first convergence_images images.

    The images are fitted in blocks of block_size, each with its own Gaussians. Returns {"summary":
    JSON-ready means and standard errors (over images), the wrong-basin fraction and its
    share of the gap, the convergence checks and (with rng) the IWAE table with q(z|x)
    and q* as proposals on the first iwae_images; "per_image": (N,) arrays log_px,
    elbo_amortized / _refined / _optimal, refined_converged (bool), and the Gaussians
    mean_* / log_std_* (N, 2)}.
    """
    x = check_images(x, data_dim(dec_params)).astype(np.float32)
    log_px = log_marginal_likelihood(dec_params, x) if log_px is None else np.asarray(log_px, np.float64)
    enc_mean, enc_log_std = (np.asarray(a, np.float64) for a in encoder(enc_params, x))
    # Images in blocks of a fixed size, so that memory does not grow with their number (a finer lattice,
    # more points per window: fewer images per block); the blocks share the decoded lattice points (cache).
    cache, block_size = {}, max(1, block_size // lattice_refinement(dec_params)**2)
    fits = joined_fits([best_gaussians(decoder_target(dec_params, x[rows], cache=cache), enc_mean[rows],
                                       enc_log_std[rows], num_steps)
                        for rows in (slice(start, start + block_size) for start in range(0, len(x), block_size))])
    above = fits.optimal.elbo - log_px
    if above.max() > GAP_TOLERANCE:
        worst = int(np.argmax(above))
        raise ValueError(f"ELBO(q*) exceeds log p(x) by {above[worst]:.2g} nats on image {worst} "
                         f"({np.sum(above > GAP_TOLERANCE)} images beyond {GAP_TOLERANCE}): the quadrature or the "
                         "fit is wrong there, so no approximation gap can be given")
    per_image = {"log_px": log_px, "elbo_amortized": fits.start_elbo, "elbo_refined": fits.refined.elbo,
                 "elbo_optimal": fits.optimal.elbo, "mean_amortized": enc_mean, "log_std_amortized": enc_log_std,
                 "mean_refined": fits.refined.mean, "mean_optimal": fits.optimal.mean,
                 "log_std_refined": fits.refined.log_std, "log_std_optimal": fits.optimal.log_std,
                 "refined_converged": fits.refined_converged}
    summary = gap_summary(per_image)
    if convergence_images:
        subset = {k: v[:convergence_images] for k, v in per_image.items()}
        target = decoder_target(dec_params, x[:convergence_images], cache=cache)
        summary["convergence"] = convergence_checks(target, subset, num_steps)
    if iwae_images and rng is not None:
        subset = slice(0, iwae_images)
        optimal = (fits.optimal.mean[subset], fits.optimal.log_std[subset])  # iwae_bound's proposal
        if iwae_encoder is None:
            iwae_encoder = {k: iwae_bound(enc_params, dec_params, x[subset], rng, k) for k in iwae_ks}
        summary["iwae"] = {
            "num_images": len(x[subset]),
            "log_px": float(log_px[subset].mean()),
            "encoder": {int(k): list(mean_and_se(bounds[subset])) for k, bounds in iwae_encoder.items()},
            "optimal": {int(k): list(mean_and_se(iwae_bound(enc_params, dec_params, x[subset], rng, k,
                                                            proposal=optimal)))
                        for k in iwae_encoder}}
    return {"summary": summary, "per_image": per_image}


def joined_fits(blocks):
    """The BestGaussians of consecutive blocks of images as one, its rows numbering the images in order."""
    def gaussians(parts):
        return Gaussians(np.arange(sum(len(g.mean) for g in parts)), *(np.concatenate([getattr(g, key) for g in parts])
                                                                       for key in ("mean", "log_std", "elbo")))
    return BestGaussians(np.concatenate([b.start_elbo for b in blocks]), gaussians([b.refined for b in blocks]),
                         gaussians([b.optimal for b in blocks]), np.concatenate([b.refined_converged for b in blocks]))


def convergence_checks(target, per_image, num_steps):
    """How much better than q* other starts and more iterations do, for the images of per_image.

    target: the Target of those images. The other starts are each
    posterior mode's best lattice point with twice the local spread, and the whole
    posterior's mean and spread on the coarse grid of posterior_modes; their best, if
    above q*, is what q* missed ("another_start", >= 0: the mean gain, and its largest on
    one image). More iterations is one more round of num_steps from q* on fresh windows
    (their mean change, either sign).
    """
    num_images = len(per_image["log_px"])
    images = np.arange(num_images)
    modes = posterior_starts(target, within_nats=np.inf)
    whole_mean, whole_std = coarse_posterior_moments(target.log_joint_grid)
    starts = joined(Gaussians(modes.local.image_of_row, modes.best_point, modes.local.log_std + np.log(2.0)),
                    Gaussians(images, whole_mean, np.log(whole_std)))
    optimal = per_image["elbo_optimal"]
    q_star = Gaussians(images, per_image["mean_optimal"], per_image["log_std_optimal"], optimal)
    other = global_fit(target, num_images, starts, num_steps, extra=q_star).elbo
    longer = fit_on_windows(target, q_star, num_steps, max_rounds=1).fitted.elbo
    return {"num_images": num_images,
            "another_start": float(np.mean(other - optimal)),
            "another_start_max_per_image": float(np.max(other - optimal)),
            "more_iterations": float(np.mean(longer - optimal)),
            "more_iterations_max_per_image": float(np.max(np.abs(longer - optimal)))}


def coarse_posterior_moments(log_joint_grid, bound=MODE_GRID_BOUND, spacing=MODE_GRID_SPACING):
    """Mean and std (N, 2) of each image's posterior on the coarse grid of posterior_modes.

    std is kept at least the grid spacing: a posterior narrower than the grid looks like a point.
    """
    z_grid, _ = latent_grid(-bound, bound, spacing)
    mean, std = grid_moments(z_grid, log_joint_grid(z_grid))
    return mean, np.maximum(std, spacing)


def in_wrong_basin(per_image):
    """(N,) bool: q_refined more than WRONG_BASIN_NATS below q*."""
    return per_image["elbo_optimal"] - per_image["elbo_refined"] > WRONG_BASIN_NATS


def gap_summary(per_image):
    """Means and standard errors over images of the ELBOs, gaps and wrong basins (JSON-ready)."""
    log_px, amortized = per_image["log_px"], per_image["elbo_amortized"]
    refined, optimal = per_image["elbo_refined"], per_image["elbo_optimal"]
    wrong_basin = in_wrong_basin(per_image)
    total_gap, approximation_gap, amortization_gap = log_px - amortized, log_px - optimal, optimal - amortized
    columns = [  # the summary's key of each mean, of its standard error, and the values
        ("log_px", "log_px_se", log_px), ("elbo_amortized", "elbo_amortized_se", amortized),
        ("elbo_refined", "elbo_refined_se", refined), ("elbo_optimal", "elbo_optimal_se", optimal),
        ("approximation_gap", "approximation_gap_se", approximation_gap),
        ("amortization_gap", "amortization_gap_se", amortization_gap), ("total_gap", "total_gap_se", total_gap),
        ("gap_after_refinement", "gap_after_refinement_se", log_px - refined),
        ("refinement_gain", "refinement_gain_se", refined - amortized),
        ("wrong_basin_fraction", "wrong_basin_fraction_se", wrong_basin)]
    summary = {"num_images": len(log_px)}
    for key, se_key, values in columns:
        summary[key], summary[se_key] = mean_and_se(values)
    summary["wrong_basin_share_of_gap"] = float(total_gap[wrong_basin].sum() / total_gap.sum())
    summary["wrong_basin_share_of_amortization_gap"] = float(
        amortization_gap[wrong_basin].sum() / amortization_gap.sum())
    summary["refined_below_optimal_in_wrong_basins"] = (
        float((optimal - refined)[wrong_basin].mean()) if wrong_basin.any() else 0.0)
    summary["min_approximation_gap"] = float(approximation_gap.min())
    summary["refinement_unconverged_fraction"] = float(1.0 - np.mean(per_image["refined_converged"]))
    return summary


# Each Gaussian of part 8: its mean and log std keys in per_image.
GAUSSIAN_KEYS = {"amortized": ("mean_amortized", "log_std_amortized"), "refined": ("mean_refined", "log_std_refined"),
                 "optimal": ("mean_optimal", "log_std_optimal")}


def worst_amortized(dec_params, x, per_image, num_shown=4, num_points=101):
    """The images with the largest amortization gaps, their true posteriors and three Gaussians.

    x (N, 784) and per_image from inference_gap_study; half the images are the largest
    gaps overall, half the largest among wrong-basin images (or the next largest overall, if
    there are fewer). Returns {"images": (M,) indices into x, "means", "stds": (M, 3, 2) of
    q(z|x), q_refined and q* (in GAUSSIAN_KEYS' order), "z_grids" (M, G, 2) square windows
    holding all three to 4 standard deviations (the posterior's mode too, at q*), "log_joint"
    (M, G) log p(x, z) on them, "mass_outside" (M,) the share of p(z|x) outside each window, against
    per_image's log p(x) (posterior.mass_outside)}.
    """
    x = check_images(x, data_dim(dec_params))
    amort = per_image["elbo_optimal"] - per_image["elbo_amortized"]
    wrong = np.flatnonzero(in_wrong_basin(per_image))
    by_gap = np.argsort(-amort)
    shown = list(by_gap[:num_shown - num_shown // 2])
    shown += [n for n in wrong[np.argsort(-amort[wrong])] if n not in shown][:num_shown - len(shown)]
    shown += [n for n in by_gap if n not in shown][:num_shown - len(shown)]  # if wrong basins are few
    shown = np.array(shown)
    means = np.stack([per_image[mean_key][shown] for mean_key, _ in GAUSSIAN_KEYS.values()], axis=1)
    stds = np.exp(np.stack([per_image[log_std_key][shown] for _, log_std_key in GAUSSIAN_KEYS.values()], axis=1))
    z_grids, dz = covering_grids(means, stds, num_points, 4.0)
    log_joint = log_joint_on_windows(dec_params, x[shown], z_grids)
    return {"images": shown, "means": means, "stds": stds, "z_grids": z_grids, "log_joint": log_joint,
            "mass_outside": mass_outside(log_joint, dz, per_image["log_px"][shown])}
