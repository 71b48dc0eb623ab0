"""Every public function that takes images as data applies the one image check
(vae_autograd.core.images.check_images), whatever its layer (the figures take the study's
arrays, not images): grey-level or 0-255 images, NaN, one image instead of a batch, an
empty batch are refused with a message naming the problem and the fix. A tiny untrained
784 -> 8 -> 2 model keeps each call to milliseconds.
"""
import numpy as np
import pytest

from tests.helpers import random_binary_images
from vae_autograd.core.elbo import elbo, log_importance_weights
from vae_autograd.core.model import encoder, init_vae_params
from vae_autograd.study.decodings import embedding_bounds, interpolate_latents, latent_means, reconstructions
from vae_autograd.study.estimator_study import gradient_estimator_study
from vae_autograd.study.estimators import exact_elbo_and_gradient, single_sample_estimates
from vae_autograd.study.marginal_likelihood import iwae_bound, log_marginal_likelihood, marginal_likelihood_study
from vae_autograd.study.posterior import (
    log_joint_on_grid,
    log_likelihood_top,
    posterior_study,
    posterior_windows,
    top_half,
)
from vae_autograd.study.svi import svi_study, svi_top_half

ENC, DEC = init_vae_params(np.random.default_rng(0), 784, 8, 2, scale=0.1, dtype=np.float64)
X = random_binary_images(3, np.float32)
LABELS = np.array([0, 1, 2])
MEAN, LOG_STD = encoder(ENC, X)  # q of the images, for the estimators


def rng():
    return np.random.default_rng(0)


# Each public entry point, as a function of the images it is given.
ENTRY_POINTS = {
    "elbo": lambda x: elbo(ENC, DEC, x, rng()),
    "log_importance_weights": lambda x: log_importance_weights(ENC, DEC, x, rng(), 2, batch_size=2),
    "log_marginal_likelihood": lambda x: log_marginal_likelihood(DEC, x),
    "iwae_bound": lambda x: iwae_bound(ENC, DEC, x, rng(), 5),
    "marginal_likelihood_study": lambda x: marginal_likelihood_study(ENC, DEC, x, rng(), 2, (1,), 2),
    "top_half": top_half,
    "log_joint_on_grid": lambda x: log_joint_on_grid(DEC, x, np.zeros((4, 2))),
    "posterior_windows": lambda x: posterior_windows(DEC, x, num_points=11),
    "svi_study": lambda x: svi_study(DEC, x, rng(), num_steps=10, num_points=11),
    "single_sample_estimates": lambda x: single_sample_estimates(DEC, x, MEAN[:2], LOG_STD[:2], rng(), 4),
    "exact_elbo_and_gradient": lambda x: exact_elbo_and_gradient(DEC, x, MEAN[:2], LOG_STD[:2]),
    "gradient_estimator_study": lambda x: gradient_estimator_study(ENC, DEC, x, rng(), 4),
    "posterior_study (training images)": lambda x: posterior_study(ENC, DEC, x, X[:2], num_points=11),
    "posterior_study (test images)": lambda x: posterior_study(ENC, DEC, X[:2], x, num_points=11),
    "reconstructions": lambda x: reconstructions(ENC, DEC, x, rng()),
    "latent_means": lambda x: latent_means(ENC, x),
    "embedding_bounds": lambda x: embedding_bounds(ENC, x),
    "interpolate_latents": lambda x: interpolate_latents(ENC, x, x, 3),
}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_entry_point_accepts_a_binary_batch_and_refuses_the_rest(name):
    call = ENTRY_POINTS[name]
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
