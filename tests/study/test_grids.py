"""Grid quadrature in the 2-D latent space (vae_autograd.study.grids), and its neighbourhood and
edge-ring helpers against brute-force loops."""
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

from tests.helpers import six_pixel_vae
from vae_autograd.core.distributions import diag_gaussian_log_density
from vae_autograd.core.elbo import joint_log_density, log_prior
from vae_autograd.core.logspace import logsumexp, softplus
from vae_autograd.study.grids import (
    curvature_at,
    edge_mass,
    edge_ring,
    largest_curvature,
    latent_grid,
    log_integrate_grid,
    log_partition,
    log_sum_exp,
    neighbourhood_max,
    quadrature_kl,
)


def test_latent_grid_layout():
    z_grid, axis = latent_grid()
    assert z_grid.shape == (81 * 81, 2) and len(axis) == 81
    np.testing.assert_allclose(axis[[0, 1, -1]], [-4.0, -3.9, 4.0])
    image = z_grid.reshape(81, 81, 2)
    np.testing.assert_allclose(image[2, 5], [axis[5], axis[2]])  # row = z2, column = z1
    shifted, _ = latent_grid(-1, 1, 0.5, center=(3.0, -2.0))
    np.testing.assert_allclose(shifted.mean(axis=0), [3.0, -2.0])


@pytest.mark.parametrize("kwargs, message", [
    ({"spacing": 0.0}, "spacing must be > 0"), ({"spacing": -0.1}, "spacing must be > 0"),
    ({"low": 1.0, "high": 1.0}, "low < high"),
])
def test_latent_grid_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        latent_grid(**kwargs)


def test_integrate_grid_sums_the_whole_grid_flat_or_square():
    # A Gaussian bump on a 61 x 61 grid: the flat (..., K*K) and square (..., K, K)
    # layouts give the same number, its integral, which a per-row 1-D sum would miss.
    z_grid, axis = latent_grid(-3, 3, 0.1)
    log_f = -0.5 * np.sum(z_grid**2, axis=1) - np.log(2 * np.pi)  # N(0, I): integrates to ~1
    flat = log_integrate_grid(log_f, 0.1, len(axis))
    square = log_integrate_grid(log_f.reshape(len(axis), len(axis)), 0.1, len(axis))
    # The mass of the cells' square [-3.05, 3.05]^2, up to the edge cells' O(h^2) error (2e-5).
    np.testing.assert_allclose([flat, square], np.log(scipy.stats.norm.cdf(3.05) * 2 - 1) * 2, atol=3e-5)
    assert flat == square
    batch = np.stack([log_f, log_f + 1.0])
    np.testing.assert_allclose(log_integrate_grid(batch, np.array([0.1, 0.2]), len(axis)),
                               [flat, flat + 1.0 + 2 * np.log(2.0)], rtol=1e-12)
    np.testing.assert_allclose(log_integrate_grid(batch.reshape(2, 61, 61), 0.1, 61), [flat, flat + 1.0])


@pytest.mark.parametrize("log_f, dz, points, message", [
    (np.zeros(4), 0.0, 2, "spacing must be > 0"),
    (np.zeros(4), np.array([0.1, np.nan]), 2, "spacing must be > 0"),
    (np.zeros((3, 0)), 0.1, 2, r"log_f must hold a grid of 2 x 2 points .* got shape \(3, 0\)"),
    (0.0, 0.1, 2, r"got shape \(\)"),
    (np.zeros((3, 1, 1)), 0.5, 1, r"points_per_axis must be an integer >= 2 \(one point is no grid"),
    # A 4 x 4 image of a grid, said to be 3 x 3: neither layout fits.
    (np.zeros((4, 4)), 0.1, 3, r"as \(..., 9\) .* or \(..., 3, 3\), got shape \(4, 4\)"),
    (np.zeros((5, 40)), 0.1, 6, r"got shape \(5, 40\)"),
    (np.zeros(4), 0.1, 0, "points_per_axis must be an integer >= 2"),
    (np.zeros(4), 0.1, 2.0, "points_per_axis must be an integer >= 2"),
])
def test_integrate_grid_refuses_other_layouts(log_f, dz, points, message):
    with pytest.raises(ValueError, match=message):
        log_integrate_grid(log_f, dz, points)


def test_prior_integrates_to_its_exact_mass_on_the_square():
    # Each grid point stands for a cell of side 0.1, so the 81 x 81 grid covers
    # [-4.05, 4.05]^2, whose N(0, I) mass is (Phi(4.05) - Phi(-4.05))^2.
    # The midpoint rule is exact but for an O(h^2) error in the edge cells, where the
    # density is not flat: 7e-7 at h = 0.1, a quarter of that at h = 0.05. The mass of
    # [-4, 4]^2 itself differs by 2.5e-5, so the check tells the two apart.
    for spacing, tolerance in ((0.1, 1e-6), (0.05, 3e-7)):
        z_grid, axis = latent_grid(-4, 4, spacing)
        mass = np.exp(log_integrate_grid(log_prior(z_grid), spacing, len(axis)))
        edge = 4 + spacing / 2
        exact = (scipy.stats.norm.cdf(edge) - scipy.stats.norm.cdf(-edge)) ** 2
        assert abs(mass - exact) < tolerance


def test_normalized_posterior_integrates_to_one():
    _, dec = six_pixel_vae()
    x = (np.random.default_rng(4).random((5, 6)) < 0.5).astype(np.float64)
    z_grid, axis = latent_grid(-8, 8, 0.05)
    log_joint = joint_log_density(dec, x, z_grid[:, None, :]).T  # (5, G)
    log_post = log_joint - log_integrate_grid(log_joint, 0.05, len(axis))[:, None]
    np.testing.assert_allclose(log_integrate_grid(log_post, 0.05, len(axis)), 0.0, atol=1e-12)


def test_quadrature_kl_of_two_gaussians_matches_the_closed_form():
    z_grid, axis = latent_grid(-6, 6, 0.02)
    mean_q, log_std_q, mean_p, log_std_p = np.array([0.3, -0.2]), np.log([0.5, 0.8]), np.zeros(2), np.zeros(2)
    log_q = diag_gaussian_log_density(z_grid, mean_q, log_std_q)[None]
    log_p = diag_gaussian_log_density(z_grid, mean_p, log_std_p)[None]
    var_q = np.exp(2 * log_std_q)
    closed_form = np.sum(log_std_p - log_std_q + (var_q + (mean_q - mean_p) ** 2) / 2 - 0.5)
    np.testing.assert_allclose(quadrature_kl(log_q, log_p, 0.02), closed_form, rtol=1e-8)


def test_edge_mass_is_small_for_a_held_density_and_large_for_a_cut_one():
    z_grid, axis = latent_grid(-3, 3, 0.05)
    held = diag_gaussian_log_density(z_grid, np.zeros(2), np.log([0.5, 0.5]))
    cut = diag_gaussian_log_density(z_grid, np.array([2.5, 0.0]), np.log([0.5, 0.5]))
    masses = edge_mass(np.stack([held, cut]), len(axis))
    assert masses[0] < 1e-6 and masses[1] > 0.01


def brute_neighbourhood_max(a, fill, include_centre):
    """The same max, point by point over the last two axes."""
    rows, columns = a.shape[-2:]
    out = np.empty_like(a)
    for index in np.ndindex(a.shape[:-2]):
        for i in range(rows):
            for j in range(columns):
                values = [a[index + (i + di, j + dj)] if 0 <= i + di < rows and 0 <= j + dj < columns else fill
                          for di in (-1, 0, 1) for dj in (-1, 0, 1) if include_centre or di or dj]
                out[index + (i, j)] = max(values)
    return out


@pytest.mark.parametrize("include_centre", [True, False])
@pytest.mark.parametrize("shape", [(5, 5), (3, 4, 6), (2, 1, 1, 3)])
def test_neighbourhood_max_matches_a_loop(shape, include_centre):
    rng = np.random.default_rng(0)
    floats = rng.standard_normal(shape)
    np.testing.assert_array_equal(neighbourhood_max(floats, -np.inf, include_centre),
                                  brute_neighbourhood_max(floats, -np.inf, include_centre))
    labels = rng.integers(0, 10, shape)
    np.testing.assert_array_equal(neighbourhood_max(labels, 0, include_centre),
                                  brute_neighbourhood_max(labels, 0, include_centre))
    mask = rng.random(shape) < 0.2
    grown = neighbourhood_max(mask, False, include_centre)
    assert grown.dtype == bool
    np.testing.assert_array_equal(grown, brute_neighbourhood_max(mask, False, include_centre))


def test_neighbourhood_max_grows_a_point_to_its_3x3_square():
    mask = np.zeros((1, 5, 5), bool)
    mask[0, 0, 2] = True
    expected = np.zeros((1, 5, 5), bool)
    expected[0, 0:2, 1:4] = True
    np.testing.assert_array_equal(neighbourhood_max(mask, False), expected)
    expected[0, 0, 2] = False  # without the centre, the point itself has no marked neighbour
    np.testing.assert_array_equal(neighbourhood_max(mask, False, include_centre=False), expected)


def brute_largest_curvature(log_f, near):
    """largest_curvature by loops over every point, in float64."""
    out = np.zeros(len(log_f))
    for b, i, j in zip(*np.nonzero(near)):
        f = log_f[b].astype(np.float64)
        if 0 < i < f.shape[0] - 1:
            out[b] = max(out[b], abs(f[i + 1, j] - 2 * f[i, j] + f[i - 1, j]))
        if 0 < j < f.shape[1] - 1:
            out[b] = max(out[b], abs(f[i, j + 1] - 2 * f[i, j] + f[i, j - 1]))
    return out


@pytest.mark.parametrize("shape", [(4, 9, 11), (3, 3, 3), (2, 1, 5)])
def test_curvature_dense_and_at_listed_points_match_a_loop(shape):
    """The refined cells test their curvature on a mask, the coarse grid at the indices of its few
    points near the peak (float32 values, in float64): the same numbers, to the last bit."""
    rng = np.random.default_rng(2)
    for _ in range(5):
        log_f = (30 * rng.standard_normal(shape).cumsum(1).cumsum(2) - 150).astype(np.float32)
        near = rng.random(shape) < 0.3
        near[0] = False  # an image with no point near its peak has curvature 0
        expected = brute_largest_curvature(log_f, near)
        assert expected[0] == 0 and (shape[1] < 3 or expected.max() > 0)
        np.testing.assert_array_equal(largest_curvature(log_f.astype(np.float64), near), expected)
        np.testing.assert_array_equal(curvature_at(log_f, *np.nonzero(near)), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_partition_is_the_sum_of_softplus_to_the_last_bit(dtype):
    rng = np.random.default_rng(4)
    logits = (rng.standard_normal((3, 70, 9)) * np.array([1, 10, 100])[:, None, None]).astype(dtype)
    expected = np.sum(softplus(logits), axis=-1)
    assert log_partition(logits).dtype == dtype and log_partition(logits).shape == (3, 70)
    np.testing.assert_array_equal(log_partition(logits, rows_per_block=16), expected)
    np.testing.assert_array_equal(log_partition(logits[:, :, :4]), np.sum(softplus(logits[:, :, :4]), axis=-1))


def test_log_sum_exp_floors_only_what_cannot_count():
    """Exponents below -700 (where float64 exp is slow) are raised to it: exp(-700) = 1e-304 is lost
    next to the largest term, 1, so the sums are those of logsumexp, over any range of values."""
    rng = np.random.default_rng(5)
    a = rng.uniform(-3000, 0, (6, 500))
    a[:, 0] = rng.uniform(-5, 0, 6)  # a few terms that count among many that cannot
    a[:, 1] = a[:, 0] - 1e-3
    a[1] += 1e4  # any offset
    np.testing.assert_allclose(log_sum_exp(a), logsumexp(a, axis=1), rtol=1e-15, atol=0)
    np.testing.assert_allclose(log_sum_exp(a.T, axis=0), logsumexp(a, axis=1), rtol=1e-15, atol=0)
    assert log_sum_exp(np.array([[-1000.0, -1000.0]]))[0] == pytest.approx(-1000 + np.log(2), abs=1e-12)
    assert log_sum_exp(np.float32([[-150.0, -150.5]])).dtype == np.float64


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_edge_ring_is_the_outermost_ring(size):
    expected = np.array([[i in (0, size - 1) or j in (0, size - 1) for j in range(size)] for i in range(size)])
    ring = edge_ring(size)
    assert ring.dtype == bool and ring.shape == (size, size)
    np.testing.assert_array_equal(ring, expected)
    assert ring.sum() == (size * size if size <= 2 else 4 * (size - 1))
