"""The histograms of the gradient estimators (vae_autograd.figures.estimators)."""
import numpy as np

from tests.helpers import ESTIMATORS, LOO
from vae_autograd.figures.estimators import fig_gradient_histograms


def test_figure_shares_the_x_range_and_names_each_baseline_with_its_k(estimator_setting):
    focus = {name: values[:, 0, 0] for name, values in estimator_setting["estimates"].items()}
    exact = estimator_setting["exact"][0, 0]
    fig = fig_gradient_histograms(focus, exact)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == len(ESTIMATORS)
    assert len({ax.get_xlim() for ax in panels}) == 1
    for ax, name in zip(panels, ESTIMATORS):
        assert any(np.allclose(line.get_xdata(), exact) for line in ax.get_lines())
        if name in LOO:
            assert f"leave-one-out baseline within K = {name.rsplit('_', 1)[1]}:" in ax.get_title()
    # The shared range is the score function's, so the reparameterization one is a spike.
    low, high = panels[0].get_xlim()
    assert high - low > 20 * np.std(focus["reparameterization"])


def test_a_share_beyond_the_range_is_never_shown_as_0_0_percent():
    """One draw of 10,000 beyond the x-range is 0.01%, not '0.0%' (core.text.percent, as the report)."""
    rng = np.random.default_rng(0)
    first, second = ESTIMATORS[:2]
    other = rng.normal(0.0, 0.3, 10000)
    other[0] = 5.0  # beyond the widest one's 0.5-99.5 percentiles, about +-2.6
    fig = fig_gradient_histograms({first: rng.normal(0.0, 1.0, 10000), second: other}, 0.0)
    title = [ax.get_title() for ax in fig.axes if ax.get_title()][1]
    assert ", 0.01% beyond the x-range" in title, title
