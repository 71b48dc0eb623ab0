"""The posterior figures (vae_autograd.figures.posteriors): density levels, the true
against the approximate posterior, top halves, and SVI's fits and completions.
"""
import copy
import json

import numpy as np

from tests.helpers import REPO, brute_force
from vae_autograd.core.distributions import diag_gaussian_log_density
from vae_autograd.core.images import SIDE
from vae_autograd.core.text import window_holds
from vae_autograd.figures.posteriors import (
    TILE_GAP,
    fig_svi_posterior,
    fig_svi_prediction,
    fig_top_half_posterior,
    fig_true_vs_approx_posterior,
    hdr_log_levels,
    kl_titles,
    svi_titles,
    top_half_titles,
)
from vae_autograd.report.posteriors import describe_top_half
from vae_autograd.study.grids import latent_grid
from vae_autograd.study.posterior import OUTSIDE_RESOLUTION, top_half
from vae_autograd.study.svi import bottom_half_predictions


def test_hdr_levels_enclose_the_requested_masses():
    z_grid, _ = latent_grid(-6, 6, 0.02)
    log_density = diag_gaussian_log_density(z_grid, np.zeros(2), np.zeros(2))
    levels = hdr_log_levels(log_density, (0.5, 0.9, 0.99))
    # A standard 2-D Gaussian's region of mass m is the disc of radius sqrt(-2 log(1 - m)).
    expected = -np.log(2 * np.pi) + np.log(1 - np.array([0.5, 0.9, 0.99]))
    np.testing.assert_allclose(levels, np.sort(expected), atol=2e-3)


def test_true_vs_approx_figure_has_a_row_of_training_and_a_row_of_test_images(posterior_images, posterior_result):
    fig = fig_true_vs_approx_posterior(posterior_result)
    panels = [ax for ax in fig.axes if ax.get_title()]
    summary = posterior_result["summary"]["true_vs_approx"]
    assert [ax.get_title() for ax in panels] == kl_titles(summary["train"]) + kl_titles(summary["test"])
    assert panels[0].get_title().startswith(f"KL(q || p) = {summary['train']['kl'][0]:.3f} nats")
    # each panel's inset is its digit
    for ax, image in zip(panels, np.concatenate([posterior_images[:2], posterior_images[1:]])):
        np.testing.assert_array_equal(ax.child_axes[0].images[0].get_array().ravel(), image)


def test_top_half_figure_shows_the_top_half_and_its_wider_posterior(untrained_vae, posterior_images, posterior_result):
    dec_params = untrained_vae[1]
    fig = fig_top_half_posterior(posterior_result)
    panels = [ax for ax in fig.axes if ax.get_title()]
    summary = posterior_result["summary"]["top_half"]
    assert [ax.get_title() for ax in panels] == top_half_titles(summary)
    _, (_, whole_std) = brute_force(dec_params, posterior_images[1:])
    _, (_, half_std) = brute_force(dec_params, top_half(posterior_images[1:]))
    np.testing.assert_allclose(summary["posterior_std"], half_std, rtol=1e-3)
    assert np.all(half_std > whole_std)  # half the pixels: a wider posterior
    for ax, image in zip(panels, posterior_images[1:]):
        shown = ax.child_axes[0].images[0].get_array()
        np.testing.assert_array_equal(shown[:14].ravel(), image[:392])
        assert shown[14:].mask.all()  # the bottom is drawn as unobserved


def test_svi_figures_draw_the_studys_q_and_its_completions(svi_decoder, svi_images, svi_result):
    fig = fig_svi_posterior(svi_images, svi_result)
    panels = [ax for ax in fig.axes if ax.get_title()]
    # The titles state the summary's KL, the one the report's table reads.
    assert [ax.get_title() for ax in panels] == svi_titles(svi_result["summary"])
    assert panels[0].get_title().startswith(f"KL(q || p) = {svi_result['summary']['kl'][0]:.3f} nats")
    predictions = bottom_half_predictions(svi_decoder, svi_result, np.random.default_rng(0), num_shown=2,
                                          num_average=50)
    fig = fig_svi_prediction(svi_images, predictions)
    (ax,) = fig.axes  # the digits are one image, TILE_GAP white pixels apart, titled by column
    assert [label.get_text() for label in ax.get_xticklabels()][3] == "mean over\n50 z ~ q"
    image, step = ax.images[0].get_array(), SIDE + TILE_GAP
    assert image.shape == (2 * step - TILE_GAP, 5 * step - TILE_GAP)
    for n in range(2):
        shown = [image[n * step:n * step + SIDE, c * step:c * step + SIDE].ravel() for c in range(5)]
        np.testing.assert_array_equal(shown[0], svi_images[n])
        for completed in shown[1:]:  # every completion keeps the observed top half
            np.testing.assert_array_equal(completed[:392], svi_images[n, :392])
        for completed, predicted in zip(shown[1:], [*predictions["shown"][:, n], predictions["q_mean"][n],
                                                    predictions["true_mean"][n]]):
            np.testing.assert_array_equal(completed[392:], predicted[392:])
    gaps = np.ones(image.shape, bool)
    gaps[np.arange(image.shape[0]) % step < SIDE] &= np.arange(image.shape[1]) % step >= SIDE
    assert (image[gaps] == 0).all()  # between the digits: white


def test_the_title_says_most_of_the_posterior_when_a_window_cuts_some_off(posterior_result, svi_images, svi_result):
    """The suptitle of 6.1-6.3 says what the windows hold from the same shares as the 6.2 caption
    (core.text.window_holds): never 'the whole posterior' over a window that leaves 1e-3 of it out."""
    def suptitle(fig):
        return " ".join(fig.get_suptitle().split())  # as one line: textwrap breaks it anywhere

    for draw, result, summary in (
            (fig_true_vs_approx_posterior, posterior_result, lambda r: r["test"]["summary"]),
            (fig_top_half_posterior, posterior_result, lambda r: r["summary"]["top_half"]),
            (lambda r: fig_svi_posterior(svi_images, r), svi_result, lambda r: r["summary"])):
        assert "zoomed to hold the whole posterior;" in suptitle(draw(result))
        cut = copy.deepcopy(result)
        summary(cut)["mass_outside_window"][-1] = 2e-3
        assert "zoomed to hold most of the posterior;" in suptitle(draw(cut))


def test_window_holds_names_what_the_largest_share_left_out_allows():
    assert window_holds([0.0, 1e-3], [5e-4]) == "the whole posterior"
    assert window_holds([0.0, 1.1e-3], [0.0]) == "most of the posterior"
    assert window_holds([0.0], [0.49]) == "most of the posterior"
    assert window_holds([0.5], [0.0]) == "part of the posterior"


def test_top_half_titles_print_a_share_and_an_edge_mass_as_the_6_2_caption_does():
    """A minor piece of 0.66% and an edge mass of 1.4e-3 read '0.7%' and 'at most 0.0014' in a panel's title,
    as in the caption (table_percent, at_most): not '0.66%' beside '0.7%', nor '1e-03', a value at the
    threshold below which the suptitle would say 'the whole posterior'."""
    summary = json.loads((REPO / "figures" / "results.json").read_text())["posteriors"]["top_half"]
    summary["mode_shares"][0], summary["num_modes"][0], summary["edge_mass"][0] = [0.9834, 0.0066], 1, 1.4e-3
    title, caption = top_half_titles(summary)[0], describe_top_half(summary)
    assert "(+ 1 piece of 0.7%)" in title and "a separate piece holding 0.7% of the mass" in caption
    assert title.endswith("mass at the window's edge at most 0.0014")
    assert "at most 0.0014 of the mass of p(z | x_top)" in caption
    assert window_holds(summary["edge_mass"], summary["mass_outside_window"]) == "most of the posterior"


def test_the_top_half_title_counts_what_its_windows_leave_of_the_whole_images_posterior(posterior_result):
    """The 6.2 panels draw p(z|x) too, on the windows of p(z|x_top): the suptitle's words cover both."""
    assert np.all(np.array(posterior_result["summary"]["top_half"]["whole_image_outside_window"]) >= OUTSIDE_RESOLUTION)
    cut = copy.deepcopy(posterior_result)
    cut["summary"]["top_half"]["whole_image_outside_window"][-1] = 2e-3
    assert "zoomed to hold most of the posterior;" in " ".join(fig_top_half_posterior(cut).get_suptitle().split())
