"""The best diagonal Gaussian for a 2-D posterior known up to its constant, image by image.

For an image x, a Gaussian q(z) = N(mean, diag(exp(log_std)^2)) has
    ELBO(q) = E_q[log p(x, z)] + H(q) = log p(x) - KL(q || p(z|x)),
so the Gaussian of highest ELBO is the one closest to the true posterior. This module
finds two per image, for parts 6.1 and 8: q_refined, the local optimum reached from a
given start (test-time refinement of the encoder's q(z|x)), and q*, the global optimum,
the best of the fits started at the posterior's highest modes and q_refined.

The ELBO of a Gaussian is computed without sampling and without a decoder call inside
the optimization: log p(x, z) is tabulated once on a square window of size x size
points around each Gaussian, with per-axis spacing at most std / 1.25
(window_log_joint). On that window, E_q[log p(x, z)] is a Riemann sum with normalized
Gaussian weights (window_elbo); for a Gaussian times a smooth function its error falls
as exp(-2 pi^2 std^2 / spacing^2), about 4e-14 at spacing std / 1.25, and a window centred
on the Gaussian reaches at least 5.3 std to either side. A fit may leave its window
(window_serves), so fits run in rounds on new windows until they converge
(fit_on_windows). benchmarks/bench_gaps.py checks these ELBOs against a rule that decodes
every point and against Monte Carlo. The window points lie on
lattices shared by all images (spacings are powers of sqrt 2 and points are integer
multiples of them), so one decoder call serves every window that contains a point.
The decoder runs in float32 (its rounding, ~1e-4 nats on log p(x, z) ~ -150, is far
below the effects measured); weights, sums and all optimization run in float64.
"""
import math
from functools import partial

import numpy as np

from .adam import adam_update, init_adam_state
from .distributions import diag_gaussian_entropy, erf, softplus
from .elbo import log_prior
from .integrate import grid_log_likelihood, latent_grid, logsumexp
from .model import decoder, params_dtype

WINDOW_SIZE = 21        # points per axis of a window: +-10 spacings = +-5.7 to 8 std
MOVING_WINDOW_SIZE = 29  # for Gaussians still rising after a round: +-14 spacings = +-7.9 to 11.2 std
POINTS_PER_STD = 1.25   # window spacing <= std / POINTS_PER_STD
SERVING_POINTS_PER_STD = 1.0  # a window serves a Gaussian while its spacing <= std / this
REACH_STDS = 5.0        # and it reaches this many std beyond the Gaussian's mean
# A Gaussian fitted at a lower mode of the posterior cannot beat one at the highest unless the
# lower mode holds more mass: 10 nats of height (a factor 2e4) would take a lower mode 150
# times wider on each axis, beyond any posterior of a trained model.
MODE_WITHIN_NATS = 10.0
NUM_MODES = 2            # local maxima searched per image, found on a coarse grid:
MODE_GRID_BOUND = 6.0    # [-6, 6]^2 in steps of 0.2
MODE_GRID_SPACING = 0.2
CONVERGED_NATS = 1e-3   # a fit has converged when fitting again gains less than this
MAX_ROUNDS = 30         # of fitting on a new window, for a Gaussian still rising


# ---------------------------------------------------------------- log p(x, z) on windows

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
                     rows_per_group=1024, cache=None):
    """log p(x, z) on one lattice window per row: values (R, size, size) and axes (R, 2, size).

    x (N, 784); image_of_row (R,) picks the image of each row; center (R, 2); level (R, 2).
    values[r, i, j] is at z = (axes[r, 0, i], axes[r, 1, j]). Each distinct lattice point
    is decoded once (float32). log p(x|z) = x . logits - sum softplus(logits) with
    x . logits = (W x) . hidden(z) + b . x, so a block of rows meets the union of its
    points in one matrix product of width 500 instead of 784. The costly part, the sum of
    softplus(logits) over 784 pixels, depends on z alone: cache, a dict that decoder_target
    keeps between calls, holds it for every point already decoded ("keys" sorted, "values").
    """
    index = window_axes(center, level, size)                       # (R, 2, W)
    axes = index * level_spacing(level)[:, :, None]
    (W1, b1), (W2, b2) = dec_params
    pixel_weights = (x @ W2.T).astype(np.float32)                # (N, H)
    pixel_bias = (x @ b2).astype(np.float64)                     # (N,)
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
        hidden = np.tanh(z.astype(np.float32) @ W1 + b1)
        place = np.minimum(np.searchsorted(cache["keys"], unique_key), len(cache["keys"]) - 1)
        known = (cache["keys"][place] == unique_key) if len(cache["keys"]) else np.zeros(len(unique_key), bool)
        log_partition = np.empty(len(unique_key))
        log_partition[known] = cache["values"][place[known]]
        missing = np.flatnonzero(~known)
        log_partition[missing] = np.concatenate([np.empty(0)] + [
            np.sum(softplus(hidden[missing[part:part + 8192]] @ W2 + b2), axis=1, dtype=np.float64)
            for part in range(0, len(missing), 8192)])
        new_keys.append(unique_key[missing])
        new_values.append(log_partition[missing])
        point_term = log_prior(z) - log_partition                   # (U,)
        for block in range(0, len(rows), rows_per_block):
            block_rows = rows[block:block + rows_per_block]
            points, local = np.unique(inverse[block:block + rows_per_block], return_inverse=True)
            local = local.reshape(len(block_rows), -1)
            products = pixel_weights[image_of_row[block_rows]] @ hidden[points].T   # (B, U_b)
            mine = np.take_along_axis(products, local, axis=1).astype(np.float64)
            values[block_rows] = (mine + pixel_bias[image_of_row[block_rows], None]
                                  + point_term[points][local]).reshape(len(block_rows), size, size)
    # Groups may decode a point twice; np.unique keeps one.
    cache["keys"], first = np.unique(np.concatenate([cache["keys"], *new_keys]), return_index=True)
    cache["values"] = np.concatenate([cache["values"], *new_values])[first]
    return values, axes


def decoder_target(dec_params, x, block_size=1000):
    """log p(x, z) of the VAE for images x (N, 784), as the two functions the fits need.

    Returns tabulate(image_of_row, center, level, size) -> (log_joint (R, W, W), axes
    (R, 2, W)) on lattice windows, and log_joint_grid(z_grid (G, 2)) -> (N, G) on a
    shared grid (one decoder call, one matrix product per block of images).
    """
    def log_joint_grid(z_grid):
        z_grid = np.asarray(z_grid, params_dtype(dec_params))
        logits, prior = decoder(dec_params, z_grid), log_prior(z_grid)
        return np.concatenate([(grid_log_likelihood(logits, x[start:start + block_size]) + prior).astype(np.float64)
                               for start in range(0, len(x), block_size)])

    return partial(window_log_joint, dec_params, x, cache={}), log_joint_grid


def explicit_target(log_density, num_images):
    """The same two functions for an explicit log_density(image_of_row (R,), z (R, ..., 2)) -> (R, ...).

    For targets whose answers are known (the tests).
    """
    def tabulate(image_of_row, center, level, size=WINDOW_SIZE):
        axes = window_axes(center, level, size) * level_spacing(level)[:, :, None]
        z = np.stack(np.broadcast_arrays(axes[:, 0, :, None], axes[:, 1, None, :]), axis=-1)
        return log_density(image_of_row, z), axes

    def log_joint_grid(z_grid):
        images = np.arange(num_images)
        return log_density(images, np.broadcast_to(z_grid, (num_images,) + z_grid.shape))

    return tabulate, log_joint_grid


# ---------------------------------------------------------------- the ELBO of a Gaussian

def window_elbo(mean, log_std, axes, log_joint, escape_nats=100.0, with_grad=False):
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
    if not with_grad:
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
    return elbo, d_mean, d_log_std


def gaussian_elbo(tabulate, image_of_row, mean, log_std):
    """ELBO (R,) of each row's Gaussian (mean, log_std (R, 2)) for image image_of_row.

    tabulate(image_of_row, center, level, size) -> (log_joint, axes), as window_log_joint
    with its model and images bound (decoder_target) or as explicit_target.

    On a fresh window centred on the Gaussian at spacing <= std / 1.25; no penalty applies
    (nothing to escape). Deterministic, float64.
    """
    log_joint, axes = tabulate(image_of_row, mean, lattice_level(np.exp(log_std)))
    return window_elbo(mean, log_std, axes, log_joint, escape_nats=0.0)


# ---------------------------------------------------------------- fitting Gaussians

def fit_gaussians(objective, mean, log_std, num_steps=100, lr=0.1, final_lr=0.002):
    """Adam ascent of objective(mean, log_std) -> (R,) separately for every row.

    objective(mean, log_std, with_grad=True) -> (value (R,), d_mean, d_log_std (R, D)), as
    window_elbo. mean, log_std (R, D) are the starts. The mean moves in units of the
    start's std (mean = mean0 + std0 * shift), so one step size suits posteriors 0.01 or 1
    wide; the step size decays geometrically from lr to final_lr so the last steps settle.
    Rows do not interact: the objective is a sum of per-row terms. Returns the fitted
    mean, log_std (R, D).
    """
    mean0, std0 = np.array(mean, np.float64), np.exp(np.array(log_std, np.float64))
    shift, log_std = np.zeros_like(mean0), np.array(log_std, np.float64)
    state = init_adam_state([shift, log_std])
    for step in range(num_steps):
        _, d_mean, d_log_std = objective(mean0 + std0 * shift, log_std, with_grad=True)
        rate = lr * (final_lr / lr) ** (step / max(num_steps - 1, 1))
        adam_update([shift, log_std], [-std0 * d_mean, -d_log_std], state, rate)
    return mean0 + std0 * shift, log_std


def window_serves(axes, mean, log_std):
    """Whether each row's window still serves its Gaussian: (R,) bool.

    axes (R, 2, W), mean, log_std (R, 2). It serves if on both axes its spacing is at most
    std (the Riemann sum's relative error, exp(-2 pi^2 std^2 / spacing^2), is then below
    3e-9) and it reaches REACH_STDS std beyond the mean on either side (the mass outside,
    under 6e-7, moves the ELBO by less than 1e-5 nats). A window centred on the Gaussian
    at its lattice level always serves; a fitted Gaussian may narrow by a factor 1.25 to
    1.77, or move a little, and still be served.
    """
    std = np.exp(log_std)
    spacing = axes[:, :, 1] - axes[:, :, 0]
    serves = ((spacing <= std / SERVING_POINTS_PER_STD) & (axes[:, :, 0] <= mean - REACH_STDS * std)
              & (axes[:, :, -1] >= mean + REACH_STDS * std))
    return serves.all(axis=1)


def fit_on_windows(tabulate, image_of_row, mean, log_std, num_steps=100, max_rounds=MAX_ROUNDS,
                   tol=CONVERGED_NATS):
    """Local optimum of the ELBO from each row's start mean, log_std (R, 2).

    Each round tabulates log p(x, z) on windows centred on the current Gaussians and runs
    fit_gaussians on them. A fitted Gaussian that its window still serves (window_serves)
    is fitted once more on the same window; if that gains less than tol nats, and the
    window still serves, the row has converged. The others go another round on a new
    window, up to max_rounds (after which a fresh window evaluates them). Rounds after the
    first use wider windows (MOVING_WINDOW_SIZE): a Gaussian still rising may be
    travelling along a narrow ridge of the posterior, a few std per round.
    Returns the fitted mean, log_std (R, 2), their ELBO (R,), the ELBO (R,) of the starts
    (each on a serving window) and whether each row converged (R,) bool.
    """
    mean, log_std = np.array(mean, np.float64), np.array(log_std, np.float64)
    elbo, start_elbo = np.empty(len(mean)), np.empty(len(mean))
    active = np.arange(len(mean))
    for round_ in range(max_rounds):
        if not len(active):
            break
        size = WINDOW_SIZE if round_ == 0 else MOVING_WINDOW_SIZE
        log_joint, axes = tabulate(image_of_row[active], mean[active], lattice_level(np.exp(log_std[active])), size)
        if round_ == 0:  # the starts' own centred windows
            start_elbo[:] = window_elbo(mean, log_std, axes, log_joint, escape_nats=0.0)
        fit_mean, fit_log_std = fit_gaussians(partial(window_elbo, axes=axes, log_joint=log_joint),
                                                 mean[active], log_std[active], num_steps)
        served = np.flatnonzero(window_serves(axes, fit_mean, fit_log_std))
        first = window_elbo(fit_mean[served], fit_log_std[served], axes[served], log_joint[served], escape_nats=0.0)
        again_mean, again_log_std = fit_gaussians(
            partial(window_elbo, axes=axes[served], log_joint=log_joint[served]),
            fit_mean[served], fit_log_std[served], num_steps)
        again = window_elbo(again_mean, again_log_std, axes[served], log_joint[served], escape_nats=0.0)
        fit_mean[served], fit_log_std[served] = again_mean, again_log_std
        mean[active], log_std[active] = fit_mean, fit_log_std
        converged = (again - first < tol) & window_serves(axes[served], again_mean, again_log_std)
        elbo[active[served[converged]]] = again[converged]
        active = np.setdiff1d(active, active[served[converged]])
    if len(active):
        elbo[active] = gaussian_elbo(tabulate, image_of_row[active], mean[active], log_std[active])
    converged = np.ones(len(mean), bool)
    converged[active] = False
    return mean, log_std, elbo, start_elbo, converged


# ---------------------------------------------------------------- starts from the true posterior

def posterior_modes(log_joint_grid, num_modes=NUM_MODES, within_nats=MODE_WITHIN_NATS, bound=MODE_GRID_BOUND,
                    spacing=MODE_GRID_SPACING):
    """Each image's highest local maximum of log p(x, z) on a shared grid, and up to
    num_modes - 1 more that lie within within_nats of it: image_of_row (R,), modes (R, 2).

    log_joint_grid(z_grid (G, 2)) -> (N, G). A narrow posterior can fall between grid
    points, so each maximum is only a place to look more closely (posterior_starts zooms in).
    """
    z_grid, axis = latent_grid(-bound, bound, spacing)
    side = len(axis)
    grid = log_joint_grid(z_grid).reshape(-1, side, side)
    padded = np.pad(grid, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    neighbours = np.max([padded[:, 1 + di:1 + di + side, 1 + dj:1 + dj + side]
                            for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj], axis=0)
    peaks = np.where(grid >= neighbours, grid, -np.inf).reshape(len(grid), -1)
    best = np.argsort(-peaks, axis=1)[:, :num_modes]
    height = np.take_along_axis(peaks, best, 1)
    kept = height >= height[:, :1] - within_nats   # the highest is always kept
    image_of_row = np.repeat(np.arange(len(grid)), kept.sum(axis=1))
    return image_of_row, z_grid[best[kept]]


def window_moments(axes, log_joint):
    """Mean and std (R, 2) of p(z|x) restricted to each window, and its best point (R, 2)."""
    log_post = log_joint - logsumexp(log_joint, axis=(1, 2), keepdims=True)
    post = np.exp(log_post)
    marginals = np.stack([post.sum(axis=2), post.sum(axis=1)], axis=1)   # (R, 2, W)
    mean = np.sum(marginals * axes, axis=2)
    std = np.sqrt(np.sum(marginals * (axes - mean[:, :, None])**2, axis=2))
    flat_best = np.argmax(log_joint.reshape(len(log_joint), -1), axis=1)
    i, j = np.unravel_index(flat_best, log_joint.shape[1:])
    rows = np.arange(len(axes))
    return mean, std, np.stack([axes[rows, 0, i], axes[rows, 1, j]], axis=1)


def posterior_starts(tabulate, log_joint_grid, num_modes=NUM_MODES, within_nats=MODE_WITHIN_NATS, zoom_spacing=0.05,
                     num_zooms=2, size=17):
    """Gaussian starts from the true posterior around its highest modes (posterior_modes).

    Around each coarse mode, windows zoom in num_zooms times: the first at zoom_spacing,
    then each centred on the last one's local posterior mean with spacing from its local
    std. Returns image_of_row (R,), mean, log_std (R, 2) (local moments of the posterior)
    and best (R, 2) (the best lattice point seen), rows ordered image-major.
    """
    image_of_row, center = posterior_modes(log_joint_grid, num_modes, within_nats)
    level = np.full(center.shape, lattice_level(zoom_spacing * POINTS_PER_STD))
    for _ in range(num_zooms):
        log_joint, axes = tabulate(image_of_row, center, level, size)
        center, std, best = window_moments(axes, log_joint)
        level = lattice_level(std)
    return image_of_row, center, np.log(std), best


# ---------------------------------------------------------------- the decomposition

def best_per_image(num_images, image_of_row, elbo, mean, log_std):
    """For each image, the row with the highest ELBO: (elbo (N,), mean, log_std (N, 2))."""
    order = np.lexsort((-elbo, image_of_row))
    first = order[np.searchsorted(image_of_row[order], np.arange(num_images))]
    return elbo[first], mean[first], log_std[first]


def global_fit(tabulate, num_images, starts, num_steps=100, extra=None):
    """The best Gaussian per image among fits from starts and the candidates in extra.

    starts: (image_of_row (R,), mean, log_std (R, 2)), e.g. from posterior_starts; extra:
    optional (image_of_row, mean, log_std, elbo) of Gaussians already fitted (q_refined, so
    that ELBO(q*) >= ELBO(q_refined) by construction). Returns elbo (N,), mean, log_std (N, 2).
    """
    image_of_row = starts[0]
    mean, log_std, elbo, _, _ = fit_on_windows(tabulate, *starts, num_steps)
    if extra is not None:
        image_of_row = np.concatenate([image_of_row, extra[0]])
        mean, log_std = np.concatenate([mean, extra[1]]), np.concatenate([log_std, extra[2]])
        elbo = np.concatenate([elbo, extra[3]])
    return best_per_image(num_images, image_of_row, elbo, mean, log_std)


def best_gaussians(tabulate, log_joint_grid, mean, log_std, num_steps=100, num_modes=NUM_MODES):
    """q_refined, the local optimum from each image's start mean, log_std (N, 2) (e.g. the
    encoder's q(z|x)), and q*, the best of it and the fits from the posterior's num_modes
    highest modes, for the N images of a target (decoder_target or explicit_target).

    Each mode gives two starts of different widths: the posterior's local mean and spread
    there, and its best lattice point with half that spread (where two close modes look
    like one, the best Gaussian may cover both or only one).

    Returns {"elbo_start", "elbo_refined", "elbo_optimal": (N,), "mean_refined",
    "log_std_refined", "mean_optimal", "log_std_optimal": (N, 2), "refined_converged":
    (N,) bool (fit_on_windows)}. All images are
    fitted together, each with its own Gaussians.
    """
    images = np.arange(len(mean))
    ref_mean, ref_log_std, elbo_refined, elbo_start, converged = fit_on_windows(tabulate, images, mean, log_std,
                                                                                num_steps)
    image_of_row, local_mean, local_log_std, best_point = posterior_starts(tabulate, log_joint_grid, num_modes)
    elbo_optimal, opt_mean, opt_log_std = global_fit(
        tabulate, len(mean), (np.tile(image_of_row, 2), np.concatenate([local_mean, best_point]),
                              np.concatenate([local_log_std, local_log_std - np.log(2.0)])),
        num_steps, extra=(images, ref_mean, ref_log_std, elbo_refined))
    return {"elbo_start": elbo_start, "elbo_refined": elbo_refined, "elbo_optimal": elbo_optimal,
            "mean_refined": ref_mean, "log_std_refined": ref_log_std, "mean_optimal": opt_mean,
            "log_std_optimal": opt_log_std, "refined_converged": converged}
