"""Figures of digits and of the latent plane (study parts 4-5): tiled images white on black,
prior samples, reconstructions, the embedding, the lattice, interpolations, the confusion table."""
import math

import numpy as np
from matplotlib.figure import Figure

from ..core.images import SIDE, image_grid
from ..core.text import percent


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


def fig_prior_samples(means, binary):
    """2 x S figure: Bernoulli means (S, 784) of p(x|z), z ~ p(z) (top), and one binary x (S, 784) each (bottom)."""
    return plot_images(np.concatenate([means, binary]), 2, len(means),
                       row_labels=["mean", "sample"],
                       title="Generated from the prior: z ~ N(0, I), x ~ p(x|z)")


def fig_reconstructions(x, means, binary):
    """N x 3 figure, one row per image x (N, 784): input | mean of p(x|z) | binary sample, z ~ q(z|x)."""
    rows = np.stack([np.asarray(x, dtype=means.dtype), means, binary], axis=1)  # (N, 3, 784)
    return plot_images(rows.reshape(-1, SIDE * SIDE), len(x), 3,
                       col_labels=["input", "mean", "sample"],
                       title="Reconstructions\nz ~ q(z|x), x ~ p(x|z)", inches_per_image=0.75)


def fig_latent_embedding(z_mean, labels, which="training"):
    """Scatter of the means (N, 2) of q(z|x) of N images (which: "training" or "test"), coloured by
    their digit labels (N,)."""
    labels = np.asarray(labels)
    if labels.shape != (len(z_mean),):
        raise ValueError(f"need one label per image: {len(z_mean)} images but labels of shape {labels.shape}")
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    # One scatter call in a shuffled (fixed) order of small, faint points: no class is drawn over
    # all the others, as the last classes would be in data order.
    order = np.random.default_rng(0).permutation(len(z_mean))
    points = ax.scatter(z_mean[order, 0], z_mean[order, 1], c=labels[order], cmap="tab10", vmin=-0.5, vmax=9.5,
                        s=1.5, alpha=0.35, linewidths=0, rasterized=True)
    colorbar = fig.colorbar(points, ax=ax, ticks=range(10))
    colorbar.solids.set_alpha(1.0)
    colorbar.set_label("digit")
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(f"Means of q(z|x) for {len(z_mean):,} {which} images")
    return fig


def fig_latent_lattice(z, image, lattice="gaussian"):
    """n x n tiles of the Bernoulli means of p(x|z) over the latent plane (cf. the paper's Figure 4b).

    z (n * n, 2) and image (n * 28, n * 28): study.decodings.latent_lattice; lattice names it in the title.
    """
    n = math.isqrt(len(z))
    z = np.asarray(z).reshape(n, n, 2)
    fig = plot_grid(image, row_labels=[f"{v:.2f}" for v in z[:, 0, 1]],
                    col_labels=[f"{v:.2f}" for v in z[0, :, 0]],
                    title=f"Means of p(x|z) on a {n} x {n} {lattice} lattice of z",
                    inches_per_image=0.45)
    ax = fig.axes[0]
    ax.tick_params(labelsize=8)  # "-1.96" fits a 0.45-inch tile unrotated at this size
    ax.set_xlabel("$z_1$ →")
    ax.set_ylabel("$z_2$ →")
    return fig


def fig_interpolations(x_a, x_b, path_means, labels_a, labels_b):
    """One row per pair of images: x_a | p(x|z) means from z_a to z_b | x_b.

    x_a, x_b (P, 784) and their labels (P,); path_means (P, S, 784): the Bernoulli means
    along z_alpha = alpha z_a + (1 - alpha) z_b for alpha = 1, ..., 0 in S equal steps
    (study.decodings.interpolate_latents, then decoded_means).
    """
    num_pairs, num_steps = path_means.shape[:2]
    rows = np.concatenate([x_a[:, None], path_means, x_b[:, None]], axis=1)
    alpha = np.linspace(1.0, 0.0, num_steps)
    return plot_images(rows.reshape(-1, SIDE * SIDE), num_pairs, num_steps + 2,
                       row_labels=[f"{a} → {b}" for a, b in zip(labels_a, labels_b)],
                       col_labels=["$x_a$"] + [f"{v:.2g}" for v in alpha] + ["$x_b$"],
                       title="Means of p(x|z) along z = α $z_a$ + (1 − α) $z_b$, α from 1 to 0",
                       inches_per_image=0.6)


def cell_percent(share):
    """A nonzero share of a confusion cell in whole percent, as its title explains: '·' under 0.5%, halves
    rounded up (0.5% is '1', never '0'), and '99' for a share below 1 that would round to '100'."""
    if share < 0.005:
        return "·"
    return str(min(math.floor(100 * share + 0.5), 100 if share >= 1 else 99))


def fig_confusion(summary):
    """10 x 10 image of the row-normalized confusion table, each cell annotated with its percent."""
    table = np.asarray(summary["confusion"], dtype=np.float64)
    totals = table.sum(axis=1, keepdims=True)
    shares = np.divide(table, totals, out=np.zeros_like(table), where=totals > 0)
    fig = Figure(figsize=(6.0, 5.4), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(100 * shares, cmap="Blues", vmin=0.0, vmax=100.0)
    fig.colorbar(image, ax=ax, label="percent of the true class's test images")
    for (row, col), share in np.ndenumerate(shares):  # inside their cells: the layout need not measure them
        if table[row, col] > 0:
            ax.text(col, row, cell_percent(share), ha="center", va="center",
                    fontsize=7, color="white" if share > 0.5 else "black", in_layout=False)
    classes = range(len(table))
    ax.set_xticks(classes)
    ax.set_yticks(classes)
    ax.set_xlabel("k-NN label in the latent plane")
    ax.set_ylabel("true digit")
    ax.set_title(f"{summary['k']}-NN on the means of q(z|x): {percent(summary['test_accuracy'])} "
                 "correct\n(percent of each row; ·: some, under 0.5%)")
    return fig
