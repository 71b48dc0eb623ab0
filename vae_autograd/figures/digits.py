"""Figures of digits and of the latent plane (study parts 4-5): tiled images white on black,
prior samples, reconstructions, the embedding, the lattice, interpolations, the confusion table."""
import numpy as np
from matplotlib.figure import Figure

from ..core.images import SIDE, check_images, image_grid
from ..core.logspace import sigmoid
from ..core.model import data_dim, decoder
from ..report.format import percent
from ..study.decodings import interpolate_latents, latent_lattice, latent_means, prior_samples, reconstructions


def plot_images(images, rows, cols, row_labels=None, col_labels=None, title=None,
                inches_per_image=0.5):
    """Figure of images (N, 784) or (N, 28, 28) tiled rows x cols without gaps, white on black.

    row_labels / col_labels (optional, one per tile row / column) are written beside
    the tiles, at the left and at the top.
    """
    return plot_grid(image_grid(images, rows, cols), row_labels, col_labels, title, inches_per_image)


def plot_grid(grid, row_labels=None, col_labels=None, title=None, inches_per_image=0.5):
    """Figure of an image_grid array (rows*28, cols*28); see plot_images."""
    rows, cols = grid.shape[0] // SIDE, grid.shape[1] // SIDE
    fig = Figure(figsize=(cols * inches_per_image + 1.0, rows * inches_per_image + 0.6),
                 layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    # Labels are tick labels at the tile centres; the ticks themselves are hidden.
    centres = SIDE * np.arange(max(rows, cols)) + (SIDE - 1) / 2
    ax.set_yticks(centres[:rows] if row_labels is not None else [],
                  row_labels if row_labels is not None else [])
    ax.set_xticks(centres[:cols] if col_labels is not None else [],
                  col_labels if col_labels is not None else [])
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    if title is not None:
        fig.suptitle(title)
    return fig


def fig_prior_samples(dec_params, rng, num_samples=10):
    """2 x num_samples figure: Bernoulli means of p(x|z), z ~ p(z) (top), and one binary x (bottom)."""
    _, means, binary = prior_samples(dec_params, rng, num_samples)
    return plot_images(np.concatenate([means, binary]), 2, num_samples,
                       row_labels=["mean", "sample"],
                       title="Generated from the prior: z ~ N(0, I), x ~ p(x|z)")


def fig_reconstructions(enc_params, dec_params, x, rng):
    """N x 3 figure, one row per image x (N, 784): input | mean of p(x|z) | binary sample, z ~ q(z|x)."""
    _, means, binary = reconstructions(enc_params, dec_params, x, rng)
    rows = np.stack([np.asarray(x, dtype=means.dtype), means, binary], axis=1)  # (N, 3, 784)
    return plot_images(rows.reshape(-1, SIDE * SIDE), len(x), 3,
                       col_labels=["input", "mean", "sample"],
                       title="Reconstructions\nz ~ q(z|x), x ~ p(x|z)", inches_per_image=0.75)


def fig_latent_embedding(enc_params, x, labels):
    """Scatter of the means of q(z|x) for images x (N, 784), coloured by digit labels (N,)."""
    z_mean = latent_means(enc_params, x)
    labels = np.asarray(labels)
    if labels.shape != (len(x),):
        raise ValueError(f"need one label per image: {len(x)} images but labels of shape {labels.shape}")
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    # One scatter call keeps the points in data order, so no class is drawn over all the others.
    points = ax.scatter(z_mean[:, 0], z_mean[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5,
                        s=3, alpha=0.5, linewidths=0, rasterized=True)
    colorbar = fig.colorbar(points, ax=ax, ticks=range(10))
    colorbar.solids.set_alpha(1.0)
    colorbar.set_label("digit")
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(f"Means of q(z|x) for {len(x):,} images")
    return fig


def fig_latent_lattice(dec_params, n=20, lattice="gaussian", bounds=None):
    """n x n tiles of the Bernoulli means of p(x|z) over the latent plane (cf. the paper's Figure 4b)."""
    z, image = latent_lattice(dec_params, n, lattice, bounds)
    z = z.reshape(n, n, 2)
    fig = plot_grid(image, row_labels=[f"{v:.2f}" for v in z[:, 0, 1]],
                    col_labels=[f"{v:.2f}" for v in z[0, :, 0]],
                    title=f"Means of p(x|z) on a {n} x {n} {lattice} lattice of z",
                    inches_per_image=0.45)
    ax = fig.axes[0]
    ax.tick_params(labelsize=6)
    ax.tick_params(axis="x", labelrotation=90)
    ax.set_xlabel("$z_1$ →")
    ax.set_ylabel("$z_2$ →")
    return fig


def fig_interpolations(enc_params, dec_params, x, labels, pairs, num_steps=10):
    """One row per pair of images: x_a | p(x|z) means from z_a to z_b | x_b.

    x (N, 784), labels (N,); pairs: index arrays (a, b), each (P,), e.g. from choose_pairs or
    latent_classes.choose_faithful_pairs. Columns are alpha = 1, ..., 0 of
    z_alpha = alpha z_a + (1 - alpha) z_b.
    """
    check_images(x, data_dim(dec_params))
    a, b = (np.asarray(i) for i in pairs)
    num_pairs = len(a)
    z_path = interpolate_latents(enc_params, x[a], x[b], num_steps)
    means = sigmoid(decoder(dec_params, z_path.reshape(-1, 2))).reshape(num_pairs, num_steps, -1)
    rows = np.concatenate([x[a][:, None], means, x[b][:, None]], axis=1)
    alpha = np.linspace(1.0, 0.0, num_steps)
    labels = np.asarray(labels)
    return plot_images(rows.reshape(-1, SIDE * SIDE), num_pairs, num_steps + 2,
                       row_labels=[f"{labels[i]} → {labels[j]}" for i, j in zip(a, b)],
                       col_labels=["$x_a$"] + [f"{v:.2g}" for v in alpha] + ["$x_b$"],
                       title="Means of p(x|z) along z = α $z_a$ + (1 − α) $z_b$, α from 1 to 0",
                       inches_per_image=0.6)


def fig_confusion(summary):
    """10 x 10 image of the row-normalized confusion table, each cell annotated with its percent."""
    table = np.asarray(summary["confusion"], dtype=np.float64)
    totals = table.sum(axis=1, keepdims=True)
    shares = np.divide(table, totals, out=np.zeros_like(table), where=totals > 0)
    fig = Figure(figsize=(6.0, 5.4), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of the true class's test images")
    for (row, col), share in np.ndenumerate(shares):
        if table[row, col] > 0:
            ax.text(col, row, f"{100 * share:.0f}" if share >= 0.005 else "·", ha="center", va="center",
                    fontsize=7, color="white" if share > 0.5 else "black")
    classes = range(len(table))
    ax.set_xticks(classes)
    ax.set_yticks(classes)
    ax.set_xlabel("k-NN label in the latent plane")
    ax.set_ylabel("true digit")
    ax.set_title(f"{summary['k']}-NN on the means of q(z|x): {percent(summary['test_accuracy'])} "
                 "correct\n(percent of each row)")
    return fig
