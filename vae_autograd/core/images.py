"""Binary image batches: the one check every function of the study applies to its images.

The rule, for every public function that takes images as data (the ELBO and its
importance weights, log p(x), the IWAE bound, posteriors, SVI, gradient estimators and the
figures of them): images come as a batch x (N, D) of flat 28 x 28 images (D = 784, or
392 for top halves), every pixel 0 or 1. One image is a batch of one, x[None]. The
networks (model.encoder, model.decoder) and the log-densities of distributions.py and
elbo.py are maps over the last axis that broadcast over any leading ones; they check
nothing, since they run inside every training step (as does elbo.elbo_unchecked, for a
loop over minibatches of data checked once).

Why binary: the Bernoulli log-density x log p + (1 - x) log(1 - p) is a log-probability
only for x in {0, 1}; for grey-level or 0-255 images it returns numbers that look like
log-likelihoods and are not (positive "nats", for one).
"""

import numpy as np

SIDE = 28  # MNIST images are SIDE x SIDE = 784 pixels, stored row by row


def check_images(x, num_pixels, what="x"):
    """x as an array if it is a non-empty batch (N, P) of binary images, else a clear ValueError.

    num_pixels: the allowed P, an int or a tuple of them (e.g. (784, 392) where whole images
    and top halves are both allowed). NaN is not binary, so it is refused too.
    """
    x = check_batch(x, num_pixels, what)
    binary = (x == 0) | (x == 1)
    if not binary.all():
        bad = x[~binary].flat[0]
        raise ValueError(f"{what} must be binary images, every pixel 0 or 1 (the Bernoulli "
                         f"likelihood is defined for nothing else), found {bad!r}; binarize with "
                         f"({what} > 0.5).astype(np.float32), or load the data with "
                         "data.load_binarized_mnist")
    return x


def check_grey_images(grey, num_pixels, what="grey"):
    """grey as an array if it is a non-empty batch (N, P) of intensities in [0, 1], the probabilities
    of the pixels that dynamic binarization draws, else a clear ValueError (NaN is refused too)."""
    grey = check_batch(grey, num_pixels, what)
    inside = (grey >= 0) & (grey <= 1)
    if not inside.all():
        bad = grey[~inside].flat[0]
        raise ValueError(f"{what} must be grey intensities in [0, 1], found {float(bad)!r}; divide 0-255 pixels "
                         "by 255, or load the data with io.mnist.load_grey_mnist")
    return grey


def check_batch(x, num_pixels, what):
    """x as an array if it is a non-empty batch (N, P) of flat images, P in num_pixels; else a ValueError."""
    x = np.asarray(x)
    allowed = tuple(np.atleast_1d(num_pixels).tolist())
    pixels = " or ".join(map(str, allowed))
    if x.ndim == 1 and len(x) in allowed:
        raise ValueError(f"{what} must be a batch of images (N, {pixels}), got one image of shape "
                         f"{x.shape}; pass {what}[None] for a batch of one")
    if x.ndim != 2 or x.shape[1] not in allowed:
        raise ValueError(f"{what} must be a batch of flat images (N, {pixels}), got shape {x.shape}; "
                         f"flatten {SIDE}x{SIDE} images with {what}.reshape(len({what}), -1)")
    if len(x) == 0:
        raise ValueError(f"{what} holds no images (shape {x.shape}); pass at least one")
    return x


def to_image(x):
    """Flat images (..., 784) -> (..., 28, 28), rows of pixels in reading order."""
    x = np.asarray(x)
    if x.shape[-1:] != (SIDE * SIDE,):
        raise ValueError(f"images must have 784 = 28 x 28 pixels on the last axis, got shape "
                         f"{x.shape}; flatten each image to length 784")
    return x.reshape(x.shape[:-1] + (SIDE, SIDE))


def image_grid(images, rows, cols):
    """Tile images (N, 784) or (N, 28, 28), N = rows * cols, into one (rows*28, cols*28) array.

    Row-major: image k lands in tile row k // cols, tile column k % cols.
    """
    images = np.asarray(images)
    if images.shape[-2:] != (SIDE, SIDE):
        images = to_image(images)
    if images.ndim != 3 or len(images) != rows * cols:
        raise ValueError(f"need rows * cols = {rows} * {cols} = {rows * cols} images of 28 x 28 "
                         f"pixels, got an array of shape {images.shape}")
    return images.reshape(rows, cols, SIDE, SIDE).swapaxes(1, 2).reshape(rows * SIDE, cols * SIDE)
