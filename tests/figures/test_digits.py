"""The digit figures (vae_autograd.figures.digits): what each shows, tile by tile, and that
each draws the arrays the study computed and runs no network (conftest.network_calls).
"""
import numpy as np
import pytest
from matplotlib.figure import Figure

from tests.helpers import unreadable_text
from vae_autograd.core.images import image_grid
from vae_autograd.core.logspace import sigmoid
from vae_autograd.core.model import decoder, encoder
from vae_autograd.figures.digits import (
    cell_percent,
    fig_interpolations,
    fig_latent_embedding,
    fig_latent_lattice,
    fig_prior_samples,
    fig_reconstructions,
    plot_images,
)
from vae_autograd.study.decodings import (
    decoded_means,
    interpolate_latents,
    latent_lattice,
    latent_means,
    prior_samples,
    reconstructions,
)
from vae_autograd.study.latent_classes import choose_faithful_pairs

pytestmark = pytest.mark.usefixtures("no_open_figures")


def shown_image(fig):
    """The tiled image array of a figure made by plot_images."""
    assert isinstance(fig, Figure)
    (image,) = fig.axes[0].images
    return np.asarray(image.get_array())


def tiles(grid):
    """(rows*28, cols*28) -> (rows, cols, 784), inverting image_grid."""
    rows, cols = grid.shape[0] // 28, grid.shape[1] // 28
    return grid.reshape(rows, 28, cols, 28).swapaxes(1, 2).reshape(rows, cols, 784)


def test_plot_images_rejects_images_of_the_wrong_size():
    with pytest.raises(ValueError, match="784|28 x 28"):
        plot_images(np.zeros((6, 27, 27)), 2, 3)


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


def test_fig_prior_samples_shows_means_over_binary_samples(small_vae, network_calls):
    _, dec_params = small_vae
    _, means, binary = prior_samples(dec_params, np.random.default_rng(5), 10)
    assert network_calls == {"encoder": 0, "decoder": 1}
    grid = shown_image(fig_prior_samples(means, binary))
    assert network_calls == {"encoder": 0, "decoder": 1}  # the figure draws arrays, it runs no network
    assert grid.shape == (2 * 28, 10 * 28)
    np.testing.assert_array_equal(tiles(grid)[0], means)
    np.testing.assert_array_equal(tiles(grid)[1], binary)
    assert np.all((grid >= 0) & (grid <= 1))


def test_fig_reconstructions_rows_are_input_mean_sample(small_vae, digit_images, network_calls):
    enc_params, dec_params = small_vae
    x = digit_images[0][:10]
    _, means, binary = reconstructions(enc_params, dec_params, x, np.random.default_rng(2))
    grid = shown_image(fig_reconstructions(x, means, binary))
    assert grid.shape == (10 * 28, 3 * 28)
    assert network_calls == {"encoder": 1, "decoder": 1}
    per_tile = tiles(grid)
    np.testing.assert_array_equal(per_tile[:, 0], x)
    np.testing.assert_array_equal(per_tile[:, 1], means)
    assert np.all((per_tile[:, 1] > 0) & (per_tile[:, 1] < 1))
    assert set(np.unique(per_tile[:, 2])) <= {0.0, 1.0}


def test_fig_latent_embedding_scatters_the_encoder_means_by_class(small_vae, digit_images, network_calls):
    enc_params, _ = small_vae
    x, labels = digit_images
    fig = fig_latent_embedding(latent_means(enc_params, x), labels)
    assert network_calls == {"encoder": 1, "decoder": 0}
    ax, colorbar_ax = fig.axes
    (points,) = ax.collections
    order = np.random.default_rng(0).permutation(len(x))  # drawn shuffled, so no class covers the others
    np.testing.assert_allclose(points.get_offsets(), encoder(enc_params, x)[0][order])
    assert np.array_equal(points.get_array(), labels[order])
    assert points.get_cmap().name == "tab10" and points.get_clim() == (-0.5, 9.5)
    assert list(colorbar_ax.get_yticks()) == list(range(10))
    assert ax.get_aspect() == 1.0 and ax.get_xlabel() == "$z_1$" and ax.get_ylabel() == "$z_2$"
    with pytest.raises(ValueError, match="one label per image"):
        fig_latent_embedding(latent_means(enc_params, x), labels[:-1])


def test_fig_latent_lattice_shows_the_lattice_image(small_vae):
    _, dec_params = small_vae
    z, image = latent_lattice(dec_params, 6)
    fig = fig_latent_lattice(z, image)
    grid = shown_image(fig)
    assert grid.shape == (6 * 28, 6 * 28)
    np.testing.assert_array_equal(grid, image)
    assert np.all((grid >= 0) & (grid <= 1))
    assert fig.get_suptitle() == "Means of p(x|z) on a 6 x 6 gaussian lattice of z"
    labels = [float(t.get_text()) for t in fig.axes[0].get_xticklabels()]
    assert labels == sorted(labels) and labels == [float(f"{v:.2f}") for v in z[:6, 0]]  # z1 grows to the right
    labels = [float(t.get_text()) for t in fig.axes[0].get_yticklabels()]
    assert labels == sorted(labels, reverse=True)  # z2 increases upwards


def test_fig_interpolations_pairs_different_digits(small_vae, digit_images, network_calls):
    enc_params, dec_params = small_vae
    x, labels = digit_images
    a, b, _ = choose_faithful_pairs(labels, labels, np.random.default_rng(4), 3)
    assert np.all(labels[a] != labels[b])
    z_path = interpolate_latents(enc_params, x[a], x[b], 10)
    path_means = decoded_means(dec_params, z_path)
    assert network_calls == {"encoder": 1, "decoder": 1}
    np.testing.assert_allclose(path_means, sigmoid(decoder(dec_params, z_path)), rtol=1e-6)
    fig = fig_interpolations(x[a], x[b], path_means, labels[a], labels[b])
    per_tile = tiles(shown_image(fig))
    assert per_tile.shape == (3, 12, 784)
    np.testing.assert_array_equal(per_tile[:, 0], x[a])
    np.testing.assert_array_equal(per_tile[:, -1], x[b])
    np.testing.assert_array_equal(per_tile[:, 1:-1], path_means)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [f"{i} → {j}" for i, j in zip(labels[a], labels[b])]
    with pytest.raises(ValueError, match="two classes"):
        choose_faithful_pairs(np.zeros(5, int), np.zeros(5, int), np.random.default_rng(0))


def test_trained_embedding_figure_has_every_training_image(trained_params, mnist):
    enc_params, _ = trained_params
    train_x, train_labels = mnist[0], mnist[1]
    fig = fig_latent_embedding(latent_means(enc_params, train_x), train_labels)
    assert len(fig.axes[0].collections[0].get_offsets()) == len(train_x) == 10000
    # Digits form separate clusters: class centres are further apart than a typical spread.
    z = encoder(enc_params, train_x)[0]
    centres = np.array([z[train_labels == k].mean(axis=0) for k in range(10)])
    assert np.linalg.norm(centres[0] - centres[1]) > np.median(np.linalg.norm(z - centres[train_labels], axis=1))


def test_unreadable_text_finds_overlaps_and_text_leaving_the_figure():
    """The readability check of tests/test_run_all.py can fail: on a figure made to fail it."""
    fig = Figure(figsize=(3, 2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("a title")
    assert unreadable_text(fig) == []
    ax.text(0.5, 1.02, "another title on the first", transform=ax.transAxes, ha="center")
    fig.text(0.9, 0.5, "far past the right edge of the figure")
    found = unreadable_text(fig)
    assert "'far past the right edge of the figure' leaves the figure" in found
    assert any("overlaps" in problem and "another title" in problem for problem in found)
    legend_fig = Figure(figsize=(3, 2), layout="constrained")
    legend_ax = legend_fig.add_subplot()
    legend_ax.plot([0, 1], [0, 1], label="a line")
    legend_ax.legend(loc="center")
    legend_ax.text(0.5, 0.5, "under the legend", transform=legend_ax.transAxes, ha="center")
    assert "a legend covers 'under the legend'" in unreadable_text(legend_fig)


def test_a_confusion_cell_never_reads_0_for_half_a_percent_nor_100_below_all():
    """The cells read as their title says (·: some, under 0.5%): 0.5% is 1, not 0 (Python rounds halves to even),
    and 99.6% is 99, not 100."""
    assert [cell_percent(s) for s in (0.0049, 0.005, 0.125, 0.5, 0.996, 1.0)] == ["·", "1", "13", "50", "99", "100"]
