"""True posteriors by quadrature and the posterior given half a digit (study parts 6.1, 6.2).

With a 2-D latent space p(z|x) = p(x, z) / p(x) is computable on a grid, so the
encoder's q(z|x) can be drawn against the exact answer (6.1). Observing only the top
half of a digit leaves a factorized Bernoulli likelihood over the observed pixels: the
unobserved ones sum out to 1 pixel by pixel, so log p(x_top|z) just drops their terms
(6.2). Stochastic variational inference for that posterior is in ``study/svi.py`` (6.3),
the contour figures in ``figures/posteriors.py``.

Posteriors of a trained 2-D VAE can be a few hundredths wide, far narrower than a grid
over the prior can resolve, so the quadratures here run on square windows fitted to each
posterior (``posterior_windows``, which returns them as ``grids.Windows``), widened until
they hold it whole, small far modes included (``whole_posterior_windows``, which reports
the mass left at each window's edge). On a window the study also counts the posterior's
modes (``count_modes``) and measures how far p(x_bottom | x_top) is from a product over
pixels (``bottom_pixel_dependence``); the Gaussian closest to the posterior, which
separates the encoder's KL into the amortization and the approximation gap, comes from
``gaussian_fit.best_gaussians``. ``posterior_study`` runs all of it for the images of 6.1
and 6.2. Images are rows of 784 pixels (row-major 28 x 28), so the top 14 rows are the
first 392 pixels; for a decoder of any output size D, "whole" means D pixels and "top
half" the first D // 2. Images are binary batches (N, P), as ``check_images`` in
``core/images.py`` states.
"""
import dataclasses
import math

import numpy as np

from ..core.distributions import bernoulli_log_density
from ..core.elbo import log_prior
from ..core.images import SIDE, check_images
from ..core.logspace import logsumexp, sigmoid
from ..core.model import data_dim, decoder, encoder, params_dtype
from .gaussian_fit import best_gaussians
from .grids import (
    Windows,
    covering_grids,
    edge_mass,
    grid_log_likelihood,
    grid_moments,
    hdr_mask,
    latent_grid,
    log_integrate_grid,
    log_partition,
    neighbourhood_max,
    square_windows,
)
from .quadrature import log_marginal_likelihood
from .windows import decoder_target

TOP_ROWS = SIDE // 2


def top_half(x):
    """The top 14 rows of 28x28 images: x (N, 784) -> (N, 392), the first 392 pixels."""
    return check_images(x, SIDE * SIDE)[:, :TOP_ROWS * SIDE]


def first_pixels(dec_params, pixels):
    """The decoder of the first `pixels` pixels only: its output layer cut to their columns.

    A top half costs half the output layer's product, and a gradient through it needs no
    index of the full logits (autograd's gradient of an index fills (..., D) zeros and adds
    into them, a fifth of SVI's time)."""
    W, b = dec_params[-1]
    return list(dec_params[:-1]) + [(np.ascontiguousarray(W[:, :pixels]), b[:pixels])]


def log_likelihood_top(dec_params, x_top, z):
    """log p(x_top|z): Bernoulli terms of the observed top pixels only.

    x_top (N, D/2), z (..., N, Dz) -> (..., N). The bottom pixels are independent given z,
    and each one's probabilities sum to 1, so marginalizing them drops their terms.
    """
    x_top = check_images(x_top, data_dim(dec_params) // 2, "x_top")
    return bernoulli_log_density(x_top, decoder(first_pixels(dec_params, x_top.shape[-1]), z))


def log_joint_on_grid(dec_params, x, z_grid):
    """log p(x, z) for images x (N, P) at all points of a shared grid z_grid (G, 2) -> (N, G).

    P = D (whole images) or D // 2 (top halves: only the first P pixels are observed).
    Through grids.grid_log_likelihood: all images meet all grid points in one matrix
    product after one decoder call. The grid runs in the decoder's dtype (float32: 3x
    faster than float64, and its rounding, ~1e-5 nats on log p(x, z) ~ -100, is far below
    any Monte Carlo error here); the result is float64.
    """
    x = check_images(x, (data_dim(dec_params), data_dim(dec_params) // 2))
    z_grid = np.asarray(z_grid, dtype=params_dtype(dec_params))
    logits = decoder(first_pixels(dec_params, x.shape[-1]), z_grid)
    log_joint = grid_log_likelihood(logits, x.astype(logits.dtype)) + log_prior(z_grid)
    return log_joint.astype(np.float64)


def log_joint_on_windows(dec_params, x, z_grids, points_per_block=4096):
    """log p(x_n, z) for each image x_n (N, P) on its own grid z_grids (N, G, 2) -> (N, G).

    The decoder runs in its dtype (as in log_joint_on_grid), on blocks of points_per_block
    points of one window at a time, so memory stays bounded for any N and G.
    """
    x = check_images(x, (data_dim(dec_params), data_dim(dec_params) // 2))
    z_grids = np.asarray(z_grids, dtype=params_dtype(dec_params))
    log_joint = np.empty(z_grids.shape[:2])
    observed = first_pixels(dec_params, x.shape[-1])
    for n, image in enumerate(x.astype(z_grids.dtype)):
        for start in range(0, z_grids.shape[1], points_per_block):
            z = z_grids[n, start:start + points_per_block]
            logits = decoder(observed, z)
            log_joint[n, start:start + len(z)] = (logits @ image - log_partition(logits)) + log_prior(z)
    return log_joint


def posterior_windows(dec_params, x, extra_means=None, extra_stds=None, num_points=101,
                      num_stds=5.0, bound=5.0, coarse_spacing=0.125):
    """Square grids fitted to each image's true posterior p(z|x), and log p(x, z) on them.

    x (N, P) (whole images or top halves); extra_means, extra_stds (N, 2): a Gaussian per
    image (e.g. q) that the windows must cover too. p(z|x) is located on a coarse shared
    grid over [-bound, bound]^2, then twice on windows at mean +- num_stds * std.
    Returns Windows: z_grids (N, G, 2), dz (N,), log_joint (N, G), G = num_points**2;
    integrate with grids.log_integrate_grid(log_joint, dz, num_points).
    """
    x = check_images(x, (data_dim(dec_params), data_dim(dec_params) // 2))
    z_grid, _ = latent_grid(-bound, bound, coarse_spacing)
    mean, std = grid_moments(z_grid, log_joint_on_grid(dec_params, x, z_grid))
    spacing = np.full(len(x), coarse_spacing)
    for points in (41, num_points):
        # A posterior narrower than a grid cell shows up as a single point: floor its std.
        means, stds = mean[:, None], np.maximum(std, spacing[:, None])[:, None]
        if extra_means is not None:
            means = np.concatenate([means, np.reshape(extra_means, (-1, 1, 2))], axis=1)
            stds = np.concatenate([stds, np.reshape(extra_stds, (-1, 1, 2))], axis=1)
        z_grids, spacing = covering_grids(means, stds, points, num_stds)
        log_joint = log_joint_on_windows(dec_params, x, z_grids)
        mean, std = grid_moments(z_grids, log_joint)
    return Windows(z_grids, spacing, log_joint)


# The least share of a posterior that mass_outside_window resolves: the window's integral and the quadrature
# of log p(x) each err by about 1e-6 relative, so their ratio says nothing finer than this.
OUTSIDE_RESOLUTION = 1e-5


def mass_outside(log_joint, dz, log_px):
    """The share of each posterior outside its window: 1 - (the window's integral of p(x, z)) / p(x), at least
    OUTSIDE_RESOLUTION. log_joint (N, K * K) on square windows of spacing dz (N,), log_px (N,) of the whole
    plane (quadrature.log_marginal_likelihood) -> (N,)."""
    held = log_integrate_grid(log_joint, dz, math.isqrt(np.shape(log_joint)[-1])) - log_px
    return np.maximum(-np.expm1(held), OUTSIDE_RESOLUTION)


def whole_posterior_windows(dec_params, x, extra_means=None, extra_stds=None, num_points=101, num_stds=4.0,
                            max_edge_mass=1e-4, grow=1.5, max_rounds=8, bound=5.0, coarse_spacing=0.125,
                            coarse_mass=1 - 1e-4, log_px=None):
    """posterior_windows, widened until each holds the whole posterior, with the checks that say so.

    A window fitted to the mean +- num_stds std of a posterior with a second, small mode
    can cut that mode off. So each window is widened (a) to cover every point of the
    coarse global grid over [-bound, bound]^2 in its highest-density region of mass
    coarse_mass, wherever it lies, and then (b) by grow about its centre until at most
    max_edge_mass of the posterior lies on its outermost ring (at most max_rounds times).
    x (N, P), extra_means, extra_stds (N, 2) as in posterior_windows; log_px (N,) log p(x) of x by
    quadrature.log_marginal_likelihood, if already computed.
    Returns Windows as posterior_windows, and a dict of (N,) arrays: edge_mass (on the
    final window) and mass_outside_window, 1 - (the window's integral of p(x, z)) / p(x) with p(x)
    by quadrature.log_marginal_likelihood over its whole square (part 3's), so that no mode or tail
    beyond the window goes unseen, even beyond the coarse grid. Both integrals err by about 1e-6
    relative, so the share is given as at least OUTSIDE_RESOLUTION: below it, it is not resolved.
    """
    windows = posterior_windows(dec_params, x, extra_means, extra_stds, num_points, num_stds, bound, coarse_spacing)
    z_grids, dz, log_joint = windows.z_grids, windows.dz, windows.log_joint
    coarse_grid, _ = latent_grid(-bound, bound, coarse_spacing)
    coarse_log_joint = log_joint_on_grid(dec_params, x, coarse_grid)
    low, high = z_grids.min(axis=1), z_grids.max(axis=1)
    for n, log_f in enumerate(coarse_log_joint):
        held = coarse_grid[hdr_mask(log_f, coarse_mass)]
        low[n], high[n] = np.minimum(low[n], held.min(axis=0)), np.maximum(high[n], held.max(axis=0))
    centers, half_widths = (low + high) / 2, np.max(high - low, axis=1) / 2
    for _ in range(max_rounds + 1):
        z_grids, dz = square_windows(centers, half_widths, num_points)
        log_joint = log_joint_on_windows(dec_params, x, z_grids)
        cut = edge_mass(log_joint, num_points) > max_edge_mass
        if not cut.any():
            break
        half_widths = np.where(cut, grow * half_widths, half_widths)
    if log_px is None:
        log_px = log_marginal_likelihood(first_pixels(dec_params, x.shape[-1]), x)
    outside = mass_outside(log_joint, dz, log_px)
    return Windows(z_grids, dz, log_joint), {"edge_mass": edge_mass(log_joint, num_points),
                                             "mass_outside_window": outside}


def count_modes(log_density, num_points, mass=0.99, min_share=0.01):
    """Modes of a density on a square grid: separate pieces of its highest-density region.

    log_density (K*K,), unnormalized, on a K x K grid in latent_grid's order. The
    highest-density region holding `mass` is split into connected pieces (8-neighbour
    connectivity on the grid); each piece holds a local maximum of the density (its
    largest point), and two pieces are separated by density below the region's level, so
    each piece holding at least min_share of the mass counts as one mode. A second
    piece smaller than that is a ripple or the start of a tail, reported but not counted.
    Returns {"num_modes": int, "shares": masses of all pieces, largest first (a list),
    "peaks": (num_modes, ) grid indices of the counted pieces' maxima (a list)}.
    """
    mask = hdr_mask(log_density, mass).reshape(num_points, num_points)
    labels = connected_pieces(mask)
    pieces = np.unique(labels[labels > 0])
    density = np.exp(log_density - logsumexp(log_density)).reshape(num_points, num_points)
    shares = np.array([density[labels == piece].sum() for piece in pieces])
    peaks = [int(np.argmax(np.where(labels == piece, density, -1.0))) for piece in pieces]
    order = np.argsort(shares)[::-1]
    counted = [int(i) for i in order if shares[i] >= min_share]
    return {"num_modes": len(counted), "shares": [float(shares[i]) for i in order],
            "peaks": [peaks[i] for i in counted]}


def connected_pieces(mask):
    """Label the 8-connected pieces of a boolean (K, K) mask: (K, K) ints, 0 outside it.

    Each point starts with its own label and takes the largest label among its neighbours
    in the mask until nothing changes, so every piece ends with one label (its largest).
    """
    labels = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), 0)
    while True:
        grown = np.where(mask, neighbourhood_max(labels, 0), 0)
        if np.array_equal(grown, labels):
            return labels
        labels = grown


def bottom_pixel_dependence(dec_params, windows, min_marginal=0.01):
    """How far p(x_bottom | x_top) is from a product over the bottom pixels, per image.

    windows: Windows of p(z | x_top), e.g. from whole_posterior_windows of the top halves. Under
    p(x_bottom | x_top) = integral of prod_i p(x_i | z) p(z | x_top) dz,
    with the quadrature weights w_g of p(z | x_top) and p_i(z) = sigmoid(logit_i(z)):
    P(x_i = 1) = m_i = sum_g w_g p_i(z_g) and, as the pixels are independent given z,
    P(x_i = 1, x_j = 1) = sum_g w_g p_i(z_g) p_j(z_g) exactly, so
    Cov(x_i, x_j) = E_z[p_i p_j] - E_z[p_i] E_z[p_j] (i != j), Var(x_i) = m_i (1 - m_i).
    A product over pixels would make every covariance 0. Pairs are taken among the
    bottom pixels (the last D - D // 2) whose m_i lies in [min_marginal, 1 - min_marginal]:
    a pixel certain either way can be correlated with nothing.
    Returns a list of N JSON-ready dicts: num_uncertain_pixels; max_abs_correlation and,
    for that pair, pixel (indices among all D pixels), marginals m_i, m_j,
    joint P(x_i = 1, x_j = 1), product m_i m_j, covariance, correlation.
    """
    split = data_dim(dec_params) // 2
    weights = np.exp(windows.log_joint - logsumexp(windows.log_joint, axis=-1, keepdims=True))
    out = []
    for z_grid, w in zip(windows.z_grids, weights):
        probs = sigmoid(decoder(dec_params, z_grid)[:, split:]).astype(np.float64)  # (G, D - D // 2)
        marginal = w @ probs
        uncertain = np.flatnonzero((marginal >= min_marginal) & (marginal <= 1 - min_marginal))
        record = {"num_uncertain_pixels": int(len(uncertain)), "max_abs_correlation": 0.0, "pixels": None}
        if len(uncertain) >= 2:
            p, m = probs[:, uncertain], marginal[uncertain]
            joint = p.T @ (w[:, None] * p)
            covariance = joint - np.outer(m, m)
            correlation = covariance / np.sqrt(np.outer(m * (1 - m), m * (1 - m)))
            upper = np.triu(np.abs(correlation), k=1)  # each pair once, i < j
            i, j = np.unravel_index(np.argmax(upper), upper.shape)
            record.update({"max_abs_correlation": float(abs(correlation[i, j])),
                           "pixels": [int(split + uncertain[i]), int(split + uncertain[j])],
                           "marginals": [float(m[i]), float(m[j])], "joint": float(joint[i, j]),
                           "product_of_marginals": float(m[i] * m[j]),
                           "covariance": float(covariance[i, j]), "correlation": float(correlation[i, j])})
        out.append(record)
    return out


def normalized(windows):
    """log p(z|x) (N, G) on Windows, e.g. of posterior_windows."""
    points_per_axis = math.isqrt(windows.z_grids.shape[1])
    return windows.log_joint - log_integrate_grid(windows.log_joint, windows.dz, points_per_axis)[:, None]


def encoder_against_posterior(enc_params, dec_params, x, num_points, log_px=None):
    """The encoder's q(z|x) against p(z|x) for images x (N, D) on windows holding both (log_px as
    whole_posterior_windows takes it).

    KL(q || p) = log p(x) - ELBO(q), with log p(x) the window's quadrature and the ELBOs
    of q and of the best Gaussian q* from gaussian_fit (as in part 8, so the two KLs
    differ by exactly that image's amortization gap).
    Returns {"summary": {"kl", "best_gaussian_kl", "amortization_gap", "edge_mass",
    "mass_outside_window": lists (N,)}, "x", "q_mean", "q_log_std" (N, 2), "windows" (Windows)}.
    """
    q_mean, q_log_std = (np.asarray(a, dtype=np.float64) for a in encoder(enc_params, x))
    windows, checks = whole_posterior_windows(dec_params, x, q_mean, np.exp(q_log_std), num_points, log_px=log_px)
    window_log_px = log_integrate_grid(windows.log_joint, windows.dz, num_points)
    fits = best_gaussians(decoder_target(dec_params, x), q_mean, q_log_std)
    kl, best = window_log_px - fits.start_elbo, window_log_px - fits.optimal.elbo
    summary = {"kl": kl, "best_gaussian_kl": best, "amortization_gap": kl - best, **checks}
    return {"summary": {k: np.asarray(v).tolist() for k, v in summary.items()},
            "x": x, "q_mean": q_mean, "q_log_std": q_log_std, "windows": windows}


def posterior_study(enc_params, dec_params, train_x_shown, test_x_shown, num_points=101, mode_mass=0.99,
                    mode_min_share=0.01):
    """True posteriors of the images shown in 6.1 and 6.2, and the numbers their captions state.

    train_x_shown, test_x_shown (N, D): whole images. Every window is located once here
    (whole_posterior_windows) and shared by the figures.
    Returns {"summary": JSON-ready dict, "train", "test": encoder_against_posterior of
    each set (6.1), "top": {"x_top" (N, D // 2), "windows" (Windows) of p(z | x_top), "log_post_whole"
    (N, G) p(z|x) of the whole image on the same grids} (6.2)}. The summary holds
    "true_vs_approx": {"train", "test": per-panel kl = KL(q || p), best_gaussian_kl,
    amortization_gap, edge_mass, mass_outside_window}; "top_half": per test image
    posterior_mean, posterior_std, whole_image_std, edge_mass, mass_outside_window,
    whole_image_outside_window (the share of p(z|x) of the whole image that the windows leave out),
    num_modes and mode_shares (count_modes at mode_mass, mode_min_share), and those two settings;
    "bottom_dependence": bottom_pixel_dependence per test image.
    """
    d = data_dim(dec_params)
    train_x_shown, test_x_shown = (check_images(x, d) for x in (train_x_shown, test_x_shown))
    train = encoder_against_posterior(enc_params, dec_params, train_x_shown, num_points)
    # log p(x) of the test images by quadrature, once: for their 6.1 windows and for what the 6.2 windows leave out.
    whole_log_px = log_marginal_likelihood(dec_params, test_x_shown)
    test = encoder_against_posterior(enc_params, dec_params, test_x_shown, num_points, whole_log_px)
    x_top = test_x_shown[:, :d // 2]
    whole_mean, whole_std = grid_moments(test["windows"].z_grids, test["windows"].log_joint)
    top_windows, checks = whole_posterior_windows(dec_params, x_top, whole_mean, whole_std, num_points)
    whole_on_top_windows = log_joint_on_windows(dec_params, test_x_shown, top_windows.z_grids)
    log_post_whole = normalized(dataclasses.replace(top_windows, log_joint=whole_on_top_windows))
    # What the same windows leave out of p(z|x), drawn beside p(z|x_top), as whole_posterior_windows measures it.
    whole_outside = mass_outside(whole_on_top_windows, top_windows.dz, whole_log_px)
    top_mean, top_std = grid_moments(top_windows.z_grids, top_windows.log_joint)
    modes = [count_modes(f, num_points, mode_mass, mode_min_share) for f in top_windows.log_joint]
    top_half = {"posterior_mean": top_mean.tolist(), "posterior_std": top_std.tolist(),
                "whole_image_std": whole_std.tolist(), **{k: v.tolist() for k, v in checks.items()},
                "whole_image_outside_window": whole_outside.tolist(),
                "num_modes": [m["num_modes"] for m in modes], "mode_shares": [m["shares"] for m in modes],
                "mode_mass": mode_mass, "mode_min_share": mode_min_share}
    summary = {"true_vs_approx": {"train": train["summary"], "test": test["summary"]}, "top_half": top_half,
               "bottom_dependence": bottom_pixel_dependence(dec_params, top_windows)}
    return {"summary": summary, "train": train, "test": test,
            "top": {"x_top": x_top, "windows": top_windows, "log_post_whole": log_post_whole}}
