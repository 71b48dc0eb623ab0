"""Part 8's figures (vae_autograd.figures.gaps) draw from a tiny study."""
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
