"""The numbers behind the digit figures (vae_autograd.study.decodings): prior samples,
reconstructions, embedding bounds, lattices, interpolations, the normal inverse CDF, and
that each is one batched network call (conftest.network_calls).

Most tests use conftest's small untrained model and synthetic images; the last uses the
session's trained model on real MNIST. Monte Carlo checks use fixed seeds and
4-standard-error bands.
"""
import numpy as np
import pytest
import scipy.stats

from vae_autograd.core.images import image_grid
from vae_autograd.core.logspace import sigmoid
from vae_autograd.core.model import decoder, encoder
from vae_autograd.study.decodings import (
    embedding_bounds,
    interpolate_latents,
    latent_lattice,
    latent_means,
    normal_inverse_cdf,
    prior_samples,
    reconstructions,
)

pytestmark = pytest.mark.usefixtures("no_open_figures")


def test_decodings_reject_images_of_the_wrong_length(small_vae):
    enc_params, dec_params = small_vae
    with pytest.raises(ValueError, match=r"\(N, 784\)"):
        reconstructions(enc_params, dec_params, np.zeros((10, 783)), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(N, 784\)"):
        latent_means(enc_params, np.zeros((1, 783)))


def test_prior_samples_draw_z_from_the_prior_with_the_given_rng(small_vae):
    _, dec_params = small_vae
    z, means, binary = prior_samples(dec_params, np.random.default_rng(7), 10)
    assert np.array_equal(z, np.random.default_rng(7).standard_normal((10, 2)))
    np.testing.assert_allclose(means, sigmoid(decoder(dec_params, z)), rtol=1e-6)
    assert set(np.unique(binary)) <= {0.0, 1.0}


def test_prior_samples_have_standard_normal_moments_and_bernoulli_pixels(small_vae):
    _, dec_params = small_vae
    n = 4000
    z, means, binary = prior_samples(dec_params, np.random.default_rng(3), n)
    assert np.all(np.abs(z.mean(axis=0)) < 4 / np.sqrt(n))
    assert np.all(np.abs(z.std(axis=0) - 1) < 4 * np.sqrt(0.5 / n))
    assert abs(np.corrcoef(z.T)[0, 1]) < 4 / np.sqrt(n)
    # The binary pixels are Bernoulli(means): their average error is within 4 SE of 0.
    se = np.sqrt(np.sum(means * (1 - means))) / means.size
    assert abs(np.mean(binary - means)) < 4 * se


def test_reconstructions_sample_z_from_q(small_vae, digit_images):
    enc_params, dec_params = small_vae
    x = digit_images[0][:10]
    z, means, binary = reconstructions(enc_params, dec_params, x, np.random.default_rng(2))
    mean, log_std = encoder(enc_params, x)
    eps = np.random.default_rng(2).standard_normal((10, 2), dtype=np.float32)
    np.testing.assert_allclose(z, mean + np.exp(log_std) * eps, rtol=1e-6)
    np.testing.assert_allclose(means, sigmoid(decoder(dec_params, z)), rtol=1e-6)
    assert set(np.unique(binary)) <= {0.0, 1.0}


def test_embedding_bounds_are_percentiles_of_the_encoder_means(small_vae, digit_images):
    enc_params, _ = small_vae
    bounds = embedding_bounds(enc_params, digit_images[0])
    mean = encoder(enc_params, digit_images[0])[0]
    np.testing.assert_allclose(bounds, np.percentile(mean, [1, 99], axis=0).T)
    assert bounds.shape == (2, 2) and np.all(bounds[:, 0] < bounds[:, 1])


def test_normal_inverse_cdf_matches_scipy_to_1e_9():
    half = np.logspace(-12, np.log10(0.5), 2000)
    p = np.concatenate([half, 1 - half, np.linspace(1e-12, 1 - 1e-12, 20001)])
    np.testing.assert_allclose(normal_inverse_cdf(p), scipy.stats.norm.ppf(p), rtol=0, atol=1e-9)
    assert normal_inverse_cdf(0.5) == 0.0
    for bad in (0.0, 1.0, -0.1, np.nan):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            normal_inverse_cdf(bad)


def test_gaussian_lattice_coordinates_and_orientation(small_vae, network_calls):
    _, dec_params = small_vae
    n = 20
    z, image = latent_lattice(dec_params, n)
    assert network_calls == {"encoder": 0, "decoder": 1}
    coords = scipy.stats.norm.ppf((np.arange(n) + 0.5) / n)
    z = z.reshape(n, n, 2)
    # z1 grows left to right along each tile row, z2 grows from the bottom row to the top.
    np.testing.assert_allclose(z[:, :, 0], np.tile(coords, (n, 1)), atol=1e-12)
    np.testing.assert_allclose(z[:, :, 1], np.tile(coords[::-1, None], (1, n)), atol=1e-12)
    assert image.shape == (n * 28, n * 28)
    np.testing.assert_allclose(image, image_grid(sigmoid(decoder(dec_params, z.reshape(-1, 2))), n, n))


def test_linear_lattice_spans_the_bounds(small_vae):
    _, dec_params = small_vae
    z, _ = latent_lattice(dec_params, 5, "linear", (-2.0, 3.0))
    z = z.reshape(5, 5, 2)
    np.testing.assert_allclose(z[0, :, 0], np.linspace(-2, 3, 5))
    np.testing.assert_allclose(z[::-1, 0, 1], np.linspace(-2, 3, 5))
    z, _ = latent_lattice(dec_params, 4, "linear", ((0.0, 1.0), (-5.0, -1.0)))
    assert z[:, 0].min() == 0.0 and z[:, 0].max() == 1.0
    assert z[:, 1].min() == -5.0 and z[:, 1].max() == -1.0
    for lattice, bounds in [("linear", None), ("linear", (1.0, 1.0)), ("gaussian", (0, 1)), ("grid", None)]:
        with pytest.raises(ValueError):
            latent_lattice(dec_params, 4, lattice, bounds)


def test_interpolation_paths_run_exactly_from_z_a_to_z_b(small_vae, digit_images, network_calls):
    enc_params, _ = small_vae
    x_a, x_b = digit_images[0][:3], digit_images[0][3:6]
    z_path = interpolate_latents(enc_params, x_a, x_b, num_steps=10)
    assert network_calls["encoder"] == 1
    assert z_path.shape == (3, 10, 2)
    # Exactly the means of the one batched encoder call (a batch of a different size may
    # round differently in the matrix products, hence only allclose to separate calls).
    z_a, z_b = np.split(encoder(enc_params, np.concatenate([x_a, x_b]))[0], 2)
    assert np.array_equal(z_path[:, 0], z_a) and np.array_equal(z_path[:, -1], z_b)
    np.testing.assert_allclose(z_path[:, 0], encoder(enc_params, x_a)[0], rtol=1e-5, atol=1e-8)
    steps = np.diff(z_path, axis=1)  # equal steps along a straight line
    np.testing.assert_allclose(steps, np.broadcast_to(steps[:, :1], steps.shape), atol=1e-6)


def test_trained_model_reconstructs_test_images_better_than_prior_samples(trained_params, mnist):
    enc_params, dec_params = trained_params
    x = mnist[2][:100]
    _, recon, _ = reconstructions(enc_params, dec_params, x, np.random.default_rng(0))
    _, prior_means, _ = prior_samples(dec_params, np.random.default_rng(0), 100)
    assert np.mean(np.abs(x - recon)) < 0.7 * np.mean(np.abs(x - prior_means))
