"""Figures of the trained VAE: samples, reconstructions and the 2-D latent space (study parts 4-5).

Every figure comes from a pure helper that returns the numbers it shows (so tests can
check them) and one batched encoder and/or decoder call: no loop runs the network per
image. Figures are built on ``matplotlib.figure.Figure`` and never touch pyplot.

Images are drawn as in the paper: white ink on black (grey colormap, 0 = black,
1 = white, fixed range [0, 1]), tiled into one array so panels touch without gaps.
"""
import math

import numpy as np
from matplotlib.figure import Figure

from .distributions import sample_bernoulli, sample_diag_gaussian, sigmoid
from .images import SIDE, check_images
from .model import data_dim, decoder, encoder, latent_dim


def to_image(x):
    """Flat images (..., 784) -> (..., 28, 28), rows of pixels in reading order."""
    x = np.asarray(x)
    if x.shape[-1:] != (SIDE * SIDE,):
        raise ValueError(f"images must have 784 = 28 x 28 pixels on the last axis, got shape "
                         f"{x.shape}; flatten each image to length 784")
    return x.reshape(x.shape[:-1] + (SIDE, SIDE))


def image_grid(images, rows, cols):
    """Tile images (N, 784) or (N, 28, 28), N = rows * cols, into one (rows*28, cols*28) array.

    Row-major: image k lands in tile row k // cols, tile column k % cols.
    """
    images = np.asarray(images)
    if images.shape[-2:] != (SIDE, SIDE):
        images = to_image(images)
    if images.ndim != 3 or len(images) != rows * cols:
        raise ValueError(f"need rows * cols = {rows} * {cols} = {rows * cols} images of 28 x 28 "
                         f"pixels, got an array of shape {images.shape}")
    return images.reshape(rows, cols, SIDE, SIDE).swapaxes(1, 2).reshape(rows * SIDE, cols * SIDE)


def plot_images(images, rows, cols, row_labels=None, col_labels=None, title=None,
                inches_per_image=0.5):
    """Figure of images (N, 784) or (N, 28, 28) tiled rows x cols without gaps, white on black.

    row_labels / col_labels (optional, one per tile row / column) are written beside
    the tiles, at the left and at the top.
    """
    return plot_grid(image_grid(images, rows, cols), row_labels, col_labels, title, inches_per_image)


def plot_grid(grid, row_labels=None, col_labels=None, title=None, inches_per_image=0.5):
    """Figure of an image_grid array (rows*28, cols*28); see plot_images."""
    rows, cols = grid.shape[0] // SIDE, grid.shape[1] // SIDE
    fig = Figure(figsize=(cols * inches_per_image + 1.0, rows * inches_per_image + 0.6),
                 layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    # Labels are tick labels at the tile centres; the ticks themselves are hidden.
    centres = SIDE * np.arange(max(rows, cols)) + (SIDE - 1) / 2
    ax.set_yticks(centres[:rows] if row_labels is not None else [],
                  row_labels if row_labels is not None else [])
    ax.set_xticks(centres[:cols] if col_labels is not None else [],
                  col_labels if col_labels is not None else [])
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    if title is not None:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- 4.1 samples from the model

def prior_samples(dec_params, rng, num_samples=10):
    """z ~ p(z) = N(0, I), then p(x|z): (z (S, Dz), means (S, 784), binary (S, 784)).

    means are the Bernoulli means sigmoid(logits); binary is one draw x ~ p(x|z).
    rng is used for z first (rng.standard_normal((S, Dz))), then for the pixels.
    """
    z = rng.standard_normal((num_samples, latent_dim(dec_params)))
    logits = decoder(dec_params, z)
    return z, sigmoid(logits), sample_bernoulli(logits, rng)


def fig_prior_samples(dec_params, rng, num_samples=10):
    """2 x num_samples figure: Bernoulli means of p(x|z), z ~ p(z) (top), and one binary x (bottom)."""
    _, means, binary = prior_samples(dec_params, rng, num_samples)
    return plot_images(np.concatenate([means, binary]), 2, num_samples,
                       row_labels=["mean", "sample"],
                       title="Generated from the prior: z ~ N(0, I), x ~ p(x|z)")


# ---------------------------------------------------------------- 4.2 reconstructions

def reconstructions(enc_params, dec_params, x, rng):
    """z ~ q(z|x) (reparameterized), then p(x|z). x (N, 784) -> (z (N, Dz), means, binary (N, 784))."""
    check_images(x, data_dim(dec_params))
    mean, log_std = encoder(enc_params, x)
    z = sample_diag_gaussian(mean, log_std, rng)
    logits = decoder(dec_params, z)
    return z, sigmoid(logits), sample_bernoulli(logits, rng)


def fig_reconstructions(enc_params, dec_params, x, rng):
    """N x 3 figure, one row per image x (N, 784): input | mean of p(x|z) | binary sample, z ~ q(z|x)."""
    _, means, binary = reconstructions(enc_params, dec_params, x, rng)
    rows = np.stack([np.asarray(x, dtype=means.dtype), means, binary], axis=1)  # (N, 3, 784)
    return plot_images(rows.reshape(-1, SIDE * SIDE), len(x), 3,
                       col_labels=["input", "mean", "sample"],
                       title="Reconstructions\nz ~ q(z|x), x ~ p(x|z)", inches_per_image=0.75)


# ---------------------------------------------------------------- 5.1 the latent embedding

def latent_means(enc_params, x):
    """Means of q(z|x) for a batch of images x (N, 784) -> (N, 2); the latent space must be 2-D."""
    check_images(x, SIDE * SIDE)
    mean = encoder(enc_params, x)[0]
    if mean.shape[-1] != 2:
        raise ValueError(f"latent-space plots need a 2-D latent space, the encoder gives "
                         f"{mean.shape[-1]}-D; train with --latent-dim 2")
    return mean


def fig_latent_embedding(enc_params, x, labels):
    """Scatter of the means of q(z|x) for images x (N, 784), coloured by digit labels (N,)."""
    z_mean = latent_means(enc_params, x)
    labels = np.asarray(labels)
    if labels.shape != (len(x),):
        raise ValueError(f"need one label per image: {len(x)} images but labels of shape {labels.shape}")
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    # One scatter call keeps the points in data order, so no class is drawn over all the others.
    points = ax.scatter(z_mean[:, 0], z_mean[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5,
                        s=3, alpha=0.5, linewidths=0, rasterized=True)
    colorbar = fig.colorbar(points, ax=ax, ticks=range(10))
    colorbar.solids.set_alpha(1.0)
    colorbar.set_label("digit")
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(f"Means of q(z|x) for {len(x):,} images")
    return fig


def embedding_bounds(enc_params, x, percentiles=(1.0, 99.0)):
    """Per-axis percentile range of the means of q(z|x): (2, 2), row d = (lo, hi) of z_d.

    A range for lattice="linear" that covers where the data lie without its outliers.
    """
    return np.percentile(latent_means(enc_params, x), percentiles, axis=0).T


# ---------------------------------------------------------------- 5.2 the learned manifold

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


def fig_latent_lattice(dec_params, n=20, lattice="gaussian", bounds=None):
    """n x n tiles of the Bernoulli means of p(x|z) over the latent plane (cf. the paper's Figure 4b)."""
    z, image = latent_lattice(dec_params, n, lattice, bounds)
    z = z.reshape(n, n, 2)
    fig = plot_grid(image, row_labels=[f"{v:.2f}" for v in z[:, 0, 1]],
                    col_labels=[f"{v:.2f}" for v in z[0, :, 0]],
                    title=f"Means of p(x|z) on a {n} x {n} {lattice} lattice of z",
                    inches_per_image=0.45)
    ax = fig.axes[0]
    ax.tick_params(labelsize=6)
    ax.tick_params(axis="x", labelrotation=90)
    ax.set_xlabel("$z_1$ →")
    ax.set_ylabel("$z_2$ →")
    return fig


# ---------------------------------------------------------------- 5.3 interpolations

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


def choose_pairs(labels, rng, num_pairs=3):
    """Indices (a, b), each (num_pairs,), of random image pairs with labels[a] != labels[b]."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2 or not 1 <= num_pairs <= len(labels):
        raise ValueError(f"need 1 <= num_pairs <= {len(labels)} images and labels of at least "
                         f"two classes, got num_pairs={num_pairs}")
    a = rng.choice(len(labels), num_pairs, replace=False)
    b = np.array([rng.choice(np.flatnonzero(labels != labels[i])) for i in a])
    return a, b


def fig_interpolations(enc_params, dec_params, x, labels, pairs, num_steps=10):
    """One row per pair of images: x_a | p(x|z) means from z_a to z_b | x_b.

    x (N, 784), labels (N,); pairs: index arrays (a, b), each (P,), e.g. from choose_pairs or
    latent_classes.choose_faithful_pairs. Columns are alpha = 1, ..., 0 of
    z_alpha = alpha z_a + (1 - alpha) z_b.
    """
    check_images(x, data_dim(dec_params))
    a, b = (np.asarray(i) for i in pairs)
    num_pairs = len(a)
    z_path = interpolate_latents(enc_params, x[a], x[b], num_steps)
    means = sigmoid(decoder(dec_params, z_path.reshape(-1, 2))).reshape(num_pairs, num_steps, -1)
    rows = np.concatenate([x[a][:, None], means, x[b][:, None]], axis=1)
    alpha = np.linspace(1.0, 0.0, num_steps)
    labels = np.asarray(labels)
    return plot_images(rows.reshape(-1, SIDE * SIDE), num_pairs, num_steps + 2,
                       row_labels=[f"{labels[i]} → {labels[j]}" for i, j in zip(a, b)],
                       col_labels=["$x_a$"] + [f"{v:.2g}" for v in alpha] + ["$x_b$"],
                       title="Means of p(x|z) along z = α $z_a$ + (1 − α) $z_b$, α from 1 to 0",
                       inches_per_image=0.6)
