"""Figures of posteriors: exact p(z|x) against the encoder's q (6.1), the posterior given the
top half of a digit (6.2), and the SVI fit with its completions of the bottom half (6.3).

Each panel draws highest-density contours on a window zoomed to hold the whole posterior
(``study/posterior.py``'s ``whole_posterior_windows``, as ``study/grids.py``'s ``Windows``); the title
says whether it does (core.text.window_holds).
The figures draw what the studies computed: 6.1 and 6.2 from ``posterior_study`` in
``study/posterior.py``, 6.3 from ``svi_study`` in ``study/svi.py``, so each
posterior is located once and every number in a title is an entry of a summary.
"""
import math
import textwrap

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..core.distributions import diag_gaussian_log_density
from ..core.images import SIDE
from ..core.logspace import logsumexp
from ..core.text import at_most, held_by, pieces_share
from ..study.posterior import TOP_ROWS, normalized, top_half

MASSES = (0.5, 0.9, 0.99)  # contour levels: highest-density regions holding these masses
TILE_GAP = 3  # pixels between the digits of fig_svi_prediction


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


def posterior_panels(rows, styles, suptitle, held, row_labels=None):
    """Rows of panels, one per image: contours of several densities on its window, digit as an inset.

    rows: per row, per image (z_grid (G, 2), [log_density (G,) per style], image (784,)
    or (392,), title). styles: [(label, color, linestyle)] matching the densities.
    held: what the windows hold, in words (core.text.window_holds).
    row_labels: a label per row, written left of its first panel.
    """
    num_columns = max(len(row) for row in rows)
    partial = any(len(panel[2]) < SIDE * SIDE for row in rows for panel in row)
    # The styles are named in the title, wrapped to the figure: a legend would cover the axis labels.
    named = "; ".join(f"{label}: {color.removeprefix('tab:')} {linestyle}" for label, color, linestyle in styles)
    width = 3.2 * num_columns
    text = textwrap.fill(  # about 14 characters per inch at this size, so no line leaves the figure
        f"{suptitle} ({named}). Contours: highest-density regions holding 50 / 90 / 99% of the mass (thick to "
        f"thin); each window zoomed to hold {held}; inset: the data"
        + (" (shaded: the rows not given)" if partial else ""), width=int(14 * width))
    fig = Figure(figsize=(width, 3.7 * len(rows) + 0.2 * (text.count("\n") + 1)), layout="constrained")
    # Room between the rows of text: with equal-aspect axes the layout leaves the labels tight.
    fig.get_layout_engine().set(h_pad=0.12, w_pad=0.06)
    axes = fig.subplots(len(rows), num_columns, squeeze=False)
    for r, (row, row_axes) in enumerate(zip(rows, axes)):
        for ax, (z_grid, log_densities, image, title) in zip(row_axes, row):
            for log_density, (_, color, linestyle) in zip(log_densities, styles):
                contour_density(ax, z_grid, log_density, color, linestyle)
            # The inset lies inside the panel, so the layout, which measures every text, can skip it.
            show_digit(ax.inset_axes([0.0, 0.78, 0.22, 0.22], in_layout=False), image)
            ax.set_aspect("equal")
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("$z_1$", fontsize=8)
            ax.set_ylabel("$z_2$", fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(5))  # a narrow window's many ticks would run together
            ax.tick_params(labelsize=7)
        for ax in row_axes[len(row):]:
            ax.set_visible(False)
        row_axes[0].set_ylabel(("" if row_labels is None else row_labels[r] + "\n") + "$z_2$", fontsize=8)
    fig.suptitle(text, fontsize=10)
    return fig


def gaussian_panels(x, mean, log_std, windows, titles):
    """Panels of a Gaussian q (mean, log_std (N, 2)) over p(z|x) on its Windows, x (N, P)."""
    log_q = diag_gaussian_log_density(windows.z_grids, mean[:, None], log_std[:, None])
    log_post = normalized(windows)
    return [(windows.z_grids[n], [log_post[n], log_q[n]], x[n], titles[n]) for n in range(len(x))]


def kl_titles(summary):
    """Panel titles of 6.1 from encoder_against_posterior's summary: the KL and the best diagonal Gaussian's."""
    return [f"KL(q || p) = {kl:.3f} nats\nbest diagonal Gaussian: {best:.3f}"
            for kl, best in zip(summary["kl"], summary["best_gaussian_kl"])]


def fig_true_vs_approx_posterior(study):
    """True p(z|x) (solid) against the encoder's q(z|x) (dashed): a row of training images, a row
    of test images; study = posterior.posterior_study(...). Titles: the summary's KLs."""
    rows = [gaussian_panels(part["x"], part["q_mean"], part["q_log_std"], part["windows"],
                            kl_titles(part["summary"])) for part in (study["train"], study["test"])]
    return posterior_panels(rows, [("true posterior p(z|x)", "black", "solid"),
                                   ("encoder q(z|x)", "tab:red", "dashed")],
                            "KL(q || p) in each title, and below it that of the best diagonal Gaussian (the one "
                            "closest to p); true posterior vs the encoder's approximation",
                            held_by(study["train"]["summary"], study["test"]["summary"]),
                            row_labels=["training images", "test images"])


def top_half_titles(summary):
    """Panel titles of 6.2 from posterior_study's summary["top_half"]: std, modes, edge mass.

    Separate pieces of the highest-density region too small to count as modes are named
    with their mass, so a contour drawn apart is never left unexplained. Shares and edge masses are
    printed as the 6.2 caption prints them (pieces_share, at_most), so the two never disagree.
    """
    titles = []
    for std, modes, shares, edge in zip(summary["posterior_std"], summary["num_modes"], summary["mode_shares"],
                                        summary["edge_mass"]):
        minor = shares[modes:]
        share = pieces_share(minor, summary["mode_min_share"]) if minor else None
        pieces = ("" if not minor else f" (+ 1 piece of {share})" if len(minor) == 1 else
                  f" (+ {len(minor)} pieces of {share} together)")
        titles.append(f"std {std[0]:.2f}, {std[1]:.2f}; modes: {modes}{pieces}\n"
                      f"mass at the window's edge at most {at_most(edge)}")
    return titles


def fig_top_half_posterior(study):
    """p(z|x_top) (solid) beside p(z|x) of the whole image (dotted); study = posterior.posterior_study(...)."""
    top = study["top"]
    z_grids = top["windows"].z_grids
    log_post_top = normalized(top["windows"])
    titles = top_half_titles(study["summary"]["top_half"])
    panels = [(z_grids[n], [log_post_top[n], top["log_post_whole"][n]], top["x_top"][n], titles[n])
              for n in range(len(z_grids))]
    return posterior_panels([panels], [("p(z | top half)", "tab:blue", "solid"),
                                       ("p(z | whole image)", "gray", "dotted")],
                            "Posterior given only the top half of the digit",
                            held_by(study["summary"]["top_half"]))


def svi_titles(summary):
    """Panel titles of 6.3 from svi_study's summary: the quadrature KL, and log p - ELBO beside it."""
    return [f"KL(q || p) = {kl:.3f} nats\nlog p(x_top) - ELBO = {k:.3f} ± {se:.3f}"
            for kl, k, se in zip(summary["kl"], summary["kl_from_elbo"], summary["svi_elbo_se"])]


def fig_svi_posterior(x, svi):
    """The SVI q (dashed) on p(z|x_top) (solid); x (N, 784), svi = svi.svi_study(dec_params, x, ...)."""
    panels = gaussian_panels(top_half(x), svi["mu"], svi["log_std"], svi["windows"], svi_titles(svi["summary"]))
    return posterior_panels([panels], [("true p(z | top half)", "black", "solid"),
                                       ("SVI q(z)", "tab:orange", "dashed")],
                            "SVI fit to the posterior given the top half", held_by(svi["summary"]))


def tile_with_gaps(tiles, gap=TILE_GAP):
    """Images (R, C, 784) as one array (R * (28 + gap) - gap, C * (28 + gap) - gap), gap zeros apart."""
    rows, cols = tiles.shape[:2]
    padded = np.pad(np.reshape(tiles, (rows, cols, SIDE, SIDE)), ((0, 0), (0, 0), (0, gap), (0, gap)))
    return padded.swapaxes(1, 2).reshape(rows * (SIDE + gap), cols * (SIDE + gap))[:-gap, :-gap]


def fig_svi_prediction(x, predictions):
    """Completing the bottom halves: rows are images x (N, 784); predictions =
    svi.bottom_half_predictions(...).

    Columns: the original; the completions sigmoid(logits(z)) for single z ~ q; the
    posterior predictive mean of the bottom averaged over many z ~ q; the same averaged
    over the true p(z|x_top). Red line: observed above. The digits are one image
    (tile_with_gaps), each framed, under one Axes: an Axes per digit cost most of the
    figure's drawing time.
    """
    x_top = top_half(x)
    shown = predictions["shown"]
    columns = ([("original", x)] + [(f"z ~ q, #{s + 1}", shown[s]) for s in range(len(shown))]
               + [(f"mean over\n{predictions['num_average']} z ~ q", predictions["q_mean"]),
                  ("mean over\ntrue p(z|x_top)", predictions["true_mean"])])
    split = TOP_ROWS * SIDE
    tiles = np.stack([np.asarray(images) if c == 0 else np.concatenate([x_top, np.asarray(images)[:, split:]], axis=1)
                      for c, (_, images) in enumerate(columns)], axis=1)  # (N, C, 784)
    rows, cols = tiles.shape[:2]
    step = SIDE + TILE_GAP
    fig = Figure(figsize=(1.3 * cols, 1.3 * rows + 0.8), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(tile_with_gaps(tiles), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    # A frame round each digit, and the red line under the observed rows of each completion (x0 > 0:
    # every column but the original); corners (R * C, 2) are the digits' top left (x, y).
    corners = step * np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), axis=-1).reshape(-1, 2) - 0.5
    square = np.array([[0, 0], [SIDE, 0], [SIDE, SIDE], [0, SIDE], [0, 0]])
    ax.add_collection(LineCollection(corners[:, None] + square, colors="black", linewidths=0.8, clip_on=False),
                      autolim=False)
    ax.add_collection(LineCollection([[(x0, y0 + TOP_ROWS), (x0 + SIDE, y0 + TOP_ROWS)] for x0, y0 in corners
                                      if x0 > 0], colors="tab:red", linewidths=0.8), autolim=False)
    ax.set_xticks(step * np.arange(cols) + (SIDE - 1) / 2, [title for title, _ in columns])
    ax.set_yticks([])
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize=8, pad=6)
    ax.set_frame_on(False)
    fig.suptitle("Bottom halves predicted from the top half (above the red line: observed;\n"
                 "below: Bernoulli means sigmoid(logits))", fontsize=9)
    return fig
