"""The per-array gradient of the training step against autograd's own value_and_grad.

vae_autograd.fast_grad walks autograd's tape by hand (autograd internals); these tests
are what tell a new autograd release apart from one it still works with.
"""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, value_and_grad

from vae_autograd.core.elbo import elbo
from vae_autograd.core.fast_grad import flat_arrays, value_and_grad_per_array
from vae_autograd.core.model import init_vae_params


def loss(params, x, rng):
    return -elbo(params[0], params[1], x, rng)


@pytest.mark.parametrize("architecture", [{}, {"hidden": (64, 32), "activation": "relu", "scale": 0.1}])
def test_value_and_gradients_equal_autograds_and_stay_float32(architecture):
    params = init_vae_params(np.random.default_rng(0), **architecture)
    x = (np.random.default_rng(1).random((100, 784)) < 0.15).astype(np.float32)
    value, grads = value_and_grad_per_array(loss)(params, x, np.random.default_rng(7))
    expected_value, expected = value_and_grad(loss)(params, x, np.random.default_rng(7))
    assert value == expected_value and value.dtype == np.float32
    # The gradients have the parameters' structure, relu layers included (the boxes passed to the loss had it).
    assert [[type(layer) for layer in net] for net in grads] == [[type(layer) for layer in net] for net in params]
    for got, want in zip(flat_arrays(grads), flat_arrays(expected)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_arrays_the_loss_does_not_use_get_zero_gradients():
    params = init_vae_params(np.random.default_rng(0), 6, 3, 2)

    def decoder_bias_only(params):
        return anp.sum(params[1][-1][1] ** 2)

    value, grads = value_and_grad_per_array(decoder_bias_only)(params)
    b = params[1][-1][1]
    np.testing.assert_allclose(value, np.sum(b**2), rtol=1e-6)
    np.testing.assert_allclose(grads[1][-1][1], 2 * b, rtol=1e-6)
    for got, array in zip(flat_arrays(grads)[:-1], flat_arrays(params)[:-1]):
        assert got.shape == array.shape and not got.any()


def test_a_loss_independent_of_the_parameters_gives_zero_gradients_like_autograd():
    params = init_vae_params(np.random.default_rng(0), 6, 3, 2)

    def constant(params):
        return 3.5

    with pytest.warns(UserWarning, match="independent of input"):
        value, grads = value_and_grad_per_array(constant)(params)
    with pytest.warns(UserWarning, match="independent of input"):
        expected = grad(constant)(params)
    assert value == 3.5
    for got, want, array in zip(flat_arrays(grads), flat_arrays(expected), flat_arrays(params)):
        assert got.shape == array.shape and got.dtype == array.dtype
        np.testing.assert_array_equal(got, want)
        assert not got.any()
