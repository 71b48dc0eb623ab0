"""The images of a training run (TrainConfig's binarization and validation_size): what it trains on,
what it validates on, and what its final ELBOs are evaluated on.

With threshold binarization every set is the images thresholded at intensity 0.5
(io.mnist.load_binarized_mnist). With dynamic binarization the training images stay grey and each
minibatch is drawn afresh (train.loop.draw_binary); the sets it is evaluated on are drawn once, each
from a fixed seed below, the same in every run whatever its --seed, so that runs are compared on the
same images. Each set is drawn row by row from one generator, so its first n images are the same
whatever its size: the test set's first n are those of the whole 10,000-image test set drawn at once.
"""
from typing import NamedTuple

import numpy as np

from ..io.mnist import load_binarized_mnist, load_grey_mnist, threshold
from .loop import draw_binary

# Fixed seeds of the evaluation sets under dynamic binarization; any fixed numbers would do: these are
# the arXiv number of Kingma & Welling's paper (1312.6114) and the next one.
TEST_BINARIZATION_SEED = 13126114
# The --train-size training images, drawn once: the first train_size - validation_size are those of
# the final training ELBO, the last validation_size the validation set.
TRAIN_BINARIZATION_SEED = 13126115


class RunImages(NamedTuple):
    """The image sets of a run, each (N, 784) float32."""
    train: np.ndarray            # the images trained on: binary (threshold), or grey in [0, 1] (dynamic)
    train_eval: np.ndarray       # binary: the same images, for the final training ELBO
    validation: np.ndarray | None  # binary: the held-out last validation_size images, or None
    test: np.ndarray             # binary: the test images of the final test ELBO
    test_threshold: np.ndarray | None  # dynamic only: the test images thresholded at 0.5, else None


def load_run_data(config):
    """The four arrays (train images, labels, test images, labels) run_images(config, ...) takes:
    load_binarized_mnist's, or under dynamic binarization load_grey_mnist's."""
    load = load_grey_mnist if config.binarization == "dynamic" else load_binarized_mnist
    return load(config.train_size, config.test_size, config.data_dir)


def run_images(config, data):
    """The RunImages of config from data = load_run_data(config)'s four arrays (its labels unused)."""
    train_x, _, test_x, _ = data
    kept = len(train_x) - config.validation_size  # the validation images are the last ones: never trained on
    if config.binarization == "threshold":
        validation = train_x[kept:] if config.validation_size else None
        return RunImages(train_x[:kept], train_x[:kept], validation, test_x, None)
    train_drawn = fixed_binarization(train_x, TRAIN_BINARIZATION_SEED)
    validation = train_drawn[kept:] if config.validation_size else None
    return RunImages(train_x[:kept], train_drawn[:kept], validation,
                     fixed_binarization(test_x, TEST_BINARIZATION_SEED), threshold(test_x))


def fixed_binarization(grey, seed, rows_per_block=1000):
    """Binary images (N, P) float32 drawn once from grey intensities (N, P) with np.random.default_rng(seed),
    row after row (in blocks, so that the uniform draws in float64 never take more than a block's
    memory): the same numbers as one draw of the whole array, so row i does not depend on N."""
    rng = np.random.default_rng(seed)
    drawn = np.empty(grey.shape, np.float32)
    for start in range(0, len(grey), rows_per_block):
        drawn[start:start + rows_per_block] = draw_binary(grey[start:start + rows_per_block], rng)
    return drawn
