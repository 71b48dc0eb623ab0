"""Part 8's figures (vae_autograd.figures.gaps) draw from a tiny study."""
import numpy as np

from vae_autograd.figures.gaps import fig_gap_histograms, fig_gaps_over_training, fig_worst_amortization
from vae_autograd.study.inference_gaps import worst_amortized


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
