"""Shared fixtures: the real MNIST files (when a copy can be found), a small VAE trained on them
(after 2 and 5 epochs), one run of run_all.py --quick, tiny random VAEs whose posteriors parts
6.1 and 8 fit, and the studies that test files of several layers (study, figures, report) read.

Tests that need the real files skip with the reason when no copy is found or can be
downloaded; with VAE_REQUIRE_MNIST=1 (set by .ci/run) that skip becomes a failure.
Plain helper functions shared by several files are in tests/helpers.py.
"""
import contextlib
import copy
import io
import os
import signal
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

import vae_autograd.figures.digits as digit_figures
import vae_autograd.study.decodings as decodings
from tests.helpers import NUM_ESTIMATES, NUM_IMAGES, REPO, load_run_all, random_binary_images, small_params
from vae_autograd.core.model import decoder, encoder, init_vae_params
from vae_autograd.io.mnist import DataError, find_mnist, load_binarized_mnist
from vae_autograd.io.process import keep_freed_memory
from vae_autograd.study.estimator_study import gradient_estimator_study
from vae_autograd.study.estimators import exact_elbo_and_gradient, single_sample_estimates
from vae_autograd.study.inference_gaps import inference_gap_study
from vae_autograd.study.posterior import posterior_study
from vae_autograd.study.svi import svi_study
from vae_autograd.train.loop import train


def pytest_configure(config):
    keep_freed_memory()  # the training fixtures run 4x faster (see its docstring)


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
def trained_models(mnist):
    """{epochs: (enc_params, dec_params)} after 2 and 5 epochs of one training on the 10,000 real
    training images (seed 0; each epoch's minibatches are drawn from (seed, epoch), so the first
    two are those of a 2-epoch training)."""
    params = init_vae_params(np.random.default_rng(0))
    models = {}

    def keep(epoch, *_):
        if epoch == 2:
            models[2] = copy.deepcopy(params)

    train(params, mnist[0], epochs=5, seed=0, on_epoch_end=keep)
    models[5] = params
    return models


@pytest.fixture(scope="session")
def trained_params(trained_models):
    """(enc_params, dec_params) after 5 epochs on the 10,000 real training images (seed 0)."""
    return trained_models[5]


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, mnist_dir):
    """run_all.py --quick, run once for the tests that read what it writes, in this process (so
    that its figures can be looked at) and in a new folder laid out as the command line lays it
    out: {"folder": holding data/vae-quick*.npz and figures-quick/ (only read, never written, by
    the tests), "log": what it printed, "figures": {name: Figure} it drew}."""
    folder = tmp_path_factory.mktemp("quick-run")
    run_all = load_run_all()
    study, drawn = run_all.run_study, {}

    def run_study(*args, **kwargs):
        figures, results = study(*args, **kwargs)
        drawn.update(figures)
        return figures, results

    run_all.run_study = run_study
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            run_all.main(["--quick", "--params", str(folder / "data" / "vae-quick.npz"),
                          "--out-dir", str(folder / "figures-quick"), "--data-dir", str(mnist_dir)])
    finally:
        for number, handler in handlers.items():  # main() makes SIGTERM an interrupt
            signal.signal(number, handler)
    return {"folder": folder, "log": log.getvalue(), "figures": drawn}


def pytest_collection_modifyitems(items):
    """Mark as slow what trains on the real MNIST images or runs run_all.py end to end:
    .ci/run's extra legs (other Python and package versions) deselect them with -m 'not slow'."""
    for item in items:
        if {"trained_models", "mnist", "quick_run"} & set(getattr(item, "fixturenames", ())) \
                or item.module.__name__.endswith("test_run_all"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def no_open_figures():
    """Fails a test that leaves a figure open in pyplot (the figures never use pyplot)."""
    before = len(plt.get_fignums())
    yield
    assert len(plt.get_fignums()) == before, "a figure was left open in pyplot"


# ---------------------------------------------------------------- tiny models and their studies

@pytest.fixture(scope="session")
def tiny_vae():
    """A random 30-pixel VAE with structured posteriors, and 40 images drawn from it."""
    rng = np.random.default_rng(3)
    enc_params, dec_params = init_vae_params(rng, data_dim=30, hidden=16, latent_dim=2, scale=1.5)
    z = rng.standard_normal((40, 2)).astype(np.float32)
    (W1, b1), (W2, b2) = dec_params
    logits = np.tanh(z @ W1 + b1) @ W2 + b2
    x = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    return enc_params, dec_params, x


@pytest.fixture(scope="session")
def gap_result(tiny_vae):
    """Part 8's inference_gap_study of tiny_vae."""
    enc_params, dec_params, x = tiny_vae
    return inference_gap_study(enc_params, dec_params, x, np.random.default_rng(0), num_steps=150,
                               iwae_ks=(1, 100), iwae_images=10)


@pytest.fixture(scope="session")
def untrained_vae():
    """(enc_params, dec_params): an untrained 784 -> 8 -> 2 VAE in float64."""
    return init_vae_params(np.random.default_rng(0), 784, 8, 2, scale=0.3, dtype=np.float64)


@pytest.fixture(scope="session")
def posterior_images():
    """Three random binary images (3, 784)."""
    return random_binary_images(3)


@pytest.fixture(scope="session")
def posterior_result(untrained_vae, posterior_images):
    """posterior_study of the untrained VAE: images[:2] as training images, images[1:] as test images."""
    return posterior_study(*untrained_vae, posterior_images[:2], posterior_images[1:], num_points=41)


@pytest.fixture(scope="session")
def svi_decoder(untrained_vae):
    """The untrained VAE's decoder in float32, the dtype SVI runs in for a trained model."""
    return [(W.astype(np.float32), b.astype(np.float32)) for W, b in untrained_vae[1]]


@pytest.fixture(scope="session")
def svi_images():
    """Two random binary images (2, 784), float32."""
    return random_binary_images(2, np.float32)


@pytest.fixture(scope="session")
def svi_result(svi_decoder, svi_images):
    return svi_study(svi_decoder, svi_images, np.random.default_rng(0), num_steps=400, num_points=61)


@pytest.fixture(scope="session")
def estimator_images():
    """Five random binary images (5, 784)."""
    return random_binary_images(NUM_IMAGES)


@pytest.fixture(scope="session")
def estimator_setting(untrained_vae, estimator_images):
    """Five images, their q parameters, 10^4 estimates of each kind and the exact gradient."""
    enc_params, dec_params = untrained_vae
    x = estimator_images
    mean, log_std = encoder(enc_params, x)
    estimates = single_sample_estimates(dec_params, x, mean, log_std, np.random.default_rng(1),
                                        NUM_ESTIMATES)
    elbo, exact = exact_elbo_and_gradient(dec_params, x, mean, log_std)
    return {"enc_dec": untrained_vae, "dec_params": dec_params, "x": x, "mean": mean, "log_std": log_std,
            "estimates": estimates, "exact": exact, "elbo": elbo}


@pytest.fixture(scope="session")
def estimator_result(untrained_vae, estimator_images):
    enc_params, dec_params = untrained_vae
    return gradient_estimator_study(enc_params, dec_params, estimator_images[:3], np.random.default_rng(5),
                                    num_estimates=400, estimates_per_image=200)


# ---------------------------------------------------------------- the digit figures and their numbers

@pytest.fixture(scope="session")
def small_vae():
    """(enc_params, dec_params) of an untrained 784 -> 20 -> 2 VAE."""
    return small_params()


@pytest.fixture(scope="session")
def digit_images():
    """(x (12, 784) binary float32, labels (12,)): distinct random images of digits 0..9, 0, 1."""
    return random_binary_images(12, np.float32), np.arange(12) % 10


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
