"""Part 8's figures (vae_autograd.figures.gaps) draw from a tiny study."""
import numpy as np

from vae_autograd.core.text import window_holds
from vae_autograd.figures.gaps import fig_gap_histograms, fig_gaps_over_training, fig_worst_amortization
from vae_autograd.study.inference_gaps import worst_amortized
from vae_autograd.study.posterior import OUTSIDE_RESOLUTION


def test_figures_draw(tiny_vae, gap_result):
    _, dec_params, x = tiny_vae
    p = gap_result["per_image"]
    assert len(fig_gap_histograms({"test": p, "train": p}).axes) == 4
    rows = [dict(gap_result["summary"], epoch=e, split=s) for e in (1, 10) for s in ("test", "train")]
    assert len(fig_gaps_over_training(rows).axes) == 2
    worst = worst_amortized(dec_params, x, p, num_shown=3, num_points=31)
    fig = fig_worst_amortization(x, p, worst)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in panels] == [f"image {n}" for n in worst["images"]]


def test_a_wrong_basin_share_is_never_shown_as_0_0_percent():
    """One image of 3,000 in a wrong basin is 0.033% in the legend, not '0.0%' (core.text.percent)."""
    rng = np.random.default_rng(0)
    optimal = rng.normal(-100.0, 5.0, 3000)
    refined = optimal.copy()
    refined[0] -= 1.0  # the one wrong basin
    per_image = {"log_px": optimal + 0.1, "elbo_optimal": optimal, "elbo_refined": refined,
                 "elbo_amortized": refined - rng.exponential(1.0, 3000)}
    fig = fig_gap_histograms({"test": per_image})
    labels = [text.get_text() for ax in fig.axes if ax.get_legend() for text in ax.get_legend().get_texts()]
    assert "in a wrong basin (0.033%)" in labels, labels


def test_the_largest_gaps_figure_says_what_its_panels_hold_of_the_posterior(tiny_vae, gap_result):
    """Its windows are built around the three Gaussians, not the posterior: the share of p(z|x) they leave
    out (against log p(x)) decides the suptitle's words, and a refinement that reaches q* is said to end
    within the wrong-basin threshold of it."""
    _, dec_params, x = tiny_vae
    worst = worst_amortized(dec_params, x, gap_result["per_image"], num_shown=3, num_points=31)
    assert np.all(worst["mass_outside"] >= OUTSIDE_RESOLUTION) and np.all(worst["mass_outside"] < 1)

    def text(worst):
        fig = fig_worst_amortization(x, gap_result["per_image"], worst)
        return " ".join(fig.get_suptitle().split()), " ".join(ax.get_title() for ax in fig.axes)

    assert f"and {window_holds(worst['mass_outside'])} p(z|x)" in text(worst)[0]
    assert "refinement reaches q*" not in text(worst)[1]
    cut = dict(worst, mass_outside=np.full(3, 2e-3))
    assert "standard deviations, and most of the posterior p(z|x)" in text(cut)[0]
