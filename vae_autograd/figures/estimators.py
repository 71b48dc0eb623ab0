"""Part 7's figure: histograms of single-draw gradient estimates against the exact gradient."""
import numpy as np
from matplotlib.figure import Figure

from ..core.text import percent
from ..study.estimators import estimator_label


def fig_gradient_histograms(focus_estimates, exact):
    """Histograms of single-draw estimates of one gradient component, one panel per estimator.

    focus_estimates: dict name -> (S,) per-draw terms, as in gradient_estimator_study (for
    a baseline estimator, each draw's (w - b) * score, itself unbiased; its title names
    the K of its groups); exact:
    the true value, drawn as a red vertical line. All panels share the x-range and the
    bins, from the 0.5-99.5 percentiles of the widest estimator, so the widths compare
    at a glance. At that scale a narrow estimator is a single spike, so an inset redraws
    every narrow one over a common range of its own (the 0.5-99.5 percentiles of the
    widest narrow one).
    """
    names = list(focus_estimates)
    stds = {name: np.std(focus_estimates[name], ddof=1) for name in names}
    widest = max(names, key=stds.get)
    low, high = np.percentile(focus_estimates[widest], [0.5, 99.5])
    low, high = min(low, exact), max(high, exact)
    narrow = [name for name in names if stds[name] < 0.05 * (high - low)]
    if narrow:
        zoom = np.percentile(focus_estimates[max(narrow, key=stds.get)], [0.5, 99.5])
        zoom = (min(zoom[0], exact), max(zoom[1], exact))
    fig = Figure(figsize=(7, 2.2 * len(names) + 0.5), layout="constrained")
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        values = focus_estimates[name]  # one filled outline per histogram, not a bar per bin: the same pixels
        ax.hist(values, bins=np.linspace(low, high, 101), histtype="stepfilled", color="C0")
        ax.axvline(exact, color="C3", lw=1.2, label=f"exact {exact:.3g}")
        ax.set_ylabel("count")
        outside = np.mean((values < low) | (values > high))
        ax.set_title(f"{estimator_label(name)}: mean {np.mean(values):.3g}, std {stds[name]:.3g}"
                     + (f", {percent(outside)} beyond the x-range" if outside > 0 else "")
                     + (" (a spike at this scale: inset)" if name in narrow else ""),
                     fontsize=8, pad=8)
        if name in narrow:
            # Inside its panel, with its labels: the layout, which measures every text, can skip it.
            inset = ax.inset_axes([0.6, 0.25, 0.32, 0.55], in_layout=False)
            inset.hist(values, bins=np.linspace(*zoom, 61), histtype="stepfilled", color="C2")
            inset.axvline(exact, color="C3", lw=1.2)
            inset.set_xlim(*zoom)
            inset.tick_params(labelsize=6)
            beyond = np.mean((values < zoom[0]) | (values > zoom[1]))
            inset.set_title(f"zoom: {percent(beyond)} beyond its range", fontsize=6)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[-1].set_xlim(low, high)
    axes[-1].set_xlabel(f"single-draw estimate of d ELBO / d mean_1, image 0 "
                        f"({len(focus_estimates[names[0]])} draws each)")
    return fig
