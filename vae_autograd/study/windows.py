"""log p(x, z) tabulated on lattice windows, and the exact ELBO of a Gaussian on them: the
targets of the Gaussian fits (Target, decoder_target, explicit_target) and window_elbo.

The ELBO of a Gaussian q = N(mean, diag(exp(log_std)^2)), E_q[log p(x, z)] + H(q), is
computed without sampling and without a decoder call inside the optimization
(study.gaussian_fit): log p(x, z) is tabulated once on a square window of size x size
points around each Gaussian, with per-axis spacing at most std / 1.25
(window_log_joint). On that window, E_q[log p(x, z)] is a Riemann sum with normalized
Gaussian weights (window_elbo); for a Gaussian times a smooth function its error falls
as exp(-2 pi^2 std^2 / spacing^2), about 4e-14 at spacing std / 1.25, and a window centred
on the Gaussian reaches at least 5.3 std to either side. benchmarks/bench_gaps.py checks
these ELBOs against a rule that decodes every point and against Monte Carlo. That error bound
needs a smooth log p(x, z) (tanh layers): relu layers put kinks in it, and the error becomes of
the order of spacing^2 times their jumps in slope: up to 0.012 nats on 10 test images for a
2-128-256-784 relu decoder trained 5 epochs on 2,000 images (3e-6 for the tanh model), against a
midpoint rule of spacing std / 25 in eps space. So a decoder with a relu layer is tabulated on a lattice
KINKED_REFINEMENT = 4 times finer per axis (16 times the points; decoder_target). Measured on 30 images
(20 test, 10 training) of a 784-256-128 relu model trained 20 epochs on 50,000 images: the window ELBO of
q(z|x) erred by at most 0.068 nats on the smooth lattice, 2.2e-3 twice finer, 5.9e-4 four times finer and
2.9e-4 eight times (of q*: 0.013, 1.3e-3, 3.8e-4, 6.5e-5), against a midpoint rule of spacing std / 25 in
eps space (itself within 1.4e-4 of one of std / 12.5). The window points lie on lattices shared by all
images (spacings are powers of sqrt 2 and points are integer multiples of them), so one decoder
call serves every window that contains a point.
The decoder runs in float32 (its rounding, ~1e-4 nats on log p(x, z) ~ -150, is far
below the effects measured); weights, sums and all optimization run in float64.
"""
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core.distributions import diag_gaussian_entropy
from ..core.elbo import log_prior
from ..core.images import check_images
from ..core.logspace import erf
from ..core.model import ReluLayer, data_dim, decoder, hidden_activations, params_dtype
from .grids import grid_log_likelihood, log_partition

WINDOW_SIZE = 21        # points per axis of a window: +-10 spacings = +-5.7 to 8 std


MOVING_WINDOW_SIZE = 29  # for Gaussians still rising after a round: +-14 spacings = +-7.9 to 11.2 std


POINTS_PER_STD = 1.25   # window spacing <= std / POINTS_PER_STD


# A relu layer puts kinks in log p(x, z) (where a unit switches off), and there a lattice sum errs as
# spacing^2 times the jumps in slope instead of exp(-2 pi^2 std^2 / spacing^2): the windows of a decoder
# with a relu layer are KINKED_REFINEMENT times finer on each axis, over the same reach (module docstring).
KINKED_REFINEMENT = 4


def lattice_refinement(dec_params):
    """How many times finer than POINTS_PER_STD a decoder's windows are: 1 for a smooth decoder (tanh
    layers), KINKED_REFINEMENT if any hidden layer is relu."""
    return KINKED_REFINEMENT if any(type(layer) is ReluLayer for layer in dec_params[:-1]) else 1


def lattice_level(std):
    """Index l of the lattice spacing sqrt(2)^l <= std / POINTS_PER_STD. std (...) -> int (...)."""
    std = np.clip(std, 1e-4, 10.0)
    return np.floor(2.0 * np.log2(std / POINTS_PER_STD)).astype(np.int64)


def level_spacing(level):
    return np.sqrt(2.0) ** level


def window_axes(center, level, size=WINDOW_SIZE):
    """Lattice indices (R, 2, size) of the size x size window nearest to center.

    center (R, 2), level (R, 2) int. The window's points are z = index * spacing, so two
    windows at the same level share the points where they overlap.
    """
    first = np.round(center / level_spacing(level)).astype(np.int64) - size // 2
    return first[:, :, None] + np.arange(size)


def window_log_joint(dec_params, x, image_of_row, center, level, size=WINDOW_SIZE, rows_per_block=32,
                     rows_per_group=256, cache=None):
    """log p(x, z) on one lattice window per row: values (R, size, size) and axes (R, 2, size).

    x (N, 784); image_of_row (R,) picks the image of each row; center (R, 2); level (R, 2).
    values[r, i, j] is at z = (axes[r, 0, i], axes[r, 1, j]). Each distinct lattice point
    is decoded once (float32). log p(x|z) = x . logits - sum softplus(logits) with
    x . logits = (W x) . hidden(z) + b . x, where hidden(z) is the decoder's last hidden layer, of
    width H (500 for the study's model; model.hidden_activations, whatever the layers before it) and
    (W, b) its output layer, so each row's points need one product of width H instead of 784 (one
    matrix product per block of rows_per_block rows, over their points). The costly part, the sum of
    softplus(logits) over 784 pixels, depends on z alone: cache, a dict that decoder_target
    keeps between calls, holds it for every point already decoded ("keys" sorted, "values").
    Rows go in groups of rows_per_group, whose distinct points' last hidden layers (U, H) float32
    are held at once: at most 256 x 841 points, 430 MB at H = 500.
    """
    index = window_axes(center, level, size)                       # (R, 2, W)
    axes = index * level_spacing(level)[:, :, None]
    W, b = dec_params[-1]                                        # the output layer, (H, 784) and (784,)
    # Only the images the rows use: a fit's later rounds tabulate a few rows of a block of thousands.
    used, row_image = np.unique(image_of_row, return_inverse=True)  # row_image (R,): each row's, into used
    pixel_weights = (x[used] @ W.T).astype(np.float32)           # (N', H)
    pixel_bias = (x[used] @ b).astype(np.float64)                # (N',)
    # One integer key per lattice point: the two levels and the two indices.
    offset = 1 << 20
    key = ((((level[:, 0] + 64) << 7) | (level[:, 1] + 64)) << 42)[:, None, None] \
        | ((index[:, 0, :, None] + offset) << 21) | (index[:, 1, None, :] + offset)
    # Rows ordered by level and place, so neighbouring rows share points.
    order = np.lexsort((index[:, 1, 0], index[:, 0, 0] // size, level[:, 1], level[:, 0]))
    values = np.empty(key.shape)
    cache = {} if cache is None else cache
    cache.setdefault("keys", np.empty(0, np.int64))
    cache.setdefault("values", np.empty(0))
    new_keys, new_values = [], []
    for start in range(0, len(order), rows_per_group):
        rows = order[start:start + rows_per_group]
        unique_key, first, inverse = np.unique(key[rows], return_index=True, return_inverse=True)
        inverse = inverse.reshape(len(rows), -1)
        row, i, j = np.unravel_index(first, key[rows].shape)
        z = np.stack([axes[rows[row], 0, i], axes[rows[row], 1, j]], axis=1)
        hidden = hidden_activations(dec_params, z.astype(np.float32))      # (U, H)
        place = np.minimum(np.searchsorted(cache["keys"], unique_key), len(cache["keys"]) - 1)
        known = (cache["keys"][place] == unique_key) if len(cache["keys"]) else np.zeros(len(unique_key), bool)
        partition = np.empty(len(unique_key))
        partition[known] = cache["values"][place[known]]
        missing = np.flatnonzero(~known)
        for part in range(0, len(missing), 1024):  # logits of 1024 points (3 MB) at a time, summed in cache
            logits = hidden[missing[part:part + 1024]] @ W
            logits += b
            partition[missing[part:part + 1024]] = log_partition(logits, dtype=np.float64)
        new_keys.append(unique_key[missing])
        new_values.append(partition[missing])
        point_term = log_prior(z) - partition                   # (U,)
        for block in range(0, len(rows), rows_per_block):
            block_rows, points = rows[block:block + rows_per_block], inverse[block:block + rows_per_block]
            # The block's rows' points, each once, against the block's images in one matrix product
            # (V, H) @ (H, B): neighbouring windows share most of their points, so this computes a few
            # times fewer products than gathering each row's own points (B, W^2, H) for a
            # matrix-vector product per row, and as one product instead of B.
            shared, where = np.unique(points, return_inverse=True)
            products = hidden[shared] @ pixel_weights[row_image[block_rows]].T        # (V, B)
            products = products[where.reshape(points.shape), np.arange(len(block_rows))[:, None]]
            values[block_rows] = (products + pixel_bias[row_image[block_rows], None]
                                  + point_term[points]).reshape(len(block_rows), size, size)
    # Groups may decode a point twice; np.unique keeps one.
    cache["keys"], first = np.unique(np.concatenate([cache["keys"], *new_keys]), return_index=True)
    cache["values"] = np.concatenate([cache["values"], *new_values])[first]
    return values, axes


@dataclass(frozen=True)
class Target:
    """log p(x, z) of N images, as the two functions the Gaussian fits need.

    tabulate(image_of_row (R,), center (R, 2), level (R, 2), size) -> (log_joint (R, W, W),
    axes (R, 2, W)) on lattice windows (window_log_joint; W = size, or (size - 1) * refinement + 1 points
    on a lattice refinement times finer than level's, lattice_refinement), and
    log_joint_grid(z_grid (G, 2)) -> (N, G) on a grid shared by the images.
    """
    tabulate: Callable
    log_joint_grid: Callable
    refinement: int = 1


def decoder_target(dec_params, x, block_size=1000, cache=None):
    """log p(x, z) of the VAE for images x (N, 784), as a Target.

    tabulate is window_log_joint with its decoded points cached between calls (in cache, a
    dict that targets of other images of the same decoder may share), on a lattice
    lattice_refinement(dec_params) times finer for a decoder with a relu layer; log_joint_grid makes
    one decoder call and one matrix product per block of images. x is checked here, once:
    window_log_joint, called many times on it, checks nothing.
    """
    x = check_images(x, data_dim(dec_params))
    cache = {} if cache is None else cache
    refinement = lattice_refinement(dec_params)
    finer_levels = round(2 * math.log2(refinement))   # levels are powers of sqrt(2)

    def tabulate(image_of_row, center, level, size=WINDOW_SIZE):
        # The window asked for, on a lattice refinement times finer: (size - 1) * refinement + 1 points
        # per axis span the same reach; groups of fewer rows hold the same number of points at once.
        return window_log_joint(dec_params, x, image_of_row, center, level - finer_levels,
                                (size - 1) * refinement + 1, rows_per_group=max(1, 256 // refinement**2),
                                cache=cache)

    def log_joint_grid(z_grid):
        z_grid = np.asarray(z_grid, params_dtype(dec_params))
        logits, prior = decoder(dec_params, z_grid), log_prior(z_grid)
        return np.concatenate([(grid_log_likelihood(logits, x[start:start + block_size]) + prior).astype(np.float64)
                               for start in range(0, len(x), block_size)])

    return Target(tabulate=tabulate, log_joint_grid=log_joint_grid, refinement=refinement)


def explicit_target(log_density, num_images):
    """The Target of an explicit log_density(image_of_row (R,), z (R, ..., 2)) -> (R, ...).

    For targets whose answers are known (the tests).
    """
    def tabulate(image_of_row, center, level, size=WINDOW_SIZE):
        axes = window_axes(center, level, size) * level_spacing(level)[:, :, None]
        z = np.stack(np.broadcast_arrays(axes[:, 0, :, None], axes[:, 1, None, :]), axis=-1)
        return log_density(image_of_row, z), axes

    def log_joint_grid(z_grid):
        images = np.arange(num_images)
        return log_density(images, np.broadcast_to(z_grid, (num_images,) + z_grid.shape))

    return Target(tabulate=tabulate, log_joint_grid=log_joint_grid)


def window_elbo(mean, log_std, axes, log_joint, escape_nats=100.0, with_grad=False, with_hessian=False):
    """Deterministic ELBO of q = N(mean, exp(log_std)^2) on a tabulated window, per row.

    mean, log_std (R, 2); axes (R, 2, W); log_joint (R, W, W) from window_log_joint.
    E_q[log p(x, z)] is the Riemann sum with q's weights normalized over the window (q is
    a product, so the weights are an outer product of two (R, W) vectors), plus H(q).
    Normalizing keeps the sum exact for constants, but would let q slide off the window
    and grow without cost; q's mass outside the window (exact, from erf) is charged
    escape_nats per unit, negligible for q inside (2e-5 nats at 5.3 std from the edges).

    Returns elbo (R,), and with with_grad also its gradients (R, 2) in mean and log_std,
    written out (a test checks them against finite differences): with normalized weights
    w_d on axis d and f_d the log joint averaged over the other axis, E_w[f_d] is the
    expectation E, and d E / d theta = sum_i w_d,i (f_d,i - E) d log w_d,i / d theta.
    with_hessian adds the Hessian (R, 4, 4) of the expectation and entropy in (mean_0, mean_1,
    log_std_0, log_std_1), for Newton steps (gaussian_fit.fit_gaussians); the escape penalty's
    curvature is left out (it is zero for a Gaussian inside its window, where fits end).
    With g = d log w / d theta centred under w, and h = d^2 log w / d theta d phi, the
    block of one axis is sum_i w_i (g_theta,i g_phi,i + h_i) (f_i - E), and the block of
    two axes is sum_ij (w_0 g_theta)_i (w_1 g_phi)_j log_joint_ij.
    """
    std = np.exp(log_std)
    u = (axes - mean[:, :, None]) / std[:, :, None]                    # (R, 2, W)
    log_w = -0.5 * u**2
    w = np.exp(log_w - log_w.max(axis=2, keepdims=True))
    w /= w.sum(axis=2, keepdims=True)                                  # normalized per axis
    # Batched matrix-vector products: 3x faster than broadcasting the outer product.
    inner = np.matmul(log_joint, w[:, 1, :, None])[:, :, 0]            # (R, W): averaged over axis 1
    expected = np.sum(w[:, 0] * inner, axis=1)
    half_spacing = 0.5 * (axes[:, :, 1] - axes[:, :, 0])
    low = (axes[:, :, 0] - half_spacing - mean) / (std * math.sqrt(2.0))
    high = (axes[:, :, -1] + half_spacing - mean) / (std * math.sqrt(2.0))
    inside = 0.5 * (erf(high) - erf(low))                              # (R, 2): q's mass per axis
    elbo = expected + diag_gaussian_entropy(log_std) - escape_nats * (1.0 - np.prod(inside, axis=1))
    if not (with_grad or with_hessian):
        return elbo
    outer = np.matmul(w[:, 0, None, :], log_joint)[:, 0, :]            # (R, W): averaged over axis 0
    deviation = w * (np.stack([inner, outer], axis=1) - expected[:, None, None])
    # d log w / d mean = u / std and d log w / d log_std = u^2; H(q) adds 1 per log_std.
    d_mean = np.sum(deviation * u, axis=2) / std
    d_log_std = np.sum(deviation * u**2, axis=2) + 1.0
    # The penalty -escape (1 - inside_0 inside_1), through each axis's erf terms.
    other_axis = inside[:, ::-1]
    d_mean += escape_nats * other_axis * (np.exp(-low**2) - np.exp(-high**2)) / (std * math.sqrt(2.0 * math.pi))
    d_log_std += escape_nats * other_axis * (low * np.exp(-low**2) - high * np.exp(-high**2)) / math.sqrt(math.pi)
    if not with_hessian:
        return elbo, d_mean, d_log_std
    # d log w: u / std (mean), u^2 (log_std); d^2 log w: -1 / std^2, -2 u / std, -2 u^2.
    g = np.stack([u / std[:, :, None], u**2], axis=2)                  # (R, axis, param, W)
    g -= np.sum(w[:, :, None] * g, axis=3, keepdims=True)
    h = np.stack([np.broadcast_to(-1.0 / std[:, :, None]**2, u.shape), -2.0 * u / std[:, :, None], -2.0 * u**2], 2)
    spread = np.sum(deviation[:, :, None] * h, axis=3)                 # (R, axis, 3): mm, ms, ss
    spread += np.sum(deviation[:, :, None] * g[:, :, [0, 0, 1]] * g[:, :, [0, 1, 1]], axis=3)
    weighted = w[:, :, None] * g                                        # (R, axis, param, W)
    cross = np.matmul(np.matmul(weighted[:, 0], log_joint), np.swapaxes(weighted[:, 1], 1, 2))  # (R, p0, p1)
    hessian = np.empty((len(mean), 4, 4))
    for axis in (0, 1):   # parameters: mean_axis at axis, log_std_axis at 2 + axis
        m, s = axis, 2 + axis
        hessian[:, m, m], hessian[:, s, s] = spread[:, axis, 0], spread[:, axis, 2]
        hessian[:, m, s] = hessian[:, s, m] = spread[:, axis, 1]
    for p0, p1 in np.ndindex(2, 2):
        hessian[:, 2 * p0, 2 * p1 + 1] = hessian[:, 2 * p1 + 1, 2 * p0] = cross[:, p0, p1]
    return elbo, d_mean, d_log_std, hessian


def gaussian_elbo(tabulate, image_of_row, mean, log_std):
    """ELBO (R,) of each row's Gaussian (mean, log_std (R, 2)) for image image_of_row.

    tabulate: a Target's tabulate (decoder_target or explicit_target).

    On a fresh window centred on the Gaussian at spacing <= std / 1.25; no penalty applies
    (nothing to escape). Deterministic, float64.
    """
    log_joint, axes = tabulate(image_of_row, mean, lattice_level(np.exp(log_std)))
    return window_elbo(mean, log_std, axes, log_joint, escape_nats=0.0)
