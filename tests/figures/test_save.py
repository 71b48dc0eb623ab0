"""Writing a figure as a PNG (vae_autograd.figures.save_png): savefig's pixels, drawn once."""
import io

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from vae_autograd.figures import save_png
from vae_autograd.figures.digits import plot_images

pytestmark = pytest.mark.usefixtures("no_open_figures")


def digits():
    """A gray figure: tiled digits with labels and a title, laid out by constrained layout."""
    images = (np.random.default_rng(0).random((6, 784)) > 0.7).astype(float)
    return plot_images(images, 2, 3, row_labels=["a", "b"], title="digits")


def curves():
    """A coloured figure of two panels with ticks, labels and a legend."""
    fig = Figure(figsize=(6, 3), layout="constrained")
    for ax, scale in zip(fig.subplots(1, 2), ("linear", "log")):
        ax.plot([1, 2, 30], [3, 1, 2], color="C1", label="a curve")
        ax.set(xscale=scale, xlabel="x", ylabel="y", title=scale)
        ax.legend()
    return fig


@pytest.mark.parametrize("make, mode", [(digits, "L"), (curves, "RGB")])
def test_save_png_writes_the_pixels_of_savefig_drawn_once(make, mode):
    # Two figures made alike: constrained layout started again from its own result can move
    # things by a pixel, so each is saved once, as the study saves its figures.
    by_savefig, by_save_png = io.BytesIO(), io.BytesIO()
    make().savefig(by_savefig, format="png", dpi=110)
    fig = make()
    canvas, dpi = fig.canvas, fig.dpi
    draws = []
    fig.draw = lambda renderer: draws.append(renderer) or Figure.draw(fig, renderer)
    save_png(fig, by_save_png)
    assert len(draws) == 1
    assert (fig.canvas, fig.dpi) == (canvas, dpi)  # left as it was
    expected, written = Image.open(by_savefig), Image.open(by_save_png)
    assert written.mode == mode and written.info["dpi"] == pytest.approx((110, 110), abs=0.01)
    np.testing.assert_array_equal(np.asarray(written.convert("RGBA")), np.asarray(expected.convert("RGBA")))


def test_save_png_keeps_transparency():
    fig = digits()
    fig.patch.set_alpha(0.0)
    written = io.BytesIO()
    save_png(fig, written)
    image = Image.open(written)
    assert image.mode == "RGBA" and np.asarray(image)[0, 0, 3] == 0  # a corner of the transparent background
