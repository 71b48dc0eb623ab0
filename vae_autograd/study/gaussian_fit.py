"""The best diagonal Gaussian for a 2-D posterior known up to its constant, image by image:
sets of per-row Gaussians (Gaussians), local fits (fit_on_windows) and the global search.

For an image x, a Gaussian q(z) = N(mean, diag(exp(log_std)^2)) has
    ELBO(q) = E_q[log p(x, z)] + H(q) = log p(x) - KL(q || p(z|x)),
so the Gaussian of highest ELBO is the one closest to the true posterior. This module
finds two per image, for parts 6.1 and 8: q_refined, the local optimum reached from a
given start (test-time refinement of the encoder's q(z|x)), and q*, the global optimum,
the best of the fits started at the posterior's highest modes and q_refined.

The ELBO of a Gaussian is computed without sampling and without a decoder call inside
the optimization, on lattice windows of log p(x, z) (study/windows.py: window_log_joint,
window_elbo), by damped Newton steps with its exact gradient and Hessian (fit_gaussians).
A fit may leave its window (window_serves), so fits run in rounds on new windows until
they converge (fit_on_windows).
"""
from dataclasses import dataclass

import numpy as np

from ..core.logspace import logsumexp
from .grids import latent_grid, neighbourhood_max
from .windows import MOVING_WINDOW_SIZE, POINTS_PER_STD, WINDOW_SIZE, gaussian_elbo, lattice_level, window_elbo

SERVING_POINTS_PER_STD = 1.0  # a window serves a Gaussian while its spacing <= std / this


REACH_STDS = 5.0        # and it reaches this many std beyond the Gaussian's mean


# A Gaussian fitted at a lower mode of the posterior cannot beat one at the highest unless the
# lower mode holds more mass: 10 nats of height (a factor 2e4) would take a lower mode 150
# times wider on each axis, beyond any posterior of a trained model.
MODE_WITHIN_NATS = 10.0


NUM_MODES = 2            # local maxima searched per image, found on a coarse grid:


MODE_GRID_BOUND = 6.0    # [-6, 6]^2 in steps of 0.2


MODE_GRID_SPACING = 0.2


CONVERGED_NATS = 1e-6   # a fit has converged when a Newton step would gain less than this


MAX_ROUNDS = 30         # of fitting on a new window, for a Gaussian still rising


@dataclass(frozen=True, eq=False)
class Gaussians:
    """Diagonal Gaussians, one per row: row r is a Gaussian for image image_of_row[r] (R,).

    mean, log_std (R, 2); elbo (R,) where it is known (a fit's result), else None.
    """
    image_of_row: np.ndarray
    mean: np.ndarray
    log_std: np.ndarray
    elbo: np.ndarray | None = None


def joined(*sets):
    """The rows of several Gaussians, in order; with ELBOs if every set has them."""
    elbos = [g.elbo for g in sets]
    return Gaussians(np.concatenate([g.image_of_row for g in sets]), np.concatenate([g.mean for g in sets]),
                     np.concatenate([g.log_std for g in sets]),
                     None if any(e is None for e in elbos) else np.concatenate(elbos))


@dataclass(frozen=True, eq=False)
class Fit:
    """What fit_on_windows returns: the fitted Gaussians with their ELBO, the ELBO (R,) of
    the starts (each on a serving window), and whether each row converged (R,) bool."""
    fitted: Gaussians
    start_elbo: np.ndarray
    converged: np.ndarray


@dataclass(frozen=True, eq=False)
class ModeStarts:
    """Starts at the posterior's modes (posterior_starts): the posterior's local mean and
    log std around each mode (local), and the best lattice point (R, 2) seen there."""
    local: Gaussians
    best_point: np.ndarray


@dataclass(frozen=True, eq=False)
class BestGaussians:
    """What best_gaussians returns for N images: the ELBO (N,) of the starts, q_refined and
    q* (Gaussians with their ELBOs, one row per image) and whether each q_refined converged."""
    start_elbo: np.ndarray
    refined: Gaussians
    optimal: Gaussians
    refined_converged: np.ndarray


def fit_gaussians(axes, log_joint, mean, log_std, num_steps=100, tol=CONVERGED_NATS, max_move=4.0):
    """The Gaussians of highest window_elbo on the windows axes (R, 2, W), log_joint (R, W, W),
    from mean, log_std (R, 2), by damped Newton steps (Levenberg-Marquardt), each row alone.

    The step in theta = (mean / std0, log_std), scaled by the start's std0 so that one
    damping suits posteriors 0.01 or 1 wide, solves (-H + mu I) step = gradient, with mu
    at least the row's damping and large enough to make -H + mu I positive definite (far
    from an optimum the ELBO need not be concave). A step that lowers the ELBO is refused
    and the damping raised 4x; an accepted one lowers it 4x, so steps become pure Newton
    steps near the optimum and converge quadratically. No step moves the mean more than
    max_move start stds or the log std more than 1. A row converges when the gain a
    Newton step predicts, gradient . (-H)^-1 gradient / 2, is below tol nats (-H positive
    definite). Returns mean, log_std (R, 2) and converged (R,) bool.
    """
    mean, log_std = np.array(mean, np.float64), np.array(log_std, np.float64)
    scale = np.concatenate([np.exp(log_std), np.ones_like(log_std)], axis=1)    # (R, 4)

    def evaluate(rows, mean, log_std):
        elbo, d_mean, d_log_std, hessian = window_elbo(mean, log_std, axes[rows], log_joint[rows], with_hessian=True)
        s = scale[rows]
        return elbo, np.concatenate([d_mean, d_log_std], axis=1) * s, -hessian * s[:, :, None] * s[:, None, :]

    rows = np.arange(len(mean))
    elbo, gradient, curvature = evaluate(rows, mean, log_std)
    damping = np.full(len(mean), 1e-3)
    converged = np.zeros(len(mean), bool)
    for step_count in range(num_steps + 1):
        lowest = np.linalg.eigvalsh(curvature[rows])[:, 0]
        concave = lowest > 0
        newton = np.linalg.solve(np.where(concave[:, None, None], curvature[rows], np.eye(4)), gradient[rows, :, None])
        done = concave & (0.5 * np.sum(gradient[rows] * newton[:, :, 0], axis=1) < tol)
        converged[rows[done]] = True
        rows, lowest = rows[~done], lowest[~done]
        if not len(rows) or step_count == num_steps:
            break
        mu = damping[rows] + np.maximum(0.0, 1e-9 - lowest)
        step = np.linalg.solve(curvature[rows] + mu[:, None, None] * np.eye(4), gradient[rows, :, None])[:, :, 0]
        step /= np.maximum(1.0, np.max(np.abs(step) / [max_move, max_move, 1.0, 1.0], axis=1))[:, None]
        trial_mean, trial_log_std = mean[rows] + scale[rows, :2] * step[:, :2], log_std[rows] + step[:, 2:]
        trial_elbo, trial_gradient, trial_curvature = evaluate(rows, trial_mean, trial_log_std)
        better = trial_elbo >= elbo[rows]
        kept = rows[better]
        mean[kept], log_std[kept], elbo[kept] = trial_mean[better], trial_log_std[better], trial_elbo[better]
        gradient[kept], curvature[kept] = trial_gradient[better], trial_curvature[better]
        damping[rows] = np.where(better, damping[rows] / 4.0, damping[rows] * 4.0)
    return mean, log_std, converged


def window_serves(axes, mean, log_std, refinement=1):
    """Whether each row's window still serves its Gaussian: (R,) bool.

    axes (R, 2, W), mean, log_std (R, 2). It serves if on both axes its spacing is at most
    std / refinement (a Target's; for a smooth target, the Riemann sum's relative error,
    exp(-2 pi^2 std^2 / spacing^2), is then below 3e-9) and it reaches REACH_STDS std beyond
    the mean on either side (the mass outside, under 6e-7, moves the ELBO by less than 1e-5
    nats). A window centred on the Gaussian at its lattice level always serves; a fitted
    Gaussian may narrow by a factor 1.25 to 1.77, or move a little, and still be served.
    """
    std = np.exp(log_std)
    spacing = axes[:, :, 1] - axes[:, :, 0]
    return (spacing <= std / (SERVING_POINTS_PER_STD * refinement)).all(axis=1) & window_reaches(axes, mean, std)


def window_reaches(axes, mean, std):
    """(R,) bool: each window reaches REACH_STDS std (R, 2) beyond the mean on both sides of both axes."""
    return ((axes[:, :, 0] <= mean - REACH_STDS * std) & (axes[:, :, -1] >= mean + REACH_STDS * std)).all(axis=1)


def fit_on_windows(target, starts, num_steps=100, max_rounds=MAX_ROUNDS, tol=CONVERGED_NATS):
    """Local optimum of the ELBO of a Target from each row of starts (Gaussians; their elbo is not used).

    Each round tabulates log p(x, z) on windows centred on the current Gaussians and runs
    fit_gaussians on them (at most num_steps Newton steps). A row has converged when its
    fit has (a Newton step would gain less than tol nats) and its window still serves the
    fitted Gaussian (window_serves); the others go another round on a new window, up to
    max_rounds (after which a fresh window evaluates them). Rounds after the first use wider
    windows (MOVING_WINDOW_SIZE): a Gaussian still rising may be travelling along a narrow
    ridge of the posterior, several std per round. One pressed against its window's edge in two
    rounds running is travelling further than a window of its own width reaches: each further such
    round doubles its window's spacing, and so its reach (a start far from the posterior's mass would
    otherwise crawl 14 spacings a round until max_rounds). Only windows that serve the fitted
    Gaussian end a fit, so the coarser windows of its travel never enter an ELBO.
    Returns a Fit: the fitted Gaussians (R rows) and their ELBO, the ELBO of the starts
    and whether each row converged.
    """
    tabulate, image_of_row = target.tabulate, starts.image_of_row
    mean, log_std = np.array(starts.mean, np.float64), np.array(starts.log_std, np.float64)
    elbo, start_elbo = np.empty(len(mean)), np.empty(len(mean))
    level_log_std = log_std.copy()
    pressed = np.zeros(len(mean), int)  # rounds running that each row ended against its window's edge
    active = np.arange(len(mean))
    for round_ in range(max_rounds):
        if not len(active):
            break
        size = WINDOW_SIZE if round_ == 0 else MOVING_WINDOW_SIZE
        log_joint, axes = tabulate(image_of_row[active], mean[active], lattice_level(np.exp(level_log_std[active])),
                                   size)
        if round_ == 0:  # the starts' own centred windows
            start_elbo[:] = window_elbo(mean, log_std, axes, log_joint, escape_nats=0.0)
        fit_mean, fit_log_std, fit_converged = fit_gaussians(axes, log_joint, mean[active], log_std[active],
                                                             num_steps, tol)
        # A Gaussian pressed against its window's edge is narrowed by the escape penalty: its
        # next window keeps the spacing of this one, or doubles it if it was pressed the round before.
        at_edge = ~window_reaches(axes, fit_mean, np.exp(fit_log_std))
        pressed[active] = np.where(at_edge, pressed[active] + 1, 0)
        widened = np.maximum(level_log_std[active], fit_log_std) + np.log(2.0) * (pressed[active] >= 2)[:, None]
        level_log_std[active] = np.where(at_edge[:, None], widened, fit_log_std)
        mean[active], log_std[active] = fit_mean, fit_log_std
        done = np.flatnonzero(fit_converged & window_serves(axes, fit_mean, fit_log_std, target.refinement))
        elbo[active[done]] = window_elbo(fit_mean[done], fit_log_std[done], axes[done], log_joint[done],
                                         escape_nats=0.0)
        active = np.delete(active, done)
    if len(active):
        elbo[active] = gaussian_elbo(tabulate, image_of_row[active], mean[active], log_std[active])
    converged = np.ones(len(mean), bool)
    converged[active] = False
    return Fit(Gaussians(image_of_row, mean, log_std, elbo), start_elbo, converged)


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
    neighbours = neighbourhood_max(grid, -np.inf, include_centre=False)
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


def posterior_starts(target, num_modes=NUM_MODES, within_nats=MODE_WITHIN_NATS, zoom_spacing=0.05, num_zooms=2,
                     size=17):
    """Gaussian starts from the true posterior of a Target around its highest modes (posterior_modes).

    Around each coarse mode, windows zoom in num_zooms times: the first at zoom_spacing,
    then each centred on the last one's local posterior mean with spacing from its local
    std. Returns ModeStarts: local, the local moments of the posterior as Gaussians, and
    best_point (R, 2), the best lattice point seen; rows ordered image-major.
    """
    image_of_row, center = posterior_modes(target.log_joint_grid, num_modes, within_nats)
    level = np.full(center.shape, lattice_level(zoom_spacing * POINTS_PER_STD))
    for _ in range(num_zooms):
        log_joint, axes = target.tabulate(image_of_row, center, level, size)
        center, std, best = window_moments(axes, log_joint)
        level = lattice_level(std)
    return ModeStarts(Gaussians(image_of_row, center, np.log(std)), best)


def best_per_image(num_images, candidates):
    """For each image, the row of candidates (Gaussians with ELBOs) with the highest ELBO:
    Gaussians with one row per image (image_of_row = 0, ..., num_images - 1)."""
    elbo, image_of_row = candidates.elbo, candidates.image_of_row
    order = np.lexsort((-elbo, image_of_row))
    first = order[np.searchsorted(image_of_row[order], np.arange(num_images))]
    return Gaussians(np.arange(num_images), candidates.mean[first], candidates.log_std[first], elbo[first])


def global_fit(target, num_images, starts, num_steps=100, extra=None):
    """The best Gaussian per image among fits from starts and the candidates in extra.

    starts: Gaussians, e.g. from posterior_starts; extra: optional Gaussians already
    fitted, with their ELBOs (q_refined, so that ELBO(q*) >= ELBO(q_refined) by
    construction). Returns best_per_image: Gaussians with their ELBOs, one row per image.
    """
    fitted = fit_on_windows(target, starts, num_steps).fitted
    return best_per_image(num_images, fitted if extra is None else joined(fitted, extra))


def best_gaussians(target, mean, log_std, num_steps=100, num_modes=NUM_MODES):
    """q_refined, the local optimum from each image's start mean, log_std (N, 2) (e.g. the
    encoder's q(z|x)), and q*, the best of it and the fits from the posterior's num_modes
    highest modes, for the N images of a Target (decoder_target or explicit_target).

    Each mode gives two starts of different widths: the posterior's local mean and spread
    there, and its best lattice point with half that spread (where two close modes look
    like one, the best Gaussian may cover both or only one).

    Returns BestGaussians: the starts' ELBO, q_refined and q* (one row per image, with
    their ELBOs) and whether each q_refined converged (fit_on_windows). All images are
    fitted together, each with its own Gaussians.
    """
    refined = fit_on_windows(target, Gaussians(np.arange(len(mean)), mean, log_std), num_steps)
    modes = posterior_starts(target, num_modes)
    local = modes.local
    starts = joined(local, Gaussians(local.image_of_row, modes.best_point, local.log_std - np.log(2.0)))
    optimal = global_fit(target, len(mean), starts, num_steps, extra=refined.fitted)
    return BestGaussians(refined.start_elbo, refined.fitted, optimal, refined.converged)
