"""Where the ELBO loses its nats: approximation and amortization gaps (study part 8).

For an image x, a Gaussian q(z) = N(mean, diag(exp(log_std)^2)) has
    ELBO(q) = E_q[log p(x, z)] + H(q) = log p(x) - KL(q || p(z|x)).
Following Cremer, Li & Duvenaud (2018), three Gaussians are compared per image:
    q          the encoder's q(z|x) (amortized inference);
    q_refined  the ELBO's local optimum reached from q (test-time refinement);
    q*         the global optimum over diagonal Gaussians for this one image.
With log p(x) from the 2-D quadrature (integrate.log_marginal_likelihood):
    approximation gap = log p(x) - ELBO(q*)       (the Gaussian family's limit)
    amortization gap  = ELBO(q*) - ELBO(q)        (the encoder's limit)
    refinement gain   = ELBO(q_refined) - ELBO(q)
and the two gaps add up to log p(x) - ELBO(q). An image is in a wrong basin when
ELBO(q_refined) < ELBO(q*) - 0.1: the encoder pointed where local search cannot leave.

How the ELBO of a Gaussian is computed, without sampling and without a decoder call
inside the optimization: log p(x, z) is tabulated once on a square window of
size x size points around each Gaussian, with per-axis spacing at most std / 1.5
(window_log_joint). On that window, E_q[log p(x, z)] is a Riemann sum with normalized
Gaussian weights (window_elbo); for a Gaussian times a smooth function its error falls
as exp(-2 pi^2 std^2 / spacing^2), about 1e-19 at spacing std / 1.5, and the window
reaches 5.7 to 8 std to either side. The window points lie
on lattices shared by all images (spacings are powers of sqrt 2 and points are integer
multiples of them), so one decoder call serves every window that contains a point.
The decoder runs in float32 (its rounding, ~1e-4 nats on log p(x, z) ~ -150, is far
below the effects measured); weights, sums and all optimization run in float64.
"""
import math
from functools import partial

import autograd.numpy as anp
import numpy as np
from autograd import grad
from matplotlib.figure import Figure

from .adam import adam_update, init_adam_state
from .distributions import LOG_2PI, erf, softplus
from .elbo import log_prior
from .images import check_images
from .integrate import latent_grid, log_marginal_likelihood, logsumexp
from .model import data_dim, decoder, encoder
from .posterior import covering_grids, log_joint_on_grid, log_joint_on_windows
from .posterior_figures import contour_density, show_digit

WINDOW_SIZE = 25        # points per axis of a window: +-12 spacings = +-5.7 to 8 std
POINTS_PER_STD = 1.5    # window spacing <= std / POINTS_PER_STD
WRONG_BASIN_NATS = 0.1  # q_refined this far below q* counts as a wrong basin


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
                     rows_per_group=1024):
    """log p(x, z) on one lattice window per row: values (R, size, size) and axes (R, 2, size).

    x (N, 784); image_of_row (R,) picks the image of each row; center (R, 2); level (R, 2).
    values[r, i, j] is at z = (axes[r, 0, i], axes[r, 1, j]). Each distinct lattice point
    is decoded once (float32). log p(x|z) = x . logits - sum softplus(logits) with
    x . logits = (W x) . hidden(z) + b . x, so a block of rows meets the union of its
    points in one matrix product of width 500 instead of 784.
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
    for start in range(0, len(order), rows_per_group):
        rows = order[start:start + rows_per_group]
        unique_key, first, inverse = np.unique(key[rows], return_index=True, return_inverse=True)
        inverse = inverse.reshape(len(rows), -1)
        row, i, j = np.unravel_index(first, key[rows].shape)
        z = np.stack([axes[rows[row], 0, i], axes[rows[row], 1, j]], axis=1)
        hidden = np.tanh(z.astype(np.float32) @ W1 + b1)
        log_partition = np.concatenate([
            np.sum(softplus(hidden[part:part + 8192] @ W2 + b2), axis=1, dtype=np.float64)
            for part in range(0, len(hidden), 8192)])
        point_term = log_prior(z) - log_partition                   # (U,)
        for block in range(0, len(rows), rows_per_block):
            block_rows = rows[block:block + rows_per_block]
            points, local = np.unique(inverse[block:block + rows_per_block], return_inverse=True)
            local = local.reshape(len(block_rows), -1)
            products = pixel_weights[image_of_row[block_rows]] @ hidden[points].T   # (B, U_b)
            mine = np.take_along_axis(products, local, axis=1).astype(np.float64)
            values[block_rows] = (mine + pixel_bias[image_of_row[block_rows], None]
                                  + point_term[points][local]).reshape(len(block_rows), size, size)
    return values, axes


def decoder_target(dec_params, x, block_size=1000):
    """log p(x, z) of the VAE for images x (N, 784), as the two functions the fits need.

    Returns tabulate(image_of_row, center, level, size) -> (log_joint (R, W, W), axes
    (R, 2, W)) on lattice windows, and log_joint_grid(z_grid (G, 2)) -> (N, G) on a
    shared grid (one decoder call, one matrix product per block of images).
    """
    def log_joint_grid(z_grid):
        return np.concatenate([log_joint_on_grid(dec_params, x[start:start + block_size], z_grid)
                                  for start in range(0, len(x), block_size)])

    return partial(window_log_joint, dec_params, x), log_joint_grid


def explicit_target(log_density, num_images):
    """The same two functions for an explicit log_density(image_of_row (R,), z (R, ..., 2)) -> (R, ...).

    For tests and for targets that are not a VAE (e.g. a top-half likelihood).
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

def gaussian_entropy(log_std):
    """H(N(mean, diag(exp(log_std)^2))). (..., D) -> (...)."""
    return anp.sum(log_std, axis=-1) + 0.5 * anp.shape(log_std)[-1] * (1.0 + LOG_2PI)


def window_elbo(mean, log_std, axes, log_joint, escape_nats=100.0):
    """Deterministic ELBO of q = N(mean, exp(log_std)^2) on a tabulated window, per row.

    mean, log_std (R, 2); axes (R, 2, W); log_joint (R, W, W) from window_log_joint.
    E_q[log p(x, z)] is the Riemann sum with q's weights normalized over the window (q is
    a product, so the weights are an outer product of two (R, W) vectors), plus H(q).
    Normalizing keeps the sum exact for constants, but would let q slide off the window
    and grow without cost; q's mass outside the window (exact, from erf) is charged
    escape_nats per unit, negligible for q inside (1e-5 nats at 5.7 std from the edges).
    Differentiable in mean and log_std by autograd.
    """
    reference = np.max(log_joint, axis=(1, 2))                           # keeps rounding small
    centered = log_joint - reference[:, None, None]
    weights = []
    for d in range(2):  # q is a product: one normalized (R, W) weight vector per axis
        log_w = -0.5 * ((axes[:, d, :] - mean[:, d:d + 1]) / anp.exp(log_std[:, d:d + 1]))**2
        weights.append(anp.exp(log_w - logsumexp(log_w, axis=1, keepdims=True)))
    # A batched matrix-vector product: 3x faster than broadcasting the outer product.
    inner = anp.matmul(centered, weights[1][:, :, None])[:, :, 0]             # (R, W)
    expected = anp.sum(weights[0] * inner, axis=1)
    std = anp.exp(log_std)
    half_spacing = 0.5 * (axes[:, :, 1] - axes[:, :, 0])
    low = (axes[:, :, 0] - half_spacing - mean) / (std * math.sqrt(2.0))
    high = (axes[:, :, -1] + half_spacing - mean) / (std * math.sqrt(2.0))
    inside = anp.prod(0.5 * (erf(high) - erf(low)), axis=1)
    return expected + reference + gaussian_entropy(log_std) - escape_nats * (1.0 - inside)


def gaussian_elbo(tabulate, image_of_row, mean, log_std, size=WINDOW_SIZE):
    """ELBO (R,) of each row's Gaussian (mean, log_std (R, 2)) for image image_of_row.

    tabulate(image_of_row, center, level, size) -> (log_joint, axes), as window_log_joint
    with its model and images bound (decoder_target) or as explicit_target.

    On a fresh window centred on the Gaussian at spacing <= std / 1.5; no penalty applies
    (nothing to escape). Deterministic, float64.
    """
    log_joint, axes = tabulate(image_of_row, mean, lattice_level(np.exp(log_std)), size)
    return window_elbo(mean, log_std, axes, log_joint, escape_nats=0.0)


# ---------------------------------------------------------------- fitting Gaussians

def fit_gaussians(objective, mean, log_std, num_steps=200, lr=0.1, final_lr=0.002):
    """Adam ascent of objective(mean, log_std) -> (R,) separately for every row.

    mean, log_std (R, D) are the starts. The mean moves in units of the start's std
    (mean = mean0 + std0 * shift), so one step size suits posteriors 0.01 or 1 wide; the
    step size decays geometrically from lr to final_lr so the last steps settle.
    Rows do not interact: the objective is a sum of per-row terms. Returns the fitted
    (mean, log_std) and the objective there, all (R, ...).
    """
    mean0, std0 = np.array(mean, np.float64), np.exp(np.array(log_std, np.float64))
    shift, log_std = np.zeros_like(mean0), np.array(log_std, np.float64)

    def total(shift, log_std):
        return anp.sum(objective(mean0 + std0 * shift, log_std))

    gradient = grad(total, argnum=(0, 1))
    state = init_adam_state([shift, log_std])
    for step in range(num_steps):
        g_shift, g_log_std = gradient(shift, log_std)
        rate = lr * (final_lr / lr) ** (step / max(num_steps - 1, 1))
        adam_update([shift, log_std], [-g_shift, -g_log_std], state, rate)
    mean = mean0 + std0 * shift
    return mean, log_std, objective(mean, log_std)


def fit_on_windows(tabulate, image_of_row, mean, log_std, num_steps=200, num_rounds=2,
                   size=WINDOW_SIZE):
    """Local optimum of the ELBO from each row's start (R, 2): (mean, log_std, elbo (R,)).

    Each round tabulates log p(x, z) on a window centred on the current Gaussian and runs
    fit_gaussians on it; a second round follows a Gaussian that moved or changed width
    beyond its first window. The returned ELBO is evaluated on the last window (the
    Gaussian ends near its centre); gaussian_elbo re-evaluates on a centred one.
    """
    for _ in range(num_rounds):
        log_joint, axes = tabulate(image_of_row, mean, lattice_level(np.exp(log_std)), size)
        mean, log_std, _ = fit_gaussians(partial(window_elbo, axes=axes, log_joint=log_joint),
                                         mean, log_std, num_steps)
    return mean, log_std, window_elbo(mean, log_std, axes, log_joint, escape_nats=0.0)


# ---------------------------------------------------------------- starts from the true posterior

def posterior_modes(log_joint_grid, num_modes=2, bound=6.0, spacing=0.2):
    """The num_modes highest local maxima of log p(x, z) on a shared grid: (N, num_modes, 2).

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
    # An image with fewer peaks repeats its best one.
    best = np.where(np.take_along_axis(peaks, best, 1) > -np.inf, best, best[:, :1])
    return z_grid[best]


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


def posterior_starts(tabulate, log_joint_grid, num_modes=2, zoom_spacing=0.05, num_zooms=2, size=17):
    """Gaussian starts (N * num_modes rows) from the true posterior around its highest modes.

    Around each coarse mode, windows zoom in num_zooms times: the first at zoom_spacing,
    then each centred on the last one's local posterior mean with spacing from its local
    std. Returns image_of_row (R,), mean, log_std (R, 2) (local moments of the posterior)
    and best (R, 2) (the best lattice point seen), rows ordered image-major.
    """
    modes = posterior_modes(log_joint_grid, num_modes)
    image_of_row = np.repeat(np.arange(len(modes)), num_modes)
    center = modes.reshape(-1, 2)
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


def global_fit(tabulate, num_images, starts, num_steps=200, extra=None):
    """The best Gaussian per image among fits from posterior starts and the candidates in extra.

    starts: (image_of_row, mean, log_std) as from posterior_starts; extra: optional
    (image_of_row, mean, log_std) of Gaussians already fitted (q_refined, so that
    ELBO(q*) >= ELBO(q_refined) by construction). Every candidate is evaluated on a fresh
    centred window. Returns elbo (N,), mean, log_std (N, 2).
    """
    image_of_row, mean, log_std = starts
    mean, log_std, _ = fit_on_windows(tabulate, image_of_row, mean, log_std, num_steps)
    if extra is not None:
        image_of_row = np.concatenate([image_of_row, extra[0]])
        mean, log_std = np.concatenate([mean, extra[1]]), np.concatenate([log_std, extra[2]])
    elbo = gaussian_elbo(tabulate, image_of_row, mean, log_std)
    return best_per_image(num_images, image_of_row, elbo, mean, log_std)


def mean_and_se(values):
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def inference_gap_study(enc_params, dec_params, x, rng=None, num_steps=200, num_modes=2,
                        iwae_ks=(1, 10, 100, 1000), iwae_images=500, convergence_images=1000, log_px=None):
    """Part 8: split log p(x) - ELBO(q) of every image x (N, 784) into its two gaps.

    log_px (N,): integrate.log_marginal_likelihood of x if already computed (part 3).
    The convergence checks run on the first convergence_images images.

    All images are fitted together, each with its own Gaussians. Returns {"summary":
    JSON-ready means and standard errors (over images), the wrong-basin fraction and its
    share of the gap, the convergence checks and (with rng) the IWAE table with q(z|x)
    and q* as proposals on the first iwae_images; "per_image": (N,) arrays log_px,
    elbo_amortized / _refined / _optimal, and the Gaussians mean_* / log_std_* (N, 2)}.
    """
    x = check_images(x, data_dim(dec_params)).astype(np.float32)
    images = np.arange(len(x))
    log_px = log_marginal_likelihood(dec_params, x) if log_px is None else np.asarray(log_px, np.float64)
    tabulate, log_joint_grid = decoder_target(dec_params, x)
    enc_mean, enc_log_std = (np.asarray(a, np.float64) for a in encoder(enc_params, x))
    ref_mean, ref_log_std, _ = fit_on_windows(tabulate, images, enc_mean, enc_log_std, num_steps)
    elbo_amortized, elbo_refined = gaussian_elbo(
        tabulate, np.concatenate([images, images]), np.concatenate([enc_mean, ref_mean]),
        np.concatenate([enc_log_std, ref_log_std])).reshape(2, -1)
    image_of_row, start_mean, start_log_std, best_point = posterior_starts(tabulate, log_joint_grid, num_modes)
    refined = (images, ref_mean, ref_log_std)
    elbo_optimal, opt_mean, opt_log_std = global_fit(
        tabulate, len(x), (image_of_row, start_mean, start_log_std), num_steps, extra=refined)
    per_image = {"log_px": log_px, "elbo_amortized": elbo_amortized, "elbo_refined": elbo_refined,
                 "elbo_optimal": elbo_optimal, "mean_amortized": enc_mean, "log_std_amortized": enc_log_std,
                 "mean_refined": ref_mean, "log_std_refined": ref_log_std,
                 "mean_optimal": opt_mean, "log_std_optimal": opt_log_std}
    summary = gap_summary(per_image)
    if convergence_images:
        summary["convergence"] = convergence_checks(
            tabulate, {k: v[:convergence_images] for k, v in per_image.items()},
            [a[image_of_row < convergence_images] for a in (image_of_row, best_point, start_log_std)], num_steps)
    if iwae_images and rng is not None:
        subset = images[:iwae_images]
        summary["iwae"] = {
            "num_images": len(subset),
            "log_px": float(log_px[subset].mean()),
            "encoder": iwae_table(dec_params, x[subset], enc_mean[subset], enc_log_std[subset], rng, iwae_ks),
            "optimal": iwae_table(dec_params, x[subset], opt_mean[subset], opt_log_std[subset], rng, iwae_ks)}
    return {"summary": summary, "per_image": per_image}


def convergence_checks(tabulate, per_image, starts, num_steps):
    """How much the mean ELBO(q*) over the images of per_image moves with another start or more steps.

    starts: (image_of_row, best lattice point, local log std) from posterior_starts. The
    other start is each mode's best lattice point with twice the local spread; more
    iterations is one more round of num_steps from q* on fresh windows.
    """
    num_images = len(per_image["log_px"])
    images = np.arange(num_images)
    image_of_row, best_point, log_std = starts
    refined = (images, per_image["mean_refined"], per_image["log_std_refined"])
    other, _, _ = global_fit(tabulate, num_images, (image_of_row, best_point, log_std + np.log(2.0)),
                             num_steps, extra=refined)
    longer_mean, longer_log_std, _ = fit_on_windows(tabulate, images, per_image["mean_optimal"],
                                                    per_image["log_std_optimal"], num_steps, num_rounds=1)
    longer = gaussian_elbo(tabulate, images, longer_mean, longer_log_std)
    optimal = per_image["elbo_optimal"]
    return {"num_images": num_images,
            "another_start": float(np.mean(other - optimal)),
            "another_start_max_per_image": float(np.max(np.abs(other - optimal))),
            "more_iterations": float(np.mean(longer - optimal)),
            "more_iterations_max_per_image": float(np.max(np.abs(longer - optimal)))}


def gap_summary(per_image):
    """Means and standard errors over images of the ELBOs, gaps and wrong basins (JSON-ready)."""
    log_px, amortized = per_image["log_px"], per_image["elbo_amortized"]
    refined, optimal = per_image["elbo_refined"], per_image["elbo_optimal"]
    wrong_basin = optimal - refined > WRONG_BASIN_NATS
    total_gap = log_px - amortized
    columns = {"log_px": log_px, "elbo_amortized": amortized, "elbo_refined": refined, "elbo_optimal": optimal,
               "approximation_gap": log_px - optimal, "amortization_gap": optimal - amortized,
               "total_gap": log_px - amortized, "gap_after_refinement": log_px - refined,
               "refinement_gain": refined - amortized, "wrong_basin_fraction": wrong_basin}
    summary = {"num_images": len(log_px)}
    for name, values in columns.items():
        summary[name], summary[name + "_se"] = mean_and_se(values)
    summary["wrong_basin_share_of_gap"] = float(total_gap[wrong_basin].sum() / total_gap.sum())
    summary["wrong_basin_share_of_amortization_gap"] = float(
        (optimal - amortized)[wrong_basin].sum() / (optimal - amortized).sum())
    summary["refined_below_optimal_in_wrong_basins"] = (
        float((optimal - refined)[wrong_basin].mean()) if wrong_basin.any() else 0.0)
    summary["min_approximation_gap"] = float((log_px - optimal).min())
    return summary


# ---------------------------------------------------------------- IWAE with any proposal

def iwae_bound_gaussian(dec_params, x, mean, log_std, rng, num_samples, samples_per_block=20000):
    """log mean_k p(x, z_k) / q(z_k), z_k ~ N(mean, exp(log_std)^2), per image: (N,).

    x (N, 784), mean, log_std (N, 2) float64 (one proposal per image). K = 1 is the ELBO.
    """
    images_per_block = max(1, samples_per_block // num_samples)
    out = np.empty(len(x))
    for start in range(0, len(x), images_per_block):
        rows = slice(start, start + images_per_block)
        eps = rng.standard_normal((num_samples,) + mean[rows].shape)
        z = mean[rows] + np.exp(log_std[rows]) * eps                       # (K, B, 2)
        logits = decoder(dec_params, z.astype(np.float32))
        log_lik = np.sum(x[rows] * logits - softplus(logits), axis=-1, dtype=np.float64)
        log_q = np.sum(-0.5 * eps**2 - log_std[rows] - 0.5 * LOG_2PI, axis=-1)
        out[rows] = logsumexp(log_lik + log_prior(z) - log_q, axis=0) - math.log(num_samples)
    return out


def iwae_table(dec_params, x, mean, log_std, rng, ks):
    """{K: [mean IWAE bound, its standard error over images]} for each K in ks."""
    return {int(k): list(mean_and_se(iwae_bound_gaussian(dec_params, x, mean, log_std, rng, k))) for k in ks}


# ---------------------------------------------------------------- in words

def first_epoch_apart(rows, key, num_se=3.0):
    """The first epoch at which the test mean of key exceeds the train mean by more than num_se
    combined standard errors, or None. rows: summaries with "epoch" and "split"."""
    by_epoch = {}
    for row in rows:
        by_epoch.setdefault(row["epoch"], {})[row["split"]] = row
    for epoch in sorted(by_epoch):
        pair = by_epoch[epoch]
        if "test" in pair and "train" in pair:
            difference = pair["test"][key] - pair["train"][key]
            if difference > num_se * math.hypot(pair["test"][key + "_se"], pair["train"][key + "_se"]):
                return epoch
    return None


def describe_inference_gaps(gaps):
    """Sentences for the report from inference_gaps' results: only what the numbers show."""
    test, train, rows = gaps["test"], gaps["train"], gaps["over_training"]
    sentences = [
        f"Of the test set's gap log p(x) - ELBO(q) = {test['total_gap']:.2f} nats per image, "
        f"{test['approximation_gap']:.3f} ± {test['approximation_gap_se']:.3f} is the approximation gap (what "
        f"the best diagonal Gaussian for each image still misses) and {test['amortization_gap']:.2f} ± "
        f"{test['amortization_gap_se']:.2f} the amortization gap (what the shared encoder misses); on the "
        f"{train['num_images']} training images {train['approximation_gap']:.3f} and "
        f"{train['amortization_gap']:.2f}.",
        f"Refining the encoder's q by gradient steps on each image's ELBO gains {test['refinement_gain']:.2f} "
        f"nats on test and {train['refinement_gain']:.2f} on train, but in {test['wrong_basin_fraction']:.1%} "
        f"of test images ({train['wrong_basin_fraction']:.1%} of training images) it stops more than "
        f"{WRONG_BASIN_NATS} nats below q*, in a wrong basin where the encoder pointed (on average "
        f"{test['refined_below_optimal_in_wrong_basins']:.1f} nats below on test); these images hold "
        f"{test['wrong_basin_share_of_gap']:.0%} of the test gap. Taking the refined q as if it were the best "
        f"Gaussian would put the approximation gap at {test['gap_after_refinement']:.2f} nats instead of "
        f"{test['approximation_gap']:.3f}.",
    ]
    check = test.get("convergence")
    if check:
        largest = max(abs(check["another_start"]), abs(check["more_iterations"]))
        sentences.append(
            f"Another start and more iterations move the mean ELBO(q*) of the first {check['num_images']} test "
            f"images by {check['another_start']:+.4f} and {check['more_iterations']:+.1e} nats "
            + ("(both under 0.02 nats: q* is converged)." if largest < 0.02
               else "(more than 0.02 nats: q* is not converged)."))
    iwae = test.get("iwae")
    if iwae:
        k = max(iwae["optimal"], key=int)
        sentences.append(
            f"As an importance-sampling proposal on the first {iwae['num_images']} test images, q* brings the "
            f"IWAE bound with K = {k} to {iwae['log_px'] - iwae['optimal'][k][0]:.3f} nats of log p(x), "
            f"where the encoder's q stays {iwae['log_px'] - iwae['encoder'][k][0]:.2f} nats short.")
    overfit = first_epoch_apart(rows, "amortization_gap")
    decoder_apart = first_epoch_apart([{**r, "neg_log_px": -r["log_px"], "neg_log_px_se": r["log_px_se"]}
                                       for r in rows], "neg_log_px")
    epochs = sorted({r["epoch"] for r in rows})
    first_wrong = next((r["epoch"] for r in sorted(rows, key=lambda r: r["epoch"])
                        if r["split"] == "test" and r["wrong_basin_fraction"] > 0), None)
    sentences.append(
        f"Along training (epochs {', '.join(map(str, epochs))}, {gaps['over_training_images']['test']} images "
        "per set): "
        + (f"the test amortization gap first exceeds the training one by more than 3 standard errors at "
           f"epoch {overfit}" if overfit else "the test and training amortization gaps stay within 3 standard "
           "errors")
        + "; "
        + (f"test log p(x) falls below training log p(x) by more than 3 standard errors from epoch {decoder_apart}"
           if decoder_apart else "test and training log p(x) stay within 3 standard errors of each other (they are "
           "means over different images, so only a large decoder overfit would show)")
        + "; "
        + (f"wrong basins appear on test from epoch {first_wrong}." if first_wrong else
           "no test image is in a wrong basin."))
    return sentences


# ---------------------------------------------------------------- figures

def fig_gap_histograms(per_image_by_split):
    """Histograms of both gaps per image, one row per split: {split: per_image} -> Figure."""
    fig = Figure(figsize=(9, 3.2 * len(per_image_by_split)), layout="constrained")
    axes = fig.subplots(len(per_image_by_split), 2, squeeze=False)
    for (split, per_image), (approx_ax, amort_ax) in zip(per_image_by_split.items(), axes):
        approx = per_image["log_px"] - per_image["elbo_optimal"]
        amort = per_image["elbo_optimal"] - per_image["elbo_amortized"]
        wrong = per_image["elbo_optimal"] - per_image["elbo_refined"] > WRONG_BASIN_NATS
        approx_ax.hist(approx, bins=60, color="C0")
        approx_ax.set(xlabel="approximation gap log p(x) - ELBO(q*) (nats)", ylabel=f"{split} images",
                      title=f"{split}: mean {approx.mean():.3f} nats")
        bins = np.histogram_bin_edges(amort, bins=60)
        amort_ax.hist([amort[~wrong], amort[wrong]], bins=bins, stacked=True, color=["C1", "C3"],
                      label=["refinement reaches q*", f"wrong basin ({wrong.mean():.1%})"])
        amort_ax.set(xlabel="amortization gap ELBO(q*) - ELBO(q) (nats)", yscale="log",
                     title=f"{split}: mean {amort.mean():.2f} nats")
        amort_ax.legend(fontsize=8)
    return fig


def fig_gaps_over_training(rows, train_curve=None):
    """log p(x) and ELBO(q(z|x)) against epoch, and what each Gaussian leaves of log p(x).

    rows: list of summary dicts (gap_summary) with "epoch" and "split" added. Right: per
    image means of log p(x) - ELBO for q(z|x), q_refined and q* (the approximation gap),
    solid test, dashed train, with standard errors over images. train_curve (E,): the
    mean minibatch -ELBO of each training epoch, drawn on the left as the training curve.
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    value_ax, gap_ax = fig.subplots(1, 2)
    if train_curve is not None:
        value_ax.plot(np.arange(1, len(train_curve) + 1), -np.asarray(train_curve), color="0.6", lw=1,
                      label="training curve: minibatch ELBO, 1 sample")
    for split, style in (("test", "-"), ("train", "--")):
        mine = sorted((r for r in rows if r["split"] == split), key=lambda r: r["epoch"])
        if not mine:
            continue
        epochs = [r["epoch"] for r in mine]
        for color, key, label in ((0, "log_px", "log p(x)"), (1, "elbo_amortized", "ELBO(q(z|x))")):
            value_ax.errorbar(epochs, [r[key] for r in mine], [r[key + "_se"] for r in mine], color=f"C{color}",
                              ls=style, marker="o", ms=3, label=f"{label}, {split}")
        for color, key, label in ((1, "total_gap", "q(z|x)"), (2, "gap_after_refinement", "q refined"),
                                  (3, "approximation_gap", "q*")):
            gap_ax.errorbar(epochs, [r[key] for r in mine], [r[key + "_se"] for r in mine], color=f"C{color}",
                            ls=style, marker="o", ms=3, label=f"{label}, {split}")
    value_ax.set(xscale="log", xlabel="epoch", ylabel="nats per image", title="log p(x) and the encoder's ELBO")
    gap_ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel="log p(x) - ELBO (nats per image)",
               title="what each Gaussian leaves (solid: test, dashed: train)")
    value_ax.legend(fontsize=7)
    gap_ax.legend(fontsize=7)
    return fig


def fig_worst_amortization(dec_params, x, per_image, num_shown=4, num_points=101):
    """True p(z|x) with q(z|x), q_refined and q* for the images with the largest amortization gaps.

    x (N, 784) and per_image from inference_gap_study; half the panels show the largest
    gaps overall, half the largest among wrong-basin images.
    """
    amort = per_image["elbo_optimal"] - per_image["elbo_amortized"]
    wrong = np.flatnonzero(per_image["elbo_optimal"] - per_image["elbo_refined"] > WRONG_BASIN_NATS)
    shown = list(np.argsort(-amort)[:num_shown - num_shown // 2])
    shown += [n for n in wrong[np.argsort(-amort[wrong])] if n not in shown][:num_shown - len(shown)]
    shown = np.array(shown)
    kinds = [("amortized", "q(z|x)", "C1", "--"), ("refined", "q refined", "C2", ":"), ("optimal", "q*", "C3", "-.")]
    means = np.stack([per_image["mean_" + k][shown] for k, *_ in kinds], axis=1)
    stds = np.exp(np.stack([per_image["log_std_" + k][shown] for k, *_ in kinds], axis=1))
    # The window covers the posterior's mode (at q*) and all three Gaussians.
    z_grids, dz = covering_grids(means, stds, num_points, 3.0)
    log_joint = log_joint_on_windows(dec_params, x[shown], z_grids)
    fig = Figure(figsize=(3.2 * len(shown), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(shown)))
    for ax, n, grid, values, k in zip(axes, shown, z_grids, log_joint, range(len(shown))):
        contour_density(ax, grid, values, "k", "-")
        for (*_, color, style), m, s in zip(kinds, means[k], stds[k]):
            log_q = np.sum(-0.5 * ((grid - m) / s)**2 - np.log(s), axis=1)
            contour_density(ax, grid, log_q, color, style)
        show_digit(ax.inset_axes([0.0, 0.78, 0.22, 0.22]), x[n])
        ax.set_aspect("equal")
        ax.set_title(f"image {n}: amortization gap {amort[n]:.1f}\n"
                     f"refined {per_image['elbo_refined'][n] - per_image['elbo_amortized'][n]:+.1f}, "
                     f"approx. gap {per_image['log_px'][n] - per_image['elbo_optimal'][n]:.2f}", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("true p(z|x) (black) with q(z|x) (orange dashed), q refined (green dotted), q* (red dash-dot);"
                 "\ncontours hold 50 / 90 / 99% of each density", fontsize=9)
    return fig
