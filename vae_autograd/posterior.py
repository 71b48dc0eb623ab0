"""True posteriors by quadrature and the posterior given half a digit (study parts 6.1, 6.2).

With a 2-D latent space p(z|x) = p(x, z) / p(x) is computable on a grid, so the
encoder's q(z|x) can be drawn against the exact answer (6.1). Observing only the top
half of a digit leaves a factorized Bernoulli likelihood over the observed pixels: the
unobserved ones sum out to 1 pixel by pixel, so log p(x_top|z) just drops their terms
(6.2). Stochastic variational inference for that posterior is in ``svi.py`` (6.3), the
contour figures in ``posterior_figures.py``.

Posteriors of a trained 2-D VAE can be a few hundredths wide, far narrower than a grid
over the prior can resolve, so the quadratures here run on square windows fitted to each
posterior (``posterior_windows``). Images are rows of 784 pixels (row-major 28 x 28), so
the top 14 rows are the first 392 pixels; for a decoder of any output size D, "whole"
means D pixels and "top half" the first D // 2. Images are binary batches (N, P), as
``images.check_images`` states.
"""
import numpy as np

from .distributions import bernoulli_log_density, softplus
from .elbo import log_prior
from .images import SIDE, check_images
from .integrate import grid_log_likelihood, latent_grid, logsumexp
from .model import data_dim, decoder, params_dtype

TOP_ROWS = SIDE // 2


def top_half(x):
    """The top 14 rows of 28x28 images: x (N, 784) -> (N, 392), the first 392 pixels."""
    return check_images(x, SIDE * SIDE)[:, :TOP_ROWS * SIDE]


def log_likelihood_top(dec_params, x_top, z):
    """log p(x_top|z): Bernoulli terms of the observed top pixels only.

    x_top (N, D/2), z (..., N, Dz) -> (..., N). The bottom pixels are independent given z,
    and each one's probabilities sum to 1, so marginalizing them drops their terms.
    """
    x_top = check_images(x_top, data_dim(dec_params) // 2, "x_top")
    return bernoulli_log_density(x_top, decoder(dec_params, z)[..., :x_top.shape[-1]])


# ---------------------------------------------------------------- quadrature on grids

def log_joint_on_grid(dec_params, x, z_grid):
    """log p(x, z) for images x (N, P) at all points of a shared grid z_grid (G, 2) -> (N, G).

    P = D (whole images) or D // 2 (top halves: only the first P pixels are observed).
    Through integrate.grid_log_likelihood: all images meet all grid points in one matrix
    product after one decoder call. The grid runs in the decoder's dtype (float32: 3x
    faster than float64, and its rounding, ~1e-5 nats on log p(x, z) ~ -100, is far below
    any Monte Carlo error here); the result is float64.
    """
    x = check_images(x, (data_dim(dec_params), data_dim(dec_params) // 2))
    z_grid = np.asarray(z_grid, dtype=params_dtype(dec_params))
    logits = decoder(dec_params, z_grid)[:, :x.shape[-1]]
    log_joint = grid_log_likelihood(logits, x.astype(logits.dtype)) + log_prior(z_grid)
    return log_joint.astype(np.float64)


def log_joint_on_windows(dec_params, x, z_grids):
    """log p(x_n, z) for each image x_n (N, P) on its own grid z_grids (N, G, 2) -> (N, G).

    One decoder call for all windows (in its dtype, as in log_joint_on_grid); memory
    grows as N * G * D, so pass a few images.
    """
    x = check_images(x, (data_dim(dec_params), data_dim(dec_params) // 2))
    z_grids = np.asarray(z_grids, dtype=params_dtype(dec_params))
    logits = decoder(dec_params, z_grids)[..., :x.shape[-1]]
    log_lik = (logits @ x.astype(logits.dtype)[:, :, None])[..., 0] - np.sum(softplus(logits), axis=-1)
    return (log_lik + log_prior(z_grids)).astype(np.float64)


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


def posterior_windows(dec_params, x, extra_means=None, extra_stds=None, num_points=101,
                      num_stds=5.0, bound=5.0, coarse_spacing=0.125):
    """Square grids fitted to each image's true posterior p(z|x), and log p(x, z) on them.

    x (N, P) (whole images or top halves); extra_means, extra_stds (N, 2): a Gaussian per
    image (e.g. q) that the windows must cover too. p(z|x) is located on a coarse shared
    grid over [-bound, bound]^2, then twice on windows at mean +- num_stds * std.
    Returns z_grids (N, G, 2), dz (N,), log_joint (N, G), G = num_points**2; integrate
    with integrate.log_integrate_grid(log_joint, dz, num_points).
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
    return z_grids, spacing, log_joint


def quadrature_kl(log_q, log_p, dz):
    """KL(q || p) = sum q (log q - log p) dz^2 for normalized log-densities (N, G) on windows."""
    return np.sum(np.exp(log_q) * (log_q - log_p), axis=-1) * dz**2
