"""The one image check (vae_autograd.core.images.check_images) and the image layout
(to_image, image_grid). Every public function that applies the check is tried in
tests/test_image_checks.py.
"""
import numpy as np
import pytest

from tests.helpers import random_binary_images
from vae_autograd.core.images import check_images, image_grid, to_image

X = random_binary_images(3, np.float32)


def test_binary_batches_pass_unchanged():
    assert check_images(X, 784) is X
    np.testing.assert_array_equal(check_images(X[:, :392], (784, 392)), X[:, :392])
    np.testing.assert_array_equal(check_images(X.tolist(), 784), X)
    for dtype in (bool, np.uint8, np.float64):
        check_images(X.astype(dtype), 784)


@pytest.mark.parametrize("bad, message", [
    (X * 255, r"must be binary images.*found np.float32\(255.0\).*\(x > 0.5\).astype\(np.float32\).*"
              "load_binarized_mnist"),
    (X * 0.5, r"must be binary images.*found np.float32\(0.5\)"),
    (np.where(X > 0, np.nan, X), r"must be binary images.*found np.float32\(nan\)"),
    (X[0], r"got one image of shape \(784,\); pass x\[None\]"),
    (X[:0], r"holds no images \(shape \(0, 784\)\)"),
    (X[:, :700], r"\(N, 784\), got shape \(3, 700\); flatten 28x28 images"),
    (X.reshape(3, 28, 28), r"\(N, 784\), got shape \(3, 28, 28\); flatten 28x28 images"),
    (np.float32(1.0), r"\(N, 784\), got shape \(\)"),
])
def test_check_images_names_the_problem_and_the_fix(bad, message):
    with pytest.raises(ValueError, match=message):
        check_images(bad, 784)


@pytest.mark.usefixtures("no_open_figures")
def test_to_image_reads_pixels_row_by_row():
    image = to_image(np.arange(784))
    assert image.shape == (28, 28) and image[2, 5] == 2 * 28 + 5
    assert to_image(np.zeros((3, 5, 784))).shape == (3, 5, 28, 28)


@pytest.mark.usefixtures("no_open_figures")
@pytest.mark.parametrize("shape", [(6, 784), (6, 28, 28)])
def test_image_grid_puts_image_k_in_row_k_div_cols_and_column_k_mod_cols(shape):
    images = np.arange(6, dtype=float)[:, None] * np.ones((6, 784))
    grid = image_grid(images.reshape(shape), rows=2, cols=3)
    assert grid.shape == (2 * 28, 3 * 28)
    for k in range(6):
        r, c = k // 3, k % 3
        assert np.all(grid[28 * r:28 * (r + 1), 28 * c:28 * (c + 1)] == k)
    assert np.array_equal(image_grid(np.arange(784.0)[None], 1, 1), np.arange(784.0).reshape(28, 28))


@pytest.mark.usefixtures("no_open_figures")
@pytest.mark.parametrize("call", [
    lambda: to_image(np.zeros(783)),
    lambda: image_grid(np.zeros((6, 783)), 2, 3),
    lambda: image_grid(np.zeros((5, 784)), 2, 3),
])
def test_wrong_image_sizes_raise_a_clear_value_error(call):
    with pytest.raises(ValueError, match="784|28 x 28"):
        call()
