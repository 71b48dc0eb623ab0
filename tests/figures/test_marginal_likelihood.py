"""The figure of log p(x) against the ELBO (vae_autograd.figures.marginal_likelihood)."""
import numpy as np

from vae_autograd.figures.marginal_likelihood import fig_log_px_vs_elbo
from vae_autograd.study.marginal_likelihood import gap_statistics


def title_of(log_px, elbo, se, elbo_samples=20):
    """The figure's title for part 3's statistics of these per-image numbers, as run_all passes them."""
    stats = {**gap_statistics(log_px, elbo, se, elbo_samples), "elbo_samples": elbo_samples}
    return fig_log_px_vs_elbo(log_px, elbo, stats).axes[0].get_title()


def test_figure_title_follows_the_numbers():
    rng = np.random.default_rng(0)
    log_px = rng.normal(-140.0, 5.0, size=1000)
    se = np.full(1000, 0.1)
    elbo = log_px - np.abs(rng.normal(0.0, 1.0, size=1000))
    elbo[:10] = log_px[:10] + 0.1  # ten images one standard error above the line
    assert title_of(log_px, elbo, se) == "1% of images above the line, all within Monte Carlo error"
    elbo[0] = log_px[0] + 2.0  # twenty standard errors
    assert "-20.0 SE: beyond Monte Carlo error" in title_of(log_px, elbo, se)
    assert title_of(log_px, log_px - 1.0, se) == "no image above the line"
    elbo[:50] = log_px[:50] + 0.1
    assert title_of(log_px, elbo, se).startswith("5% of images above the line")
