"""Part 8's figures: the two gaps per image, along training, and the worst-amortized posteriors."""
import textwrap

import numpy as np
from matplotlib.figure import Figure

from ..core.text import percent, window_holds
from ..study.inference_gaps import WRONG_BASIN_NATS, in_wrong_basin
from .marginal_likelihood import log_histogram
from .posteriors import contour_density, show_digit


def fig_gap_histograms(per_image_by_split):
    """Histograms of both gaps per image, one row per split: {split: per_image} -> Figure."""
    fig = Figure(figsize=(9, 3.2 * len(per_image_by_split)), layout="constrained")
    axes = fig.subplots(len(per_image_by_split), 2, squeeze=False)
    for (split, per_image), (approx_ax, amort_ax) in zip(per_image_by_split.items(), axes):
        approx = per_image["log_px"] - per_image["elbo_optimal"]
        amort = per_image["elbo_optimal"] - per_image["elbo_amortized"]
        wrong = in_wrong_basin(per_image)
        approx_ax.hist(approx, bins=60, histtype="stepfilled", color="C0")
        approx_ax.set(xlabel="approximation gap log p(x) - ELBO(q*) (nats)", ylabel=f"{split} images",
                      title=f"{split}, {len(approx):,} images: mean {approx.mean():.3f} nats")
        # Log-spaced bins on a log axis (the gaps span 0.01 to hundreds of nats), the wrong-basin
        # images drawn over all images (not stacked): in each bin, the red part is their share.
        floor = 0.01
        hidden = log_histogram(amort_ax, amort, floor, color="C1", label="all images")
        log_histogram(amort_ax, amort[wrong], floor, amort.max(), color="C3",
                      label=f"in a wrong basin ({percent(wrong.mean())})")
        amort_ax.set(xlabel="amortization gap ELBO(q*) - ELBO(q) (nats, log scale)", ylabel=f"{split} images",
                     title=f"{split}, {len(amort):,} images: mean {amort.mean():.2f} nats\n"
                           f"({hidden} at or below {floor:g} nats not shown)")
        amort_ax.legend(fontsize=8)
    return fig


def fig_gaps_over_training(rows, train_curve=None):
    """log p(x) and ELBO(q(z|x)) against epoch, and what each Gaussian leaves of log p(x).

    rows: list of summary dicts (gap_summary) with "epoch" and "split" added. Right: per
    image means of log p(x) - ELBO for q(z|x), q_refined and q* (the approximation gap),
    solid test, dashed train, with standard errors over images. train_curve (E,): the
    mean minibatch -ELBO of each training epoch, drawn on the left as the training curve.
    """
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    value_ax, gap_ax = fig.subplots(1, 2)
    if train_curve is not None:
        value_ax.plot(np.arange(1, len(train_curve) + 1), -np.asarray(train_curve), color="0.6", lw=1,
                      label="training curve: minibatch ELBO, 1 sample")
    # Test: solid lines, filled markers; train: dashed lines, open markers. The three Gaussians'
    # points are set slightly apart in epoch, so q refined is not hidden under q* where they agree.
    for split, style, fill in (("test", "-", None), ("train", "--", "none")):
        mine = sorted((r for r in rows if r["split"] == split), key=lambda r: r["epoch"])
        if not mine:
            continue
        epochs = np.array([r["epoch"] for r in mine], float)
        for color, key, se_key, label in ((0, "log_px", "log_px_se", "log p(x)"),
                                          (1, "elbo_amortized", "elbo_amortized_se", "ELBO(q(z|x))")):
            value_ax.errorbar(epochs, [r[key] for r in mine], [r[se_key] for r in mine], color=f"C{color}",
                              ls=style, marker="o", mfc=fill, ms=4, label=f"{label}, {split}")
        for color, key, se_key, label, marker, shift in (
                (1, "total_gap", "total_gap_se", "q(z|x)", "o", 1.0),
                (2, "gap_after_refinement", "gap_after_refinement_se", "q refined", "s", 1.08),
                (3, "approximation_gap", "approximation_gap_se", "q*", "^", 0.93)):
            gap_ax.errorbar(epochs * shift, [r[key] for r in mine], [r[se_key] for r in mine], color=f"C{color}",
                            ls=style, marker=marker, mfc=fill, ms=4, label=f"{label}, {split}")
    value_ax.set(xscale="log", xlabel="epoch (log scale)", ylabel="nats per image",
                 title="log p(x) and the encoder's ELBO")
    gap_ax.set(xscale="log", yscale="log", xlabel="epoch (log scale)",
               ylabel="log p(x) - ELBO, nats per image (log scale)", title="what each Gaussian leaves of log p(x)")
    value_ax.legend(fontsize=7)
    gap_ax.legend(fontsize=7, ncol=2)
    return fig


def fig_worst_amortization(x, per_image, worst):
    """True p(z|x) with q(z|x), q_refined and q* for the images with the largest amortization gaps.

    x (N, 784) and per_image from inference_gap_study; worst = inference_gaps.worst_amortized(...):
    the images shown, their Gaussians and their windows.
    """
    amort = per_image["elbo_optimal"] - per_image["elbo_amortized"]
    wrong = np.flatnonzero(in_wrong_basin(per_image))
    shown, means, stds, z_grids, log_joint = (worst[k] for k in ("images", "means", "stds", "z_grids", "log_joint"))
    styles = [("C1", "--"), ("C2", ":"), ("C3", "-.")]  # q(z|x), q refined, q*
    # The digit above its panel, not inset in it, where it could cover a contour.
    fig = Figure(figsize=(3.2 * len(shown), 4.6), layout="constrained")
    axes = fig.subplots(2, len(shown), squeeze=False, height_ratios=[1, 4])
    for digit_ax, ax, n, grid, values, k in zip(*axes, shown, z_grids, log_joint, range(len(shown))):
        contour_density(ax, grid, values, "k", "-")
        for (color, style), m, s in zip(styles, means[k], stds[k]):
            log_q = np.sum(-0.5 * ((grid - m) / s)**2 - np.log(s), axis=1)
            contour_density(ax, grid, log_q, color, style)
        ax.set(xlim=(grid[:, 0].min(), grid[:, 0].max()), ylim=(grid[:, 1].min(), grid[:, 1].max()), aspect="equal")
        ax.set_xlabel("$z_1$", fontsize=8)
        ax.set_ylabel("$z_2$", fontsize=8)
        ax.tick_params(labelsize=7)
        show_digit(digit_ax, x[n])
        below = per_image["elbo_optimal"][n] - per_image["elbo_refined"][n]
        digit_ax.set_title(f"image {n}: amortization gap {amort[n]:.1f}\napprox. gap "
                           f"{per_image['log_px'][n] - per_image['elbo_optimal'][n]:.2f}, refinement gains "
                           f"{per_image['elbo_refined'][n] - per_image['elbo_amortized'][n]:.1f}\n"
                           + (f"wrong basin ({below:.1f} below q*)" if n in wrong else
                              f"refinement ends within {WRONG_BASIN_NATS:g} nats of q*"),
                           fontsize=8)
    text = ("true p(z|x) (black) with q(z|x) (orange dashed), q refined (green dotted), q* (red dash-dot); "
            "contours hold 50 / 90 / 99% of each density on its panel; each panel holds the three Gaussians to 4 "
            f"standard deviations, and {window_holds(worst['mass_outside'])} p(z|x)")
    fig.suptitle(textwrap.fill(text, width=int(14 * fig.get_figwidth())), fontsize=9)
    return fig
