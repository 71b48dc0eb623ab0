"""Every public function that takes images as data applies the one image check
(vae_autograd.core.images.check_images), whatever its layer (the figures take the study's
arrays, not images): grey-level or 0-255 images, NaN, one image instead of a batch, an
empty batch are refused with a message naming the problem and the fix. A tiny untrained
784 -> 8 -> 2 model keeps each call to milliseconds.
"""
import copy
import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import vae_autograd
from tests.helpers import random_binary_images
from vae_autograd.core.elbo import elbo, log_importance_weight_chunks, log_importance_weights
from vae_autograd.core.model import encoder, init_vae_params
from vae_autograd.study.coarse_grid import coarse_grid_log_marginal_likelihood, coarse_grid_summary
from vae_autograd.study.decodings import embedding_bounds, interpolate_latents, latent_means, reconstructions
from vae_autograd.study.estimator_study import gradient_estimator_study
from vae_autograd.study.estimators import exact_elbo_and_gradient, quadrature_elbo, single_sample_estimates
from vae_autograd.study.gap_study import gap_studies, gaps_by_split
from vae_autograd.study.inference_gaps import GAUSSIAN_KEYS, inference_gap_study, worst_amortized
from vae_autograd.study.latent_classes import latent_class_study
from vae_autograd.study.marginal_likelihood import (
    iwae_bound,
    log_marginal_likelihood,
    marginal_likelihood_study,
    quadrature_of_sets,
)
from vae_autograd.study.posterior import (
    encoder_against_posterior,
    log_joint_on_grid,
    log_joint_on_windows,
    log_likelihood_top,
    posterior_study,
    posterior_windows,
    top_half,
    whole_posterior_windows,
)
from vae_autograd.study.svi import svi_study, svi_top_half
from vae_autograd.study.windows import decoder_target
from vae_autograd.train.loop import evaluate_elbo, train

ENC, DEC = init_vae_params(np.random.default_rng(0), 784, 8, 2, scale=0.1, dtype=np.float64)
X = random_binary_images(3, np.float32)
LABELS = np.array([0, 1, 2])
MEAN, LOG_STD = encoder(ENC, X)  # q of the images, for the estimators


def rng():
    return np.random.default_rng(0)


# Each public function that takes images, as a call on the images it is given. The test below
# finds those functions by introspection, so a new one fails it until it is listed here (and
# so checked) or in UNCHECKED with the reason it may skip the check.
ENTRY_POINTS = {
    elbo: lambda x: elbo(ENC, DEC, x, rng()),
    log_importance_weights: lambda x: log_importance_weights(ENC, DEC, x, rng(), 2, batch_size=2),
    log_importance_weight_chunks: lambda x: list(log_importance_weight_chunks(ENC, DEC, x, rng(), 2, 2, 1)),
    log_marginal_likelihood: lambda x: log_marginal_likelihood(DEC, x),
    iwae_bound: lambda x: iwae_bound(ENC, DEC, x, rng(), 5),
    marginal_likelihood_study: lambda x: marginal_likelihood_study(ENC, DEC, x, rng(), 2, (1,), 2, num_checked=0),
    quadrature_of_sets: lambda x: (quadrature_of_sets(DEC, {"a": x, "b": X[:2]}, 0),
                                   quadrature_of_sets(DEC, {"a": X[:2], "b": x}, 0)),
    coarse_grid_log_marginal_likelihood: lambda x: coarse_grid_log_marginal_likelihood(DEC, x),
    coarse_grid_summary: lambda x: coarse_grid_summary(ENC, DEC, x, np.zeros(len(x))),
    top_half: top_half,
    log_likelihood_top: lambda x: log_likelihood_top(DEC, top_half(x), np.zeros((1, 2))),
    log_joint_on_grid: lambda x: log_joint_on_grid(DEC, x, np.zeros((4, 2))),
    log_joint_on_windows: lambda x: log_joint_on_windows(DEC, x, np.zeros((len(x), 4, 2))),
    posterior_windows: lambda x: posterior_windows(DEC, x, num_points=11),
    whole_posterior_windows: lambda x: whole_posterior_windows(DEC, x, num_points=11),
    encoder_against_posterior: lambda x: encoder_against_posterior(ENC, DEC, x, 11),
    svi_study: lambda x: svi_study(DEC, x, rng(), num_steps=10, num_points=11),
    svi_top_half: lambda x: svi_top_half(DEC, top_half(x), rng(), num_steps=10),
    single_sample_estimates: lambda x: single_sample_estimates(DEC, x, MEAN[:2], LOG_STD[:2], rng(), 4),
    quadrature_elbo: lambda x: quadrature_elbo(DEC, x, MEAN[:2], LOG_STD[:2]),
    exact_elbo_and_gradient: lambda x: exact_elbo_and_gradient(DEC, x, MEAN[:2], LOG_STD[:2]),
    gradient_estimator_study: lambda x: gradient_estimator_study(ENC, DEC, x, rng(), 4),
    posterior_study: lambda x: (posterior_study(ENC, DEC, x, X[:2], num_points=11),
                                posterior_study(ENC, DEC, X[:2], x, num_points=11)),
    decoder_target: lambda x: decoder_target(DEC, x),
    inference_gap_study: lambda x: inference_gap_study(ENC, DEC, x, num_steps=2, convergence_images=0),
    worst_amortized: lambda x: worst_amortized(
        DEC, x, {**{key: np.zeros(len(x)) for key in (*PER_IMAGE_ELBOS, "log_px")},
                 **{key: np.zeros((len(x), 2)) for key in PER_IMAGE_GAUSSIANS}}, num_shown=1, num_points=5),
    gaps_by_split: lambda x: gaps_by_split(ENC, DEC, {"test": x}, num_steps=2, convergence_images=0),
    gap_studies: lambda x: gap_studies((ENC, DEC), 1, {}, {"test": x}, {"test": np.zeros(len(x))}, None, rng(),
                                       {"test": rng()}, iwae_images=1, check_images=1, log=lambda line: None),
    latent_class_study: lambda x: (latent_class_study(ENC, x, LABELS[:len(x)], X, LABELS, k=1, ks=(1,)),
                                   latent_class_study(ENC, X, LABELS, x, LABELS[:len(x)], k=1, ks=(1,))),
    reconstructions: lambda x: reconstructions(ENC, DEC, x, rng()),
    latent_means: lambda x: latent_means(ENC, x),
    embedding_bounds: lambda x: embedding_bounds(ENC, x),
    interpolate_latents: lambda x: interpolate_latents(ENC, x, x, 3),
    train: lambda x: train((copy.deepcopy(ENC), copy.deepcopy(DEC)), x, epochs=1, batch_size=2),
    evaluate_elbo: lambda x: evaluate_elbo((ENC, DEC), x, rng(), 2),
}
PER_IMAGE_ELBOS = ("elbo_amortized", "elbo_refined", "elbo_optimal")
PER_IMAGE_GAUSSIANS = [key for keys in GAUSSIAN_KEYS.values() for key in keys]
IMAGE_PARAMETERS = {"x", "x_a", "x_b", "x_top", "train_x", "test_x", "train_x_shown", "test_x_shown", "images"}
UNCHECKED = {  # public functions that take images but may skip the check, and why
    "vae_autograd.core.images.check_images": "the check itself",
    "vae_autograd.core.images.check_batch": "the shape check shared by check_images and check_grey_images",
    "vae_autograd.core.images.to_image": "reshapes any flat images, Bernoulli means too",
    "vae_autograd.core.images.image_grid": "tiles any images, Bernoulli means too",
    "vae_autograd.core.model.encoder": "a network, a map over the last axis run inside every training step",
    "vae_autograd.core.distributions.bernoulli_log_density": "a log-density, a map run inside every training step",
    "vae_autograd.core.elbo.log_likelihood": "a log-density, a map run inside every training step",
    "vae_autograd.core.elbo.joint_log_density": "a log-density, a map run inside every training step",
    "vae_autograd.core.elbo.elbo_unchecked": "the training loop's ELBO, on data train() checked once",
    "vae_autograd.study.grids.grid_log_likelihood": "a map inside the quadratures, on images they checked",
    "vae_autograd.study.windows.window_log_joint": "the inner loop of decoder_target, which checked the images",
    "vae_autograd.seeds.analysis.analysed_images": "sliced RunImages for model_row, whose quadrature checks them",
    "vae_autograd.study.estimators.log_weights_and_reparam_gradients": "single_sample_estimates' inner loop",
    "vae_autograd.study.svi.svi_log_weights": "svi_top_half's objective, on the top halves it checked",
    "vae_autograd.train.loop.minibatches": "splits the rows of any array",
}
UNCHECKED_PACKAGES = ("vae_autograd.figures.",)  # figures draw the study's arrays, means as well as images


def functions_taking_images():
    """{qualified name: function} of every public function of the package with an images parameter."""
    found = {}
    for info in pkgutil.walk_packages(vae_autograd.__path__, "vae_autograd."):
        module = importlib.import_module(info.name)
        for name, function in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(function) or function.__module__ != module.__name__:
                continue
            if IMAGE_PARAMETERS & set(inspect.signature(function).parameters):
                found[f"{module.__name__}.{name}"] = function
    return found


def test_every_function_taking_images_is_checked_here_or_excused():
    found = functions_taking_images()
    listed = {f"{f.__module__}.{f.__name__}" for f in ENTRY_POINTS}
    excused = set(UNCHECKED) | {name for name in found if name.startswith(UNCHECKED_PACKAGES)}
    assert sorted(set(found) - listed - excused) == []
    assert sorted((listed | set(UNCHECKED)) - set(found)) == []  # nothing listed that no longer exists


@pytest.mark.parametrize("function", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_every_entry_point_accepts_a_binary_batch_and_refuses_the_rest(function):
    call = ENTRY_POINTS[function]
    call(X[:2])
    with pytest.raises(ValueError, match=r"binary.*> 0.5"):
        call(X[:2] * 255)
    with pytest.raises(ValueError, match="binary"):
        call(np.where(X[:2] > 0, np.nan, X[:2]))
    with pytest.raises(ValueError, match=r"\[None\]"):
        call(X[0])


def test_empty_batch_to_log_marginal_likelihood_is_refused():
    with pytest.raises(ValueError, match="holds no images"):
        log_marginal_likelihood(DEC, np.zeros((0, 784), np.float32))


def test_top_halves_are_checked_where_they_enter():
    x_top = top_half(X)
    with pytest.raises(ValueError, match=r"x_top must be a batch of flat images \(N, 392\)"):
        svi_top_half(DEC, X, rng(), num_steps=2)
    with pytest.raises(ValueError, match=r"x_top must be binary"):
        svi_top_half(DEC, x_top * 255, rng(), num_steps=2)
    with pytest.raises(ValueError, match=r"x_top\[None\]"):
        log_likelihood_top(DEC, x_top[0], np.zeros((1, 2)))
