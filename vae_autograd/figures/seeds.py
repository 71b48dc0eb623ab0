"""The seed sweeps' figure: each setting's per-seed values of a few numbers, their mean ± standard deviation,
and the published row where there is one."""
import numpy as np
from matplotlib.figure import Figure


def fig_seed_values(settings, panels):
    """One panel per number: for each setting (x position), a dot per seed and the mean ± sample standard
    deviation (ddof = 1) as a bar; a published (mean, sd) as a grey band across the panel.

    settings: names (S,); panels: [(title, ylabel, values, published)] with values a list of S arrays
    (n_seeds,) (NaN where a seed has no such number) and published None or (mean, sd).
    """
    columns = 3
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    positions = np.arange(len(settings))
    for ax, (title, ylabel, values, published) in zip(axes, panels):
        for x, seed_values in zip(positions, values):
            finite = seed_values[np.isfinite(seed_values)]
            if not len(finite):
                continue
            # The seeds side by side around their setting, in seed order, so that none hides another.
            offsets = np.linspace(-0.15, 0.15, len(finite)) if len(finite) > 1 else np.zeros(1)
            ax.plot(x + offsets, finite, "o", color="C0", ms=4, alpha=0.8)
            sd = finite.std(ddof=1) if len(finite) > 1 else 0.0
            ax.errorbar(x + 0.3, finite.mean(), yerr=sd, fmt="s", color="k", ms=4, capsize=3)
        if published is not None:
            mean, sd = published
            ax.axhspan(mean - sd, mean + sd, color="0.85", zorder=0)
            ax.axhline(mean, color="0.5", lw=1, zorder=0, label="Davidson et al. (2018)")
            ax.legend(loc="best", fontsize=7)
        ax.set_xticks(positions, settings, fontsize=8)
        ax.set_xlim(-0.6, len(settings) - 0.4)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return fig
