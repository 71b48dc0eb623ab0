"""Figures of posteriors: exact p(z|x) against the encoder's q (6.1), the posterior given the
top half of a digit (6.2), and the SVI fit with its completions of the bottom half (6.3).

Each panel draws highest-density contours on a window fitted to the posterior
(``posterior.posterior_windows``); the SVI figures reuse the windows ``svi.svi_study``
computed, so each posterior is located once.
"""
import math

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .distributions import diag_gaussian_log_density, sample_diag_gaussian, sigmoid
from .images import SIDE, check_images
from .integrate import log_integrate_grid, logsumexp
from .model import data_dim, decoder, encoder
from .posterior import TOP_ROWS, grid_moments, log_joint_on_windows, posterior_windows, quadrature_kl, top_half

MASSES = (0.5, 0.9, 0.99)  # contour levels: highest-density regions holding these masses


def hdr_log_levels(log_density, masses=MASSES):
    """Increasing log-density levels whose superlevel sets hold the given masses. (G,) on a grid."""
    ordered = np.sort(log_density)[::-1]
    mass = np.cumsum(np.exp(ordered - logsumexp(ordered)))
    levels = ordered[np.minimum(np.searchsorted(mass, masses), len(ordered) - 1)]
    return np.unique(levels)


def contour_density(ax, z_grid, log_density, color, linestyle):
    """HDR contours (50/90/99%; thicker = more central) of a density on a square grid (G, 2)."""
    side = math.isqrt(len(z_grid))
    z1, z2 = z_grid[:side, 0], z_grid[::side, 1]
    levels = hdr_log_levels(log_density)
    ax.contour(z1, z2, log_density.reshape(side, side), levels, colors=color,
               linestyles=linestyle, linewidths=np.linspace(0.7, 1.8, len(levels)))


def show_digit(ax, image):
    """A flattened digit, or its first rows only: the pixels not given are shaded blue-gray."""
    pixels = np.full(SIDE * SIDE, np.nan)
    pixels[:len(image)] = image
    ax.imshow(np.ma.masked_invalid(pixels.reshape(SIDE, SIDE)),
              cmap=colormaps["gray_r"].with_extremes(bad="#cfd8e3"), vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def posterior_panels(panels, titles, styles, suptitle):
    """One panel per image: contours of several densities on its window, digit as an inset.

    panels: per image (z_grid (G, 2), [log_density (G,) per style], image (784,) or (392,)).
    styles: [(label, color, linestyle)] matching the densities.
    """
    fig = Figure(figsize=(3.2 * len(panels), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
    for ax, (z_grid, log_densities, image), title in zip(axes, panels, titles):
        for log_density, (_, color, linestyle) in zip(log_densities, styles):
            contour_density(ax, z_grid, log_density, color, linestyle)
        show_digit(ax.inset_axes([0.0, 0.78, 0.22, 0.22]), image)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("$z_1$")
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("$z_2$")
    handles = [Line2D([], [], color=color, linestyle=linestyle, label=label) for label, color, linestyle in styles]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(styles), fontsize=9)
    fig.suptitle(suptitle + "\ncontours: highest-density regions holding 50 / 90 / 99% of the mass "
                 "(thick to thin); each window zoomed to fit; inset: the data (shaded: unobserved)",
                 fontsize=10)
    return fig


def gaussian_against_posterior(x, mean, log_std, windows, styles, suptitle):
    """Contours of a Gaussian q (mean, log_std (N, 2)) over the quadrature p(z|x), x (N, P).

    windows: posterior_windows of x covering q. Each panel's title gives KL(q || p) on its grid.
    """
    z_grids, dz, log_joint = windows
    log_post = log_joint - log_integrate_grid(log_joint, dz, math.isqrt(z_grids.shape[1]))[:, None]
    log_q = diag_gaussian_log_density(z_grids, mean[:, None], log_std[:, None])
    kl = quadrature_kl(log_q, log_post, dz)
    panels = [(z_grids[n], [log_post[n], log_q[n]], x[n]) for n in range(len(x))]
    return posterior_panels(panels, [f"KL(q || p) = {k:.3f} nats" for k in kl], styles, suptitle)


def fig_true_vs_approx_posterior(enc_params, dec_params, x, num_points=101):
    """True p(z|x) (solid) against the encoder's q(z|x) (dashed) for a few images x (N, 784)."""
    x = check_images(x, data_dim(dec_params))
    q_mean, q_log_std = (np.asarray(a, dtype=float) for a in encoder(enc_params, x))
    windows = posterior_windows(dec_params, x, q_mean, np.exp(q_log_std), num_points, num_stds=4.0)
    return gaussian_against_posterior(x, q_mean, q_log_std, windows,
                                      [("true posterior p(z|x)", "black", "solid"),
                                       ("encoder q(z|x)", "tab:red", "dashed")],
                                      "True posterior vs the encoder's approximation")


def fig_top_half_posterior(dec_params, x, num_points=101):
    """p(z|x_top) (solid) beside p(z|x) of the whole image (dotted) for images x (N, 784)."""
    x_top = top_half(x)
    z_full, dz_full, log_joint_full = posterior_windows(dec_params, x, num_points=41)
    full_mean, full_std = grid_moments(z_full, log_joint_full)
    z_grids, dz, log_joint_top = posterior_windows(dec_params, x_top, full_mean, full_std, num_points, num_stds=4.0)
    log_post_top = log_joint_top - log_integrate_grid(log_joint_top, dz, num_points)[:, None]
    log_joint = log_joint_on_windows(dec_params, x, z_grids)
    log_post = log_joint - log_integrate_grid(log_joint, dz, num_points)[:, None]
    panels = [(z_grids[n], [log_post_top[n], log_post[n]], x_top[n]) for n in range(len(x))]
    _, top_std = grid_moments(z_grids, log_joint_top)
    return posterior_panels(panels, [f"std of p(z|x_top): {s[0]:.2f}, {s[1]:.2f}" for s in top_std],
                            [("p(z | top half)", "tab:blue", "solid"),
                             ("p(z | whole image)", "gray", "dotted")],
                            "Posterior given only the top half of the digit")


def fig_svi_posterior(x, svi):
    """The SVI q (dashed) on p(z|x_top) (solid); x (N, 784), svi = svi.svi_study(dec_params, x, ...)."""
    return gaussian_against_posterior(top_half(x), svi["mu"], svi["log_std"], svi["windows"],
                                      [("true p(z | top half)", "black", "solid"),
                                       ("SVI q(z)", "tab:orange", "dashed")],
                                      "SVI fit to the posterior given the top half")


def fig_svi_prediction(dec_params, x, svi, rng, num_shown=4, num_average=1000):
    """Completing the bottom halves: rows are images x (N, 784); svi = svi.svi_study(dec_params, x, ...).

    Columns: the original; num_shown completions sigmoid(logits(z)) for z ~ q; the
    posterior predictive mean of the bottom, averaged over num_average z ~ q; the same
    averaged over the true p(z|x_top) with the weights of svi's quadrature windows.
    Red line: observed above.
    """
    x_top = top_half(x)
    mu, log_std = (np.asarray(svi[k], np.float64) for k in ("mu", "log_std"))  # z in float64, as on the windows
    shown = sigmoid(decoder(dec_params, sample_diag_gaussian(mu, log_std, rng, num_shown)))
    q_mean = np.mean(sigmoid(decoder(dec_params, sample_diag_gaussian(mu, log_std, rng, num_average))), axis=0)
    z_grids, _, log_joint = svi["windows"]
    weights = np.exp(log_joint - logsumexp(log_joint, axis=-1, keepdims=True))
    true_mean = np.einsum("ng,ngd->nd", weights, sigmoid(decoder(dec_params, z_grids)))
    columns = ([("original", x)] + [(f"z ~ q, #{s + 1}", shown[s]) for s in range(num_shown)]
               + [(f"mean over\n{num_average} z ~ q", q_mean), ("mean over\ntrue p(z|x_top)", true_mean)])
    fig = Figure(figsize=(1.3 * len(columns), 1.45 * len(x) + 0.6), layout="constrained")
    axes = fig.subplots(len(x), len(columns), squeeze=False)
    split = TOP_ROWS * SIDE
    for n, row in enumerate(axes):
        for c, (ax, (title, images)) in enumerate(zip(row, columns)):
            completed = images[n] if c == 0 else np.concatenate([x_top[n], images[n][split:]])
            show_digit(ax, completed)
            if c > 0:
                ax.axhline(TOP_ROWS - 0.5, color="tab:red", linewidth=0.8)
            if n == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle("Bottom halves predicted from the top half (above the red line: observed;\n"
                 "below: Bernoulli means sigmoid(logits))", fontsize=9)
    return fig
