"""What the trained model draws (study parts 4-5): prior samples, reconstructions, latent means,
the 20 x 20 lattice of Figure 4b and straight latent paths, as arrays for the figures."""
import math

import numpy as np

from ..core.distributions import sample_bernoulli, sample_diag_gaussian
from ..core.images import SIDE, check_images, image_grid
from ..core.logspace import sigmoid
from ..core.model import data_dim, decoder, encoder, latent_dim


def prior_samples(dec_params, rng, num_samples=10):
    """z ~ p(z) = N(0, I), then p(x|z): (z (S, Dz), means (S, 784), binary (S, 784)).

    means are the Bernoulli means sigmoid(logits); binary is one draw x ~ p(x|z).
    rng is used for z first (rng.standard_normal((S, Dz))), then for the pixels.
    """
    z = rng.standard_normal((num_samples, latent_dim(dec_params)))
    logits = decoder(dec_params, z)
    return z, sigmoid(logits), sample_bernoulli(logits, rng)


def reconstructions(enc_params, dec_params, x, rng):
    """z ~ q(z|x) (reparameterized), then p(x|z). x (N, 784) -> (z (N, Dz), means, binary (N, 784))."""
    check_images(x, data_dim(dec_params))
    mean, log_std = encoder(enc_params, x)
    z = sample_diag_gaussian(mean, log_std, rng)
    logits = decoder(dec_params, z)
    return z, sigmoid(logits), sample_bernoulli(logits, rng)


def decoded_means(dec_params, z):
    """Bernoulli means sigmoid(logits) of p(x|z) for latent points z (..., 2) -> (..., 784), one decoder call."""
    z = np.asarray(z)
    return sigmoid(decoder(dec_params, z.reshape(-1, z.shape[-1]))).reshape(z.shape[:-1] + (-1,))


def latent_means(enc_params, x):
    """Means of q(z|x) for a batch of images x (N, 784) -> (N, 2); the latent space must be 2-D."""
    check_images(x, SIDE * SIDE)
    mean = encoder(enc_params, x)[0]
    if mean.shape[-1] != 2:
        raise ValueError(f"latent-space plots need a 2-D latent space, the encoder gives "
                         f"{mean.shape[-1]}-D; train with --latent-dim 2")
    return mean


def embedding_bounds(enc_params, x, percentiles=(1.0, 99.0)):
    """Per-axis percentile range of the means of q(z|x): (2, 2), row d = (lo, hi) of z_d.

    A range for lattice="linear" that covers where the data lie without its outliers.
    """
    return np.percentile(latent_means(enc_params, x), percentiles, axis=0).T


# Acklam's rational approximation to the normal inverse CDF, highest power first.
ACKLAM_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
            1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
ACKLAM_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
            6.680131188771972e+01, -1.328068155288572e+01, 1.0)
ACKLAM_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
            -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
ACKLAM_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
            3.754408661907416e+00, 1.0)


def normal_inverse_cdf(p):
    """x with Phi(x) = p for the standard normal; p in (0, 1), any shape -> float64 of that shape.

    Acklam's approximation (relative error < 1.2e-9), refined by one Halley step on
    Phi(x) = erfc(-x / sqrt(2)) / 2, which is cubically convergent: ~1e-15 after it.
    Works on the lower half q = min(p, 1 - p) and mirrors: 1 - p is exact for p >= 1/2,
    and erfc of a positive argument has no cancellation, so the upper tail is as
    accurate as the lower one.
    """
    p = np.asarray(p, dtype=np.float64)
    if not np.all((p > 0) & (p < 1)):
        raise ValueError("normal_inverse_cdf needs probabilities strictly between 0 and 1")
    q = np.minimum(p, 1.0 - p)
    r = q - 0.5
    central = r * np.polyval(ACKLAM_A, r * r) / np.polyval(ACKLAM_B, r * r)
    t = np.sqrt(-2.0 * np.log(q))
    tail = np.polyval(ACKLAM_C, t) / np.polyval(ACKLAM_D, t)
    x = np.where(q < 0.02425, tail, central)
    error = 0.5 * np.vectorize(math.erfc, otypes=[float])(-x / math.sqrt(2.0)) - q
    u = error * math.sqrt(2.0 * math.pi) * np.exp(0.5 * x * x)  # error / density
    x = x - u / (1.0 + 0.5 * x * u)
    return np.where(p > 0.5, -x, x)


def latent_lattice(dec_params, n=20, lattice="gaussian", bounds=None):
    """Bernoulli means of p(x|z) on an n x n lattice of z: (z (n*n, 2), image (n*28, n*28)).

    lattice="gaussian": both coordinates are normal_inverse_cdf((i + 0.5) / n), i < n,
    the centres of n slices of equal prior probability (for n = 20: -1.96 ... 1.96), as in
    Kingma & Welling's Figure 4b. lattice="linear": n evenly spaced values from lo to hi,
    bounds = (lo, hi) for both axes or ((lo1, hi1), (lo2, hi2)), e.g. embedding_bounds(...).
    Orientation matches the scatter plot: z1 grows left to right, z2 bottom to top;
    z lists the tiles row-major from the top-left tile.
    """
    if latent_dim(dec_params) != 2:
        raise ValueError(f"the lattice needs a 2-D latent space, the decoder takes "
                         f"{latent_dim(dec_params)}-D z; train with --latent-dim 2")
    if not (isinstance(n, (int, np.integer)) and n >= 2):
        raise ValueError(f"lattice size n must be an integer >= 2, got {n!r}")
    if lattice == "gaussian":
        if bounds is not None:
            raise ValueError("bounds apply only to lattice='linear'; drop them for 'gaussian'")
        coords = np.tile(normal_inverse_cdf((np.arange(n) + 0.5) / n), (2, 1))
    elif lattice == "linear":
        if bounds is None:
            raise ValueError("lattice='linear' needs bounds=(lo, hi), e.g. embedding_bounds(enc_params, x)")
        bounds = np.broadcast_to(np.asarray(bounds, dtype=np.float64), (2, 2))
        if not np.all(bounds[:, 1] > bounds[:, 0]):
            raise ValueError(f"bounds must satisfy lo < hi on each axis, got {bounds.tolist()}")
        coords = np.linspace(bounds[:, 0], bounds[:, 1], n, axis=1)
    else:
        raise ValueError(f"lattice must be 'gaussian' or 'linear', got {lattice!r}")
    # Top tile row first, so the highest z2 is drawn at the top.
    z1, z2 = np.meshgrid(coords[0], coords[1][::-1])
    z = np.stack([z1.ravel(), z2.ravel()], axis=1)
    return z, image_grid(sigmoid(decoder(dec_params, z)), n, n)


def interpolate_latents(enc_params, x_a, x_b, num_steps=10):
    """Straight latent paths between the means of q(z|x_a) and q(z|x_b): (P, num_steps, 2).

    x_a, x_b: (P, 784). z_alpha = alpha z_a + (1 - alpha) z_b for alpha = 1, ..., 0 in
    num_steps equal steps, so each path starts exactly at z_a and ends exactly at z_b.
    """
    check_images(x_a, SIDE * SIDE, "x_a")
    if np.shape(x_b) != np.shape(x_a):
        raise ValueError(f"x_a and x_b must pair up: shapes {np.shape(x_a)} and {np.shape(x_b)}")
    if num_steps < 2:
        raise ValueError(f"an interpolation needs num_steps >= 2 (both ends), got {num_steps}")
    z_a, z_b = np.split(latent_means(enc_params, np.concatenate([x_a, x_b])), 2)
    alpha = np.linspace(1.0, 0.0, num_steps)[:, None]
    return alpha * z_a[:, None, :] + (1.0 - alpha) * z_b[:, None, :]
