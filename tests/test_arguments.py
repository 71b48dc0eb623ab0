"""Arguments for which a public function cannot give a correct answer are refused with a
ValueError naming the rule, never answered with NaN, a crash deep inside NumPy, or an array of
the wrong shape."""
import numpy as np
import pytest

from tests.helpers import random_binary_images
from vae_autograd.core.elbo import elbo, log_importance_weights
from vae_autograd.core.model import init_vae_params
from vae_autograd.study.gap_study import gap_studies
from vae_autograd.study.grids import log_integrate_grid
from vae_autograd.study.marginal_likelihood import iwae_bound, log_marginal_likelihood
from vae_autograd.train.loop import evaluate_elbo, train

ENC, DEC = init_vae_params(np.random.default_rng(0), 784, 8, 2, scale=0.1)
X = random_binary_images(3, np.float32)


def rng():
    return np.random.default_rng(0)


CASES = {
    "ELBO of no samples": (lambda: elbo(ENC, DEC, X, rng(), num_samples=0), "num_samples must be an integer >= 1"),
    "a fractional sample count": (lambda: elbo(ENC, DEC, X, rng(), num_samples=2.5), "integer >= 1"),
    "importance weights of no samples": (lambda: log_importance_weights(ENC, DEC, X, rng(), 0), "integer >= 1"),
    "IWAE with K = 0": (lambda: iwae_bound(ENC, DEC, X, rng(), 0), "integer >= 1"),
    "a standard error from one sample": (lambda: evaluate_elbo((ENC, DEC), X, rng(), 1),
                                         "integer >= 2 \\(a standard error needs two\\)"),
    "an infinite quadrature bound": (lambda: log_marginal_likelihood(DEC, X, bound=np.inf), "finite bound"),
    "a spacing wider than the bound": (lambda: log_marginal_likelihood(DEC, X, bound=1.0, spacing=2.0),
                                       "spacing <= bound"),
    "a grid of one point": (lambda: log_integrate_grid(np.zeros((3, 1, 1)), 0.5, 1), "points_per_axis must be"),
    "a binarization that does not exist": (lambda: train((ENC, DEC), X, 1, binarization="random"),
                                           "binarization must be 'threshold' or 'dynamic', got 'random'"),
    "0-255 pixels as grey intensities": (lambda: train((ENC, DEC), X * 255, 1, binarization="dynamic"),
                                         r"grey intensities in \[0, 1\], found 255.0; divide 0-255 pixels by 255"),
    "a network without hidden layers": (lambda: init_vae_params(rng(), hidden=()),
                                         r"hidden must be one or more positive layer widths, such as \(500,\)"),
    "a hidden layer of no units": (lambda: init_vae_params(rng(), hidden=(256, 0)), r"got \(256, 0\)"),
    "a fractional width": (lambda: init_vae_params(rng(), hidden=(2.5,)), "positive layer widths"),
    "an unknown activation": (lambda: init_vae_params(rng(), hidden=(8,), activation="sigmoid"),
                              "activation must be one of tanh, relu; got 'sigmoid'"),
    "part 8 without its checks": (lambda: gap_studies((ENC, DEC), 1, {}, {"test": X}, {"test": np.zeros(3)}, None,
                                                      rng(), {"test": rng()}, iwae_images=0, check_images=0),
                                  "iwae_images and check_images must be at least 1"),
}


@pytest.mark.parametrize("case", CASES)
def test_degenerate_arguments_are_refused_with_the_rule(case):
    call, message = CASES[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_the_smallest_valid_arguments_still_answer():
    assert np.isfinite(elbo(ENC, DEC, X, rng(), num_samples=1))
    assert np.all(np.isfinite(evaluate_elbo((ENC, DEC), X, rng(), 2)))
    assert np.all(np.isfinite(iwae_bound(ENC, DEC, X, rng(), 1)))
    assert log_integrate_grid(np.zeros((3, 2, 2)), 0.5, 2).shape == (3,)
    with pytest.warns(UserWarning, match="at the edge"):  # the untrained model's posteriors are wide
        assert np.all(np.isfinite(log_marginal_likelihood(DEC, X, bound=1.0, spacing=1.0)))


@pytest.mark.parametrize("kind", ["float64", "int", "list"])
def test_the_same_seed_gives_the_same_numbers_whatever_the_image_dtype(kind):
    given = {"float64": X.astype(np.float64), "int": X.astype(int), "list": X.tolist()}[kind]
    assert elbo(ENC, DEC, given, rng(), num_samples=100) == elbo(ENC, DEC, X, rng(), num_samples=100)
    np.testing.assert_array_equal(log_importance_weights(ENC, DEC, given, rng(), 10),
                                  log_importance_weights(ENC, DEC, X, rng(), 10))
    np.testing.assert_array_equal(iwae_bound(ENC, DEC, given, rng(), 10), iwae_bound(ENC, DEC, X, rng(), 10))
