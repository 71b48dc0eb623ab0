"""Shared fixtures: the real MNIST files (when a copy can be found), a small trained VAE, and
a tiny random one whose posteriors parts 6.1 and 8 fit.

Tests that need the real files skip with the reason when no copy is found or can be
downloaded; with VAE_REQUIRE_MNIST=1 (set by .ci/run) that skip becomes a failure.
"""
import os
from pathlib import Path

import numpy as np
import pytest

from vae_autograd.core.model import init_vae_params
from vae_autograd.io.mnist import DataError, find_mnist, load_binarized_mnist
from vae_autograd.io.process import keep_freed_memory
from vae_autograd.train.loop import train

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    keep_freed_memory()  # the training fixtures run 4x faster (see its docstring)


def assert_one_line_error(result, *fragments):
    """A command refused its input: exit 1, one line "error: ..." holding each fragment."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.fixture(scope="session")
def mnist_dir():
    candidates = [os.environ.get("MNIST_DIR"), REPO.parent / "shared" / "mnist", None]
    reasons = []
    for candidate in candidates:
        if candidate is not None and not Path(candidate).is_dir():
            continue
        try:
            return find_mnist(candidate)
        except DataError as err:
            reasons.append(str(err))
    message = "no MNIST copy found or downloadable: " + " | ".join(reasons)
    if os.environ.get("VAE_REQUIRE_MNIST"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """(train_x, train_labels, test_x, test_labels): the first 10,000 of each, binarized."""
    return load_binarized_mnist(data_dir=mnist_dir)


@pytest.fixture(scope="session")
def trained_params(mnist):
    """(enc_params, dec_params) after 5 epochs on the 10,000 real training images (seed 0)."""
    params = init_vae_params(np.random.default_rng(0))
    train(params, mnist[0], epochs=5, seed=0)
    return params


def pytest_collection_modifyitems(items):
    """Mark as slow what trains on the real MNIST images or runs run_all.py end to end:
    .ci/run's extra legs (other Python and package versions) deselect them with -m 'not slow'."""
    for item in items:
        if {"trained_params", "mnist"} & set(getattr(item, "fixturenames", ())) \
                or item.module.__name__.endswith("test_run_all"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_vae():
    """A random 30-pixel VAE with structured posteriors, and 40 images drawn from it."""
    rng = np.random.default_rng(3)
    enc_params, dec_params = init_vae_params(rng, data_dim=30, hidden_dim=16, latent_dim=2, scale=1.5)
    z = rng.standard_normal((40, 2)).astype(np.float32)
    (W1, b1), (W2, b2) = dec_params
    logits = np.tanh(z @ W1 + b1) @ W2 + b2
    x = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    return enc_params, dec_params, x
