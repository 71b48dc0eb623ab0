"""The figure of log p(x) against the ELBO (vae_autograd.figures.marginal_likelihood)."""


import numpy as np

from vae_autograd.figures.marginal_likelihood import fig_log_px_vs_elbo


def test_figure_title_follows_the_numbers():
    rng = np.random.default_rng(0)
    log_px = rng.normal(-140.0, 5.0, size=1000)
    se = np.full(1000, 0.1)
    elbo = log_px - np.abs(rng.normal(0.0, 1.0, size=1000))
    elbo[:10] = log_px[:10] + 0.1  # ten images one standard error above the line
    title = fig_log_px_vs_elbo(log_px, elbo, se, 20).axes[0].get_title()
    assert title == "1% of images above the line, all within Monte Carlo error"
    elbo[0] = log_px[0] + 2.0  # twenty standard errors
    title = fig_log_px_vs_elbo(log_px, elbo, se, 20).axes[0].get_title()
    assert "-20.0 SE: beyond Monte Carlo error" in title
    assert fig_log_px_vs_elbo(log_px, log_px - 1.0, se, 20).axes[0].get_title() == "no image above the line"
