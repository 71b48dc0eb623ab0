"""Part 3's figure: the ELBO of every image against its exact log p(x)."""
import numpy as np
from matplotlib.figure import Figure

from ..core.text import percent


def fig_log_px_vs_elbo(log_px, elbo_per_image, stats):
    """Scatter of per-image ELBO (N,) against log p(x) (N,), with the line ELBO = log p(x).

    stats: part 3's summary of the same images (study.marginal_likelihood.gap_statistics'
    keys and elbo_samples) gives the title: how many images lie above the line and
    whether Monte Carlo error explains it.
    """
    elbo_samples = stats["elbo_samples"]
    if stats["num_above"] == 0:
        title = "no image above the line"
    elif stats["consistent_with_mc_error"]:
        title = f"{percent(stats['fraction_above'])} of images above the line, all within Monte Carlo error"
    else:
        title = (f"{percent(stats['fraction_above'])} of images above the line, the lowest "
                 f"{stats['min_gap_in_se']:.1f} SE: beyond Monte Carlo error")
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    scatter_ax, hist_ax = fig.subplots(1, 2)
    scatter_ax.scatter(log_px, elbo_per_image, s=2, alpha=0.3)
    lo, hi = np.min(log_px), np.max(log_px)
    scatter_ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="ELBO = log p(x)")
    scatter_ax.set(xlabel="log p(x) by quadrature (nats)", ylabel=f"ELBO, {elbo_samples} samples (nats)")
    scatter_ax.set_title(title, fontsize=9)
    scatter_ax.legend(loc="upper left")
    gap = np.asarray(log_px) - np.asarray(elbo_per_image)
    floor = 0.01  # Monte Carlo error can make a gap negative
    hidden = log_histogram(hist_ax, gap, floor, color="C0")
    hist_ax.axvline(np.mean(gap), color="k", ls="--", lw=1, label=f"mean {np.mean(gap):.2f} nats")
    hist_ax.set(xlabel="log p(x) - ELBO per image (nats, log scale)", ylabel="images",
                title=f"the gap per image; {hidden} at or below {floor:g} not shown")
    hist_ax.legend()
    return fig


def log_histogram(ax, values, floor, top=None, **style):
    """Histogram of values (N,) above floor, in 60 log-spaced bins from floor to top (values.max()
    if None) on a log x axis: for values that span orders of magnitude. Returns how many are at
    or below floor (not drawn; say so)."""
    above = values[values > floor]
    top = above.max(initial=floor) if top is None else top
    if len(above):  # one filled outline, not a bar per bin: the same pixels for a fraction of the drawing
        ax.hist(above, bins=np.geomspace(floor, max(top, 1.01 * floor), 61), histtype="stepfilled", **style)
    ax.set_xscale("log")
    return int(np.sum(values <= floor))
