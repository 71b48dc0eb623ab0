"""logsumexp, softplus, sigmoid and erf (vae_autograd.core.logspace) against SciPy.

Tolerances: a few machine epsilons times the size of the intermediates (see tests/helpers.py).
"""
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
from autograd import elementwise_grad, grad
from autograd.test_util import check_grads

from tests.helpers import EPS32, EPS64, NO_OVERFLOW
from vae_autograd.core.logspace import logsumexp, sigmoid, softplus


@pytest.mark.parametrize("a, expected", [
    ([1000.0, 1000.0], 1000.0 + np.log(2)),
    ([-1000.0, -1000.0], -1000.0 + np.log(2)),
    ([-np.inf, 0.0], 0.0),
    ([-np.inf, -np.inf], -np.inf),
    ([1e308, 1e308], 1e308),
])
def test_logsumexp_extreme_inputs(a, expected):
    with np.errstate(all="raise"):
        assert logsumexp(np.array(a)) == expected


def test_logsumexp_matches_scipy_on_any_axis():
    a = np.random.default_rng(0).normal(scale=50.0, size=(4, 5, 6))
    for axis in (None, 0, 1, 2, -1):
        np.testing.assert_allclose(logsumexp(a, axis=axis), scipy.special.logsumexp(a, axis=axis),
                                   rtol=1e-13)
    assert logsumexp(a, axis=1, keepdims=True).shape == (4, 1, 6)


def test_logsumexp_gradient_is_softmax():
    a = np.random.default_rng(1).normal(size=(3, 7))
    check_grads(lambda a: logsumexp(a, axis=1), modes=["rev"], order=1)(a)
    check_grads(lambda a: logsumexp(a), modes=["rev"], order=1)(a)
    np.testing.assert_allclose(grad(lambda a: logsumexp(a[0]))(a)[0], scipy.special.softmax(a[0]))
    # finite where a naive exp would overflow
    assert np.allclose(grad(lambda a: logsumexp(a))(np.array([1000.0, 1000.0])), [0.5, 0.5])


def test_logsumexp_of_integers_and_booleans_is_a_float():
    assert logsumexp(np.array([0, 0])) == np.log(2.0)
    np.testing.assert_allclose(logsumexp(np.array([[1000, 1000], [1, 2]]), axis=1),
                               [1000 + np.log(2.0), scipy.special.logsumexp([1.0, 2.0])], rtol=1e-15)
    assert logsumexp(np.array([True, False])) == np.log(1.0 + np.e)
    assert logsumexp(np.zeros(3, np.float32)).dtype == np.float32


@np.errstate(**NO_OVERFLOW)
def test_softplus_and_sigmoid_values_float64():
    a = np.concatenate([np.linspace(-50, 50, 201), [-1e4, -800.0, 800.0, 1e4]])
    sp = softplus(a)
    np.testing.assert_allclose(sp, np.logaddexp(0.0, a), rtol=4 * EPS64, atol=0)
    assert softplus(1e4) == 1e4 and softplus(-1e4) == 0.0
    s = sigmoid(a)
    ref = scipy.special.expit(a)
    # exp(-softplus(-a)): relative error ~ eps * softplus(-a) <= eps * (1 + |a|)
    np.testing.assert_array_less(np.abs(s - ref), 4 * EPS64 * (1 + np.abs(a)) * ref + 1e-300)
    assert sigmoid(1e4) == 1.0 and sigmoid(-1e4) == 0.0 and sigmoid(0.0) == 0.5


@np.errstate(**NO_OVERFLOW)
def test_softplus_and_sigmoid_float32_stay_float32():
    a = np.linspace(-30, 30, 61).astype(np.float32)
    a = np.concatenate([a, np.array([-1e4, 1e4], np.float32)])
    sp, s = softplus(a), sigmoid(a)
    assert sp.dtype == np.float32 and s.dtype == np.float32
    a64 = a.astype(np.float64)
    np.testing.assert_allclose(sp, np.logaddexp(0.0, a64), rtol=4 * EPS32)
    ref = scipy.special.expit(a64)
    np.testing.assert_array_less(np.abs(s - ref), 4 * EPS32 * (1 + np.abs(a64)) * ref + 1e-45)
    g = elementwise_grad(softplus)(a)
    assert g.dtype == np.float32 and np.all(np.isfinite(g))


@np.errstate(**NO_OVERFLOW)
def test_softplus_gradient():
    np.random.seed(0)  # check_grads draws its random directions from np.random
    a = np.random.default_rng(4).uniform(-30, 30, 40)
    check_grads(softplus, modes=["rev"], order=1)(a)
    ext = np.array([-1e4, -1e3, -40.0, 0.0, 40.0, 1e3, 1e4])
    g = elementwise_grad(softplus)(ext)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, scipy.special.expit(ext), rtol=4 * EPS64 * (1 + 1e4), atol=0)


def test_erf_and_its_gradient_match_scipy():
    from vae_autograd.core.logspace import erf
    x = np.concatenate([np.linspace(-7, 7, 141), [0.0, 1e-8, -30.0, 30.0]])
    np.testing.assert_allclose(erf(x), scipy.special.erf(x), rtol=1e-15, atol=1e-16)
    expected = 2 / np.sqrt(np.pi) * np.exp(-x**2)
    np.testing.assert_allclose(grad(lambda v: erf(v).sum())(x), expected, rtol=1e-14, atol=1e-300)
