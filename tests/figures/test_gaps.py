"""Part 8's figures (vae_autograd.figures.gaps) draw from a tiny study."""
from vae_autograd.figures.gaps import fig_gap_histograms, fig_gaps_over_training, fig_worst_amortization


def test_figures_draw(tiny_vae, gap_result):
    _, dec_params, x = tiny_vae
    p = gap_result["per_image"]
    assert len(fig_gap_histograms({"test": p, "train": p}).axes) == 4
    rows = [dict(gap_result["summary"], epoch=e, split=s) for e in (1, 10) for s in ("test", "train")]
    assert len(fig_gaps_over_training(rows).axes) == 2
    assert len(fig_worst_amortization(dec_params, x, p, num_shown=3, num_points=31).axes) >= 3
