"""True posteriors on windows and half images (vae_autograd.study.posterior).

The maths runs on conftest's untrained 784 -> 8 -> 2 decoder in float64 (784 pixels, since
a top half is the top 14 of 28 rows): its posteriors are a few tenths wide, so windows
and brute-force grids both resolve them, and every test takes well under a second.
"""
import itertools
import json

import numpy as np
import pytest
import scipy.special

from tests.helpers import brute_force
from vae_autograd.core.distributions import bernoulli_log_density, diag_gaussian_log_density
from vae_autograd.core.elbo import joint_log_density
from vae_autograd.core.model import decoder, encoder, init_vae_params
from vae_autograd.study.estimators import quadrature_elbo
from vae_autograd.study.grids import edge_mass, grid_moments, latent_grid, log_integrate_grid
from vae_autograd.study.posterior import (
    OUTSIDE_RESOLUTION,
    bottom_pixel_dependence,
    count_modes,
    log_joint_on_grid,
    log_joint_on_windows,
    log_likelihood_top,
    posterior_windows,
    top_half,
    whole_posterior_windows,
)


def test_top_half_is_the_top_14_rows(posterior_images):
    expected = posterior_images.reshape(3, 28, 28)[:, :14, :].reshape(3, 392)
    np.testing.assert_array_equal(top_half(posterior_images), expected)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 783)), r"\(N, 784\), got shape \(2, 783\)"),
    (np.zeros((2, 28, 28)), r"\(N, 784\), got shape \(2, 28, 28\)"),
    (np.zeros((2, 392)), r"\(N, 784\), got shape \(2, 392\)"),
    (np.zeros(784), r"pass x\[None\]"),
])
def test_top_half_rejects_anything_but_a_batch_of_whole_images(bad, message):
    with pytest.raises(ValueError, match=message):
        top_half(bad)


def test_log_likelihood_top_is_bernoulli_density_of_the_first_392_pixels(untrained_vae, posterior_images):
    dec_params = untrained_vae[1]
    z = np.random.default_rng(1).standard_normal((5, 3, 2))
    expected = bernoulli_log_density(posterior_images[:, :392], decoder(dec_params, z)[..., :392])
    np.testing.assert_allclose(log_likelihood_top(dec_params, top_half(posterior_images), z), expected, rtol=1e-13)
    with pytest.raises(ValueError, match=r"x_top must be a batch of flat images \(N, 392\)"):
        log_likelihood_top(dec_params, posterior_images, z)


def test_log_likelihood_top_equals_the_bottom_summed_out_by_enumeration():
    # A 6-pixel model: the top half is 3 pixels, and all 2^3 bottoms can be listed.
    _, dec_params = init_vae_params(np.random.default_rng(2), data_dim=6, hidden=7, scale=1.0,
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


@pytest.mark.parametrize("half", [False, True])
def test_log_joint_on_grid_and_windows_match_joint_log_density_point_by_point(untrained_vae, posterior_images, half):
    dec_params = untrained_vae[1]
    z_grid, _ = latent_grid(-2, 2, 0.5)
    x = top_half(posterior_images) if half else posterior_images
    logits = decoder(dec_params, z_grid)[None, :, :x.shape[1]]
    expected = bernoulli_log_density(x[:, None, :], logits) + joint_log_density(
        dec_params, np.zeros((1, 784)), z_grid)[None] - joint_log_density(
        dec_params, np.zeros((1, 784)), z_grid)[None] + (-0.5 * np.sum(z_grid**2, 1) - np.log(2 * np.pi))
    if not half:
        np.testing.assert_allclose(expected, joint_log_density(dec_params, posterior_images[:, None, :], z_grid[None]),
                                   rtol=1e-12)
    np.testing.assert_allclose(log_joint_on_grid(dec_params, x, z_grid), expected, rtol=1e-12)
    windows = np.broadcast_to(z_grid, (3,) + z_grid.shape)
    np.testing.assert_allclose(log_joint_on_windows(dec_params, x, windows), expected, rtol=1e-12)


@pytest.mark.parametrize("half", [False, True])
def test_windows_give_the_log_marginal_and_mean_of_a_fine_global_grid(untrained_vae, posterior_images, half):
    # The windows' quadrature must not depend on their size or resolution, and must
    # match brute force on a global grid.
    dec_params = untrained_vae[1]
    x = top_half(posterior_images) if half else posterior_images
    log_px, (mean, std) = brute_force(dec_params, x)
    assert np.all(std > 0.15) and np.all(np.abs(mean) + 6 * std < 5.0)  # resolved by both grids
    for num_points, num_stds in ((41, 5.0), (81, 7.0)):
        windows = posterior_windows(dec_params, x, num_points=num_points, num_stds=num_stds)
        z_grids, dz, log_joint = windows.z_grids, windows.dz, windows.log_joint
        assert z_grids.shape == (3, num_points**2, 2) and dz.shape == (3,)
        np.testing.assert_allclose(log_integrate_grid(log_joint, dz, num_points), log_px, atol=1e-6)
        window_mean, window_std = grid_moments(z_grids, log_joint)
        # The windows leave out the tails beyond num_stds: ~1e-4 of the moments at 5 stds.
        np.testing.assert_allclose(window_mean, mean, atol=1e-4 * std.max())
        np.testing.assert_allclose(window_std, std, rtol=3e-4)


def test_windows_cover_the_extra_gaussian(untrained_vae, posterior_images):
    far = np.full((3, 2), 2.5)
    z_grids = posterior_windows(untrained_vae[1], posterior_images, far, np.full((3, 2), 0.1), num_points=21).z_grids
    assert np.all(z_grids.max(axis=1) >= 2.5 + 5 * 0.1 - 1e-12)


def test_posterior_study_kls_are_quadrature_kls_on_windows_holding_the_posterior(untrained_vae, posterior_images,
                                                                                 posterior_result):
    enc_params, dec_params = untrained_vae
    summary = posterior_result["summary"]
    assert json.loads(json.dumps(summary)) == summary
    for name, x in (("train", posterior_images[:2]), ("test", posterior_images[1:])):
        part, numbers = posterior_result[name], summary["true_vs_approx"][name]
        mean, log_std = encoder(enc_params, x)
        np.testing.assert_array_equal(part["q_mean"], mean)
        dz, log_joint = part["windows"].dz, part["windows"].log_joint
        log_px, _ = brute_force(dec_params, x)
        np.testing.assert_allclose(log_integrate_grid(log_joint, dz, 41), log_px, atol=1e-6)
        # KL(q || p) = log p(x) - ELBO(q), against a fine quadrature of the ELBO in eps space
        # (the window holds the posterior, but q(z|x) of this untrained encoder is wider; spacing
        # 0.05 agrees to 1e-10); the lattice decodes in float32, ~1e-5 nats here.
        fine_elbo = quadrature_elbo(dec_params, x, np.asarray(mean), np.asarray(log_std), halfwidth=7.0,
                                    spacing=0.1)
        np.testing.assert_allclose(numbers["kl"], log_px - fine_elbo, atol=1e-4)
        assert np.all(np.array(numbers["best_gaussian_kl"]) <= np.array(numbers["kl"]) + 1e-9)
        assert np.all(np.array(numbers["best_gaussian_kl"]) >= -1e-4)
        np.testing.assert_allclose(numbers["amortization_gap"],
                                   np.array(numbers["kl"]) - numbers["best_gaussian_kl"], atol=1e-12)
        assert max(numbers["edge_mass"]) < 1e-4 and max(numbers["mass_outside_window"]) < 1e-3
    # An untrained decoder's posteriors given 392 pixels are single bumps.
    assert summary["top_half"]["num_modes"] == [1, 1]
    assert len(summary["bottom_dependence"]) == 2


def gaussian_mixture(z_grid, weights, means, std):
    """log of a mixture of isotropic Gaussians of one std at the points z_grid (G, 2) -> (G,)."""
    parts = [np.log(w) + diag_gaussian_log_density(z_grid, np.array(m, float), np.log([std, std]))
             for w, m in zip(weights, means)]
    return scipy.special.logsumexp(parts, axis=0)


@pytest.mark.parametrize("weights, means, std, expected", [
    ((1.0,), [(0, 0)], 0.5, 1),
    ((0.5, 0.5), [(-1.5, 0), (1.5, 0)], 0.4, 2),
    ((0.3, 0.4, 0.3), [(-1.5, -1.5), (1.5, 0), (-1.5, 1.5)], 0.3, 3),
    ((0.5, 0.5), [(-0.4, 0), (0.4, 0)], 0.5, 1),  # less than 2 stds apart: one bump
    ((0.993, 0.007), [(-1.5, 0), (1.5, 0)], 0.4, 1),  # a second bump below min_share
])
def test_count_modes_of_synthetic_mixtures(weights, means, std, expected):
    z_grid, axis = latent_grid(-3, 3, 0.05)
    modes = count_modes(gaussian_mixture(z_grid, weights, means, std), len(axis), mass=0.99, min_share=0.01)
    assert modes["num_modes"] == expected
    assert len(modes["peaks"]) == expected
    assert abs(sum(modes["shares"]) - 0.99) < 0.01
    if expected == 2:
        np.testing.assert_allclose(modes["shares"], [0.495, 0.495], atol=0.01)
        np.testing.assert_allclose(sorted(z_grid[modes["peaks"], 0]), [-1.5, 1.5], atol=0.05)
    if weights == (0.993, 0.007):  # the small bump is a separate piece, reported but not counted
        assert len(modes["shares"]) == 2 and 0.001 < modes["shares"][1] < 0.01


def two_mode_decoder(num_pixels=20):
    """A decoder (2 -> 2 -> num_pixels, float64) whose pixels are all on only where |z1| > 1.5.

    Its logits 4 (tanh(2 z1 - 3) + tanh(-2 z1 - 3)) + 4 are even in z1, so an all-on
    image has a posterior with two mirror modes at |z1| > 1.5.
    """
    w1, b1 = np.array([[2.0, -2.0], [0.0, 0.0]]), np.array([-3.0, -3.0])
    w2, b2 = np.full((2, num_pixels), 4.0), np.full(num_pixels, 4.0)
    return [(w1, b1), (w2, b2)]


def test_whole_posterior_windows_widen_to_hold_two_modes():
    dec_params = two_mode_decoder()
    x = np.ones((1, 20))
    log_px, _ = brute_force(dec_params, x, spacing=0.02)
    # Windows of +-1 std cut the posterior; widened ones hold it all.
    cut = posterior_windows(dec_params, x, num_points=61, num_stds=1.0)
    assert edge_mass(cut.log_joint, 61)[0] > 1e-3
    windows, checks = whole_posterior_windows(dec_params, x, num_points=61, num_stds=1.0)
    z_grids, dz, log_joint = windows.z_grids, windows.dz, windows.log_joint
    assert checks["edge_mass"][0] < 1e-4 and checks["mass_outside_window"][0] < 1e-4
    # 61 points over a window ~8 wide resolve log p(x) to ~3e-4; a mode left out would cost log 2.
    np.testing.assert_allclose(log_integrate_grid(log_joint, dz, 61), log_px, atol=2e-3)
    modes = count_modes(log_joint[0], 61)
    assert modes["num_modes"] == 2
    peaks = np.sort(z_grids[0, modes["peaks"], 0])  # mirror images beyond |z1| = 1.5
    assert peaks[0] < -1.5 and peaks[1] > 1.5 and abs(peaks[0] + peaks[1]) < 1e-9


def four_pixel_decoder(bottom_weights, bottom_bias=(0.5, -0.3)):
    """A decoder (2 -> 2 -> 4, float64): top pixels follow tanh(z1) and tanh(z2), the bottom two
    tanh(z1) times bottom_weights (zeros: they ignore z)."""
    w2 = np.array([[2.0, 0.0, bottom_weights[0], bottom_weights[1]], [0.0, 2.0, 0.0, 0.0]])
    return [(np.eye(2), np.zeros(2)), (w2, np.array([0.0, 0.0, *bottom_bias]))]


def enumerated_bottom(dec_params, x_top):
    """P(x_bottom | x_top) (4,) for bottoms 00, 01, 10, 11, from p(x_top, x_bottom) / p(x_top) by brute force."""
    bottoms = np.array(list(itertools.product([0.0, 1.0], repeat=2)))
    whole = np.concatenate([np.repeat(x_top, 4, axis=0), bottoms], axis=1)
    log_joint, _ = brute_force(dec_params, whole, spacing=0.05)
    log_top, _ = brute_force(dec_params, x_top, spacing=0.05)
    return np.exp(log_joint - log_top)


@pytest.mark.parametrize("bottom_weights, sign", [((3.0, 3.0), 1), ((3.0, -3.0), -1), ((0.0, 0.0), 0)])
def test_bottom_pixel_dependence_is_the_covariance_of_the_enumerated_conditional(bottom_weights, sign):
    dec_params = four_pixel_decoder(bottom_weights)
    x_top = np.array([[1.0, 0.0]])
    table = enumerated_bottom(dec_params, x_top)  # P(00), P(01), P(10), P(11)
    np.testing.assert_allclose(table.sum(), 1.0, atol=1e-9)
    m_i, m_j, joint = table[2] + table[3], table[1] + table[3], table[3]
    windows, _ = whole_posterior_windows(dec_params, x_top, num_points=81, max_edge_mass=1e-9)
    (record,) = bottom_pixel_dependence(dec_params, windows)
    assert record["pixels"] == [2, 3] and record["num_uncertain_pixels"] == 2
    np.testing.assert_allclose(record["marginals"], [m_i, m_j], atol=1e-6)
    np.testing.assert_allclose(record["joint"], joint, atol=1e-6)
    covariance = joint - m_i * m_j
    np.testing.assert_allclose(record["covariance"], covariance, atol=1e-6)
    np.testing.assert_allclose(record["correlation"], covariance / np.sqrt(m_i * (1 - m_i) * m_j * (1 - m_j)),
                               atol=1e-5)
    if sign == 0:  # a decoder ignoring z: the mixture is one product
        assert abs(record["covariance"]) < 1e-12
    else:  # both pixels follow z1 (or one against it): coupled through z
        assert sign * record["correlation"] > 0.05


def test_connected_pieces_joins_diagonal_neighbours_and_separates_gaps():
    from vae_autograd.study.posterior import connected_pieces
    mask = np.array([[1, 0, 0, 0, 1],
                     [0, 1, 0, 0, 1],
                     [0, 0, 0, 0, 0],
                     [1, 1, 0, 1, 0],
                     [0, 0, 0, 0, 1]], bool)
    labels = connected_pieces(mask)
    assert np.all((labels > 0) == mask)
    pieces = {tuple(map(tuple, np.argwhere(labels == piece))) for piece in np.unique(labels[labels > 0])}
    assert pieces == {((0, 0), (1, 1)), ((0, 4), (1, 4)), ((3, 0), (3, 1)), ((3, 3), (4, 4))}


def test_the_mass_outside_a_window_is_seen_beyond_the_coarse_grid():
    """mass_outside_window sets the window's integral against log p(x) by the adaptive quadrature of the
    whole plane: a window kept to a coarse grid of [-1, 1]^2 that the two modes (beyond |z1| = 1.5) lie
    outside has nearly all the posterior outside it, which a share counted on that grid would put at 0."""
    dec_params = two_mode_decoder()
    x = np.ones((1, 20))
    windows, checks = whole_posterior_windows(dec_params, x, num_points=61, num_stds=1.0, bound=1.0, max_rounds=0)
    assert np.all(np.abs(windows.z_grids[0]) <= 1.0 + 1e-12) and checks["mass_outside_window"][0] > 0.99
    _, held = whole_posterior_windows(dec_params, x, num_points=61, num_stds=1.0)
    assert held["mass_outside_window"][0] == OUTSIDE_RESOLUTION  # the widened window: all of it, to resolution
