"""True posteriors on windows and half images (vae_autograd.posterior), their figures
(vae_autograd.posterior_figures).

The maths runs on a tiny untrained 784 -> 8 -> 2 decoder in float64 (784 pixels, since
a top half is the top 14 of 28 rows): its posteriors are a few tenths wide, so windows
and brute-force grids both resolve them, and every test takes well under a second.
"""
import itertools

import numpy as np
import pytest
import scipy.special

from vae_autograd.distributions import bernoulli_log_density, diag_gaussian_log_density
from vae_autograd.elbo import joint_log_density
from vae_autograd.integrate import latent_grid, log_integrate_grid
from vae_autograd.model import decoder, encoder, init_vae_params
from vae_autograd.posterior import (
    grid_moments,
    log_joint_on_grid,
    log_joint_on_windows,
    log_likelihood_top,
    posterior_windows,
    quadrature_kl,
    top_half,
)
from vae_autograd.posterior_figures import (
    fig_top_half_posterior,
    fig_true_vs_approx_posterior,
    hdr_log_levels,
)


@pytest.fixture(scope="module")
def tiny():
    """(enc_params, dec_params): an untrained 784 -> 8 -> 2 VAE in float64."""
    return init_vae_params(np.random.default_rng(0), 784, 8, 2, scale=0.3, dtype=np.float64)


@pytest.fixture(scope="module")
def images():
    """Three random binary images (3, 784)."""
    return (np.random.default_rng(1).random((3, 784)) < 0.3).astype(np.float64)


def brute_force(dec_params, x, low=-5.0, high=5.0, spacing=0.1):
    """log p(x) (N,) and the posterior's mean and std (N, 2) on one global grid.

    For posteriors at least 0.15 wide (checked below), a midpoint rule of spacing h errs by
    about exp(-2 pi^2 std^2 / h^2) < 1e-19: this grid is exact to rounding.
    """
    z_grid, axis = latent_grid(low, high, spacing)
    log_joint = log_joint_on_grid(dec_params, x, z_grid)
    return log_integrate_grid(log_joint, spacing, len(axis)), grid_moments(z_grid, log_joint)


# ---------------------------------------------------------------- half images

def test_top_half_is_the_top_14_rows(images):
    expected = images.reshape(3, 28, 28)[:, :14, :].reshape(3, 392)
    np.testing.assert_array_equal(top_half(images), expected)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 783)), r"\(N, 784\), got shape \(2, 783\)"),
    (np.zeros((2, 28, 28)), r"\(N, 784\), got shape \(2, 28, 28\)"),
    (np.zeros((2, 392)), r"\(N, 784\), got shape \(2, 392\)"),
    (np.zeros(784), r"pass x\[None\]"),
])
def test_top_half_rejects_anything_but_a_batch_of_whole_images(bad, message):
    with pytest.raises(ValueError, match=message):
        top_half(bad)


def test_log_likelihood_top_is_bernoulli_density_of_the_first_392_pixels(tiny, images):
    dec_params = tiny[1]
    z = np.random.default_rng(1).standard_normal((5, 3, 2))
    expected = bernoulli_log_density(images[:, :392], decoder(dec_params, z)[..., :392])
    np.testing.assert_allclose(log_likelihood_top(dec_params, top_half(images), z), expected, rtol=1e-13)
    with pytest.raises(ValueError, match=r"x_top must be a batch of flat images \(N, 392\)"):
        log_likelihood_top(dec_params, images, z)


def test_log_likelihood_top_equals_the_bottom_summed_out_by_enumeration():
    # A 6-pixel model: the top half is 3 pixels, and all 2^3 bottoms can be listed.
    _, dec_params = init_vae_params(np.random.default_rng(2), data_dim=6, hidden_dim=7, scale=1.0,
                                    dtype=np.float64)
    z = np.random.default_rng(3).standard_normal((4, 1, 2))
    bottoms = np.array(list(itertools.product([0.0, 1.0], repeat=3)))  # (8, 3)
    logits = decoder(dec_params, z)  # (4, 1, 6)
    for x_top in itertools.product([0.0, 1.0], repeat=3):
        x_top = np.array([x_top])  # a batch of one (1, 3)
        full = np.concatenate([np.broadcast_to(x_top, (8, 3)), bottoms], axis=1)  # (8, 6)
        log_full = bernoulli_log_density(full[:, None, None, :], logits)  # (8, 4, 1)
        np.testing.assert_allclose(log_likelihood_top(dec_params, x_top, z),
                                   scipy.special.logsumexp(log_full, axis=0), rtol=1e-12)


# ---------------------------------------------------------------- quadrature

@pytest.mark.parametrize("half", [False, True])
def test_log_joint_on_grid_and_windows_match_joint_log_density_point_by_point(tiny, images, half):
    dec_params = tiny[1]
    z_grid, _ = latent_grid(-2, 2, 0.5)
    x = top_half(images) if half else images
    logits = decoder(dec_params, z_grid)[None, :, :x.shape[1]]
    expected = bernoulli_log_density(x[:, None, :], logits) + joint_log_density(
        dec_params, np.zeros((1, 784)), z_grid)[None] - joint_log_density(
        dec_params, np.zeros((1, 784)), z_grid)[None] + (-0.5 * np.sum(z_grid**2, 1) - np.log(2 * np.pi))
    if not half:
        np.testing.assert_allclose(expected, joint_log_density(dec_params, images[:, None, :], z_grid[None]),
                                   rtol=1e-12)
    np.testing.assert_allclose(log_joint_on_grid(dec_params, x, z_grid), expected, rtol=1e-12)
    windows = np.broadcast_to(z_grid, (3,) + z_grid.shape)
    np.testing.assert_allclose(log_joint_on_windows(dec_params, x, windows), expected, rtol=1e-12)


@pytest.mark.parametrize("half", [False, True])
def test_windows_give_the_log_marginal_and_mean_of_a_fine_global_grid(tiny, images, half):
    # The windows' quadrature must not depend on their size or resolution, and must
    # match brute force on a global grid.
    dec_params = tiny[1]
    x = top_half(images) if half else images
    log_px, (mean, std) = brute_force(dec_params, x)
    assert np.all(std > 0.15) and np.all(np.abs(mean) + 6 * std < 5.0)  # resolved by both grids
    for num_points, num_stds in ((41, 5.0), (81, 7.0)):
        z_grids, dz, log_joint = posterior_windows(dec_params, x, num_points=num_points, num_stds=num_stds)
        assert z_grids.shape == (3, num_points**2, 2) and dz.shape == (3,)
        np.testing.assert_allclose(log_integrate_grid(log_joint, dz, num_points), log_px, atol=1e-6)
        window_mean, window_std = grid_moments(z_grids, log_joint)
        # The windows leave out the tails beyond num_stds: ~1e-4 of the moments at 5 stds.
        np.testing.assert_allclose(window_mean, mean, atol=1e-4 * std.max())
        np.testing.assert_allclose(window_std, std, rtol=3e-4)


def test_windows_cover_the_extra_gaussian(tiny, images):
    far = np.full((3, 2), 2.5)
    z_grids, _, _ = posterior_windows(tiny[1], images, far, np.full((3, 2), 0.1), num_points=21)
    assert np.all(z_grids.max(axis=1) >= 2.5 + 5 * 0.1 - 1e-12)


def test_quadrature_kl_of_two_gaussians_matches_the_closed_form():
    z_grid, axis = latent_grid(-6, 6, 0.02)
    mean_q, log_std_q, mean_p, log_std_p = np.array([0.3, -0.2]), np.log([0.5, 0.8]), np.zeros(2), np.zeros(2)
    log_q = diag_gaussian_log_density(z_grid, mean_q, log_std_q)[None]
    log_p = diag_gaussian_log_density(z_grid, mean_p, log_std_p)[None]
    var_q = np.exp(2 * log_std_q)
    closed_form = np.sum(log_std_p - log_std_q + (var_q + (mean_q - mean_p) ** 2) / 2 - 0.5)
    np.testing.assert_allclose(quadrature_kl(log_q, log_p, 0.02), closed_form, rtol=1e-8)


# ---------------------------------------------------------------- figures

def test_hdr_levels_enclose_the_requested_masses():
    z_grid, _ = latent_grid(-6, 6, 0.02)
    log_density = diag_gaussian_log_density(z_grid, np.zeros(2), np.zeros(2))
    levels = hdr_log_levels(log_density, (0.5, 0.9, 0.99))
    # A standard 2-D Gaussian's region of mass m is the disc of radius sqrt(-2 log(1 - m)).
    expected = -np.log(2 * np.pi) + np.log(1 - np.array([0.5, 0.9, 0.99]))
    np.testing.assert_allclose(levels, np.sort(expected), atol=2e-3)


def test_true_vs_approx_figure_titles_are_the_kl_on_each_window(tiny, images):
    enc_params, dec_params = tiny
    fig = fig_true_vs_approx_posterior(enc_params, dec_params, images, num_points=41)
    mean, log_std = encoder(enc_params, images)
    z_grids, dz, log_joint = posterior_windows(dec_params, images, mean, np.exp(log_std), 41, num_stds=4.0)
    log_post = log_joint - log_integrate_grid(log_joint, dz, 41)[:, None]
    kl = quadrature_kl(diag_gaussian_log_density(z_grids, mean[:, None], log_std[:, None]), log_post, dz)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"KL(q || p) = {k:.3f} nats" for k in kl]
    for ax, image in zip(panels, images):  # each panel's inset is its digit
        np.testing.assert_array_equal(ax.child_axes[0].images[0].get_array().ravel(), image)


def test_top_half_figure_shows_the_top_half_and_its_wider_posterior(tiny, images):
    dec_params = tiny[1]
    fig = fig_top_half_posterior(dec_params, images, num_points=41)
    panels = [ax for ax in fig.axes if ax.get_title()]
    top_stds = np.array([[float(v) for v in ax.get_title().split(": ")[1].split(", ")] for ax in panels])
    _, (_, whole_std) = brute_force(dec_params, images)
    _, (_, half_std) = brute_force(dec_params, top_half(images))
    np.testing.assert_allclose(top_stds, half_std, atol=0.006)  # titles round to 0.01
    assert np.all(half_std > whole_std)  # half the pixels: a wider posterior
    for ax, image in zip(panels, images):
        shown = ax.child_axes[0].images[0].get_array()
        np.testing.assert_array_equal(shown[:14].ravel(), image[:392])
        assert shown[14:].mask.all()  # the bottom is drawn as unobserved
