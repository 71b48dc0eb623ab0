"""Tests for vae_autograd.visualize: image layout, the sampled numbers behind each figure,
the normal inverse CDF, and that every figure is built from one batched network call.

Most tests use a tiny untrained model (hidden layer of 20 units) and synthetic images;
the last two use the session's trained model on real MNIST. Monte Carlo checks use
fixed seeds and 4-standard-error bands.
"""
import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.stats
from matplotlib.figure import Figure

import vae_autograd.figures.digits as digit_figures
import vae_autograd.study.decodings as decodings
from vae_autograd.core.images import image_grid, to_image
from vae_autograd.core.logspace import sigmoid
from vae_autograd.core.model import decoder, encoder, init_vae_params
from vae_autograd.figures.digits import (
    fig_interpolations,
    fig_latent_embedding,
    fig_latent_lattice,
    fig_prior_samples,
    fig_reconstructions,
    plot_images,
)
from vae_autograd.study.decodings import (
    embedding_bounds,
    interpolate_latents,
    latent_lattice,
    normal_inverse_cdf,
    prior_samples,
    reconstructions,
)
from vae_autograd.study.latent_classes import choose_faithful_pairs


@pytest.fixture(scope="module")
def tiny():
    """(enc_params, dec_params) of an untrained 784 -> 20 -> 2 VAE."""
    return init_vae_params(np.random.default_rng(0), 784, 20, 2)


@pytest.fixture(scope="module")
def images():
    """(x (12, 784) binary float32, labels (12,)): distinct random images of digits 0..9, 0, 1."""
    x = (np.random.default_rng(1).random((12, 784)) < 0.3).astype(np.float32)
    return x, np.arange(12) % 10


@pytest.fixture(autouse=True)
def no_open_figures():
    before = len(plt.get_fignums())
    yield
    assert len(plt.get_fignums()) == before, "a figure was left open in pyplot"


@pytest.fixture
def network_calls(monkeypatch):
    """Counts of the encoder and decoder calls made by the decodings and their figures."""
    calls = {"encoder": 0, "decoder": 0}

    def counted(name, function):
        def wrapper(*args):
            calls[name] += 1
            return function(*args)
        return wrapper

    for name, function in (("encoder", encoder), ("decoder", decoder)):
        for module in (decodings, digit_figures):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, counted(name, function))
    return calls


def shown_image(fig):
    """The tiled image array of a figure made by plot_images."""
    assert isinstance(fig, Figure)
    (image,) = fig.axes[0].images
    return np.asarray(image.get_array())


def tiles(grid):
    """(rows*28, cols*28) -> (rows, cols, 784), inverting image_grid."""
    rows, cols = grid.shape[0] // 28, grid.shape[1] // 28
    return grid.reshape(rows, 28, cols, 28).swapaxes(1, 2).reshape(rows, cols, 784)


# ---------------------------------------------------------------- image layout

def test_to_image_reads_pixels_row_by_row():
    image = to_image(np.arange(784))
    assert image.shape == (28, 28) and image[2, 5] == 2 * 28 + 5
    assert to_image(np.zeros((3, 5, 784))).shape == (3, 5, 28, 28)


@pytest.mark.parametrize("shape", [(6, 784), (6, 28, 28)])
def test_image_grid_puts_image_k_in_row_k_div_cols_and_column_k_mod_cols(shape):
    images = np.arange(6, dtype=float)[:, None] * np.ones((6, 784))
    grid = image_grid(images.reshape(shape), rows=2, cols=3)
    assert grid.shape == (2 * 28, 3 * 28)
    for k in range(6):
        r, c = k // 3, k % 3
        assert np.all(grid[28 * r:28 * (r + 1), 28 * c:28 * (c + 1)] == k)
    assert np.array_equal(image_grid(np.arange(784.0)[None], 1, 1), np.arange(784.0).reshape(28, 28))


@pytest.mark.parametrize("call", [
    lambda: to_image(np.zeros(783)),
    lambda: image_grid(np.zeros((6, 783)), 2, 3),
    lambda: image_grid(np.zeros((5, 784)), 2, 3),
    lambda: plot_images(np.zeros((6, 27, 27)), 2, 3),
])
def test_wrong_image_sizes_raise_a_clear_value_error(call):
    with pytest.raises(ValueError, match="784|28 x 28"):
        call()


def test_figure_functions_reject_images_of_the_wrong_length(tiny):
    enc_params, dec_params = tiny
    with pytest.raises(ValueError, match=r"\(N, 784\)"):
        fig_reconstructions(enc_params, dec_params, np.zeros((10, 783)), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(N, 784\)"):
        fig_latent_embedding(enc_params, np.zeros(784), np.zeros(1))


def test_plot_images_shows_the_tiles_white_on_black_without_ticks():
    images = np.random.default_rng(0).random((6, 784))
    fig = plot_images(images, 2, 3)
    assert len(fig.axes) == 1
    assert np.array_equal(shown_image(fig), image_grid(images, 2, 3))
    image = fig.axes[0].images[0]
    assert image.get_cmap().name == "gray" and image.get_clim() == (0.0, 1.0)
    assert len(fig.axes[0].get_xticks()) == 0 and len(fig.axes[0].get_yticks()) == 0
    labelled = plot_images(images, 2, 3, row_labels=["a", "b"], col_labels=["x", "y", "z"])
    assert [t.get_text() for t in labelled.axes[0].get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in labelled.axes[0].get_xticklabels()] == ["x", "y", "z"]


# ---------------------------------------------------------------- 4.1 prior samples

def test_prior_samples_draw_z_from_the_prior_with_the_given_rng(tiny):
    _, dec_params = tiny
    z, means, binary = prior_samples(dec_params, np.random.default_rng(7), 10)
    assert np.array_equal(z, np.random.default_rng(7).standard_normal((10, 2)))
    np.testing.assert_allclose(means, sigmoid(decoder(dec_params, z)), rtol=1e-6)
    assert set(np.unique(binary)) <= {0.0, 1.0}


def test_prior_samples_have_standard_normal_moments_and_bernoulli_pixels(tiny):
    _, dec_params = tiny
    n = 4000
    z, means, binary = prior_samples(dec_params, np.random.default_rng(3), n)
    assert np.all(np.abs(z.mean(axis=0)) < 4 / np.sqrt(n))
    assert np.all(np.abs(z.std(axis=0) - 1) < 4 * np.sqrt(0.5 / n))
    assert abs(np.corrcoef(z.T)[0, 1]) < 4 / np.sqrt(n)
    # The binary pixels are Bernoulli(means): their average error is within 4 SE of 0.
    se = np.sqrt(np.sum(means * (1 - means))) / means.size
    assert abs(np.mean(binary - means)) < 4 * se


def test_fig_prior_samples_shows_means_over_binary_samples(tiny, network_calls):
    _, dec_params = tiny
    fig = fig_prior_samples(dec_params, np.random.default_rng(5))
    grid = shown_image(fig)
    assert grid.shape == (2 * 28, 10 * 28)
    assert network_calls == {"encoder": 0, "decoder": 1}
    _, means, binary = prior_samples(dec_params, np.random.default_rng(5), 10)
    np.testing.assert_array_equal(tiles(grid)[0], means)
    np.testing.assert_array_equal(tiles(grid)[1], binary)
    assert np.all((grid >= 0) & (grid <= 1))


# ---------------------------------------------------------------- 4.2 reconstructions

def test_reconstructions_sample_z_from_q(tiny, images):
    enc_params, dec_params = tiny
    x = images[0][:10]
    z, means, binary = reconstructions(enc_params, dec_params, x, np.random.default_rng(2))
    mean, log_std = encoder(enc_params, x)
    eps = np.random.default_rng(2).standard_normal((10, 2), dtype=np.float32)
    np.testing.assert_allclose(z, mean + np.exp(log_std) * eps, rtol=1e-6)
    np.testing.assert_allclose(means, sigmoid(decoder(dec_params, z)), rtol=1e-6)
    assert set(np.unique(binary)) <= {0.0, 1.0}


def test_fig_reconstructions_rows_are_input_mean_sample(tiny, images, network_calls):
    enc_params, dec_params = tiny
    x = images[0][:10]
    grid = shown_image(fig_reconstructions(enc_params, dec_params, x, np.random.default_rng(2)))
    assert grid.shape == (10 * 28, 3 * 28)
    assert network_calls == {"encoder": 1, "decoder": 1}
    per_tile = tiles(grid)
    np.testing.assert_array_equal(per_tile[:, 0], x)
    assert np.all((per_tile[:, 1] > 0) & (per_tile[:, 1] < 1))
    assert set(np.unique(per_tile[:, 2])) <= {0.0, 1.0}


# ---------------------------------------------------------------- 5.1 embedding

def test_fig_latent_embedding_scatters_the_encoder_means_by_class(tiny, images, network_calls):
    enc_params, _ = tiny
    x, labels = images
    fig = fig_latent_embedding(enc_params, x, labels)
    assert network_calls == {"encoder": 1, "decoder": 0}
    ax, colorbar_ax = fig.axes
    (points,) = ax.collections
    np.testing.assert_allclose(points.get_offsets(), encoder(enc_params, x)[0])
    assert np.array_equal(points.get_array(), labels)
    assert points.get_cmap().name == "tab10" and points.get_clim() == (-0.5, 9.5)
    assert list(colorbar_ax.get_yticks()) == list(range(10))
    assert ax.get_aspect() == 1.0 and ax.get_xlabel() == "$z_1$" and ax.get_ylabel() == "$z_2$"
    with pytest.raises(ValueError, match="one label per image"):
        fig_latent_embedding(enc_params, x, labels[:-1])


def test_embedding_bounds_are_percentiles_of_the_encoder_means(tiny, images):
    enc_params, _ = tiny
    bounds = embedding_bounds(enc_params, images[0])
    mean = encoder(enc_params, images[0])[0]
    np.testing.assert_allclose(bounds, np.percentile(mean, [1, 99], axis=0).T)
    assert bounds.shape == (2, 2) and np.all(bounds[:, 0] < bounds[:, 1])


# ---------------------------------------------------------------- 5.2 lattice

def test_normal_inverse_cdf_matches_scipy_to_1e_9():
    half = np.logspace(-12, np.log10(0.5), 2000)
    p = np.concatenate([half, 1 - half, np.linspace(1e-12, 1 - 1e-12, 20001)])
    np.testing.assert_allclose(normal_inverse_cdf(p), scipy.stats.norm.ppf(p), rtol=0, atol=1e-9)
    assert normal_inverse_cdf(0.5) == 0.0
    for bad in (0.0, 1.0, -0.1, np.nan):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            normal_inverse_cdf(bad)


def test_gaussian_lattice_coordinates_and_orientation(tiny, network_calls):
    _, dec_params = tiny
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


def test_linear_lattice_spans_the_bounds(tiny):
    _, dec_params = tiny
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


def test_fig_latent_lattice_shows_the_lattice_image(tiny):
    _, dec_params = tiny
    fig = fig_latent_lattice(dec_params, n=6)
    grid = shown_image(fig)
    assert grid.shape == (6 * 28, 6 * 28)
    np.testing.assert_array_equal(grid, latent_lattice(dec_params, 6)[1])
    assert np.all((grid >= 0) & (grid <= 1))
    labels = [float(t.get_text()) for t in fig.axes[0].get_xticklabels()]
    assert labels == sorted(labels)  # z1 increases to the right
    labels = [float(t.get_text()) for t in fig.axes[0].get_yticklabels()]
    assert labels == sorted(labels, reverse=True)  # z2 increases upwards


# ---------------------------------------------------------------- 5.3 interpolations

def test_interpolation_paths_run_exactly_from_z_a_to_z_b(tiny, images, network_calls):
    enc_params, _ = tiny
    x_a, x_b = images[0][:3], images[0][3:6]
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


def test_fig_interpolations_pairs_different_digits(tiny, images, network_calls):
    enc_params, dec_params = tiny
    x, labels = images
    a, b, _ = choose_faithful_pairs(labels, labels, np.random.default_rng(4), 3)
    assert np.all(labels[a] != labels[b])
    fig = fig_interpolations(enc_params, dec_params, x, labels, (a, b))
    assert network_calls == {"encoder": 1, "decoder": 1}
    per_tile = tiles(shown_image(fig))
    assert per_tile.shape == (3, 12, 784)
    np.testing.assert_array_equal(per_tile[:, 0], x[a])
    np.testing.assert_array_equal(per_tile[:, -1], x[b])
    z_path = interpolate_latents(enc_params, x[a], x[b], 10)
    np.testing.assert_allclose(per_tile[:, 1:-1], sigmoid(decoder(dec_params, z_path)), rtol=1e-6)
    with pytest.raises(ValueError, match="two classes"):
        choose_faithful_pairs(np.zeros(5, int), np.zeros(5, int), np.random.default_rng(0))


# ---------------------------------------------------------------- the trained model

def test_trained_model_reconstructs_test_images_better_than_prior_samples(trained_params, mnist):
    enc_params, dec_params = trained_params
    x = mnist[2][:100]
    _, recon, _ = reconstructions(enc_params, dec_params, x, np.random.default_rng(0))
    _, prior_means, _ = prior_samples(dec_params, np.random.default_rng(0), 100)
    assert np.mean(np.abs(x - recon)) < 0.7 * np.mean(np.abs(x - prior_means))


def test_trained_embedding_figure_has_every_training_image(trained_params, mnist):
    enc_params, _ = trained_params
    train_x, train_labels = mnist[0], mnist[1]
    fig = fig_latent_embedding(enc_params, train_x, train_labels)
    assert len(fig.axes[0].collections[0].get_offsets()) == len(train_x) == 10000
    # Digits form separate clusters: class centres are further apart than a typical spread.
    z = encoder(enc_params, train_x)[0]
    centres = np.array([z[train_labels == k].mean(axis=0) for k in range(10)])
    assert np.linalg.norm(centres[0] - centres[1]) > np.median(np.linalg.norm(z - centres[train_labels], axis=1))
