"""The parameters and networks of vae_autograd.core.model: shapes, dtypes, seeding, values.

Monte Carlo checks use fixed seeds and a 4-standard-error band.
"""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads

from tests.helpers import all_arrays, binary_images, numpy_mlp
from vae_autograd.core.model import (
    ReluLayer,
    affine,
    affine_relu,
    affine_tanh,
    decoder,
    encoder,
    hidden_activations,
    hidden_dims,
    init_mlp_params,
    init_vae_params,
    mlp,
)


def test_init_mlp_params_shapes_dtypes_scale():
    scale = 0.01
    params = init_mlp_params([784, 500, 4], np.random.default_rng(0), scale=scale)
    assert [(W.shape, b.shape) for W, b in params] == [((784, 500), (500,)), ((500, 4), (4,))]
    assert all(a.dtype == np.float32 for layer in params for a in layer)
    W = params[0][0].astype(np.float64)
    n = W.size
    # entries are N(0, scale^2): SE of the mean = scale/sqrt(n), of the std ~ scale/sqrt(2n)
    assert abs(W.mean()) < 4 * scale / np.sqrt(n)
    assert abs(W.std() - scale) < 4 * scale / np.sqrt(2 * n)
    b = params[0][1].astype(np.float64)
    assert abs(b.std() - scale) < 4 * scale / np.sqrt(2 * b.size)
    # scale enters multiplicatively: same seed, 50x the scale, 50x the numbers
    p1 = init_mlp_params([7, 5, 3], np.random.default_rng(1), scale=0.01, dtype=np.float64)
    p2 = init_mlp_params([7, 5, 3], np.random.default_rng(1), scale=0.5, dtype=np.float64)
    for a1, a2 in zip(all_arrays([p1]), all_arrays([p2])):
        assert a1.dtype == np.float64
        np.testing.assert_allclose(a2, 50 * a1, rtol=1e-15)


def test_init_vae_params_defaults_and_seeding():
    enc, dec = init_vae_params(np.random.default_rng(0))
    assert [(W.shape, b.shape) for W, b in enc] == [((784, 500), (500,)), ((500, 4), (4,))]
    assert [(W.shape, b.shape) for W, b in dec] == [((2, 500), (500,)), ((500, 784), (784,))]
    assert all(a.dtype == np.float32 for a in all_arrays((enc, dec)))
    again = init_vae_params(np.random.default_rng(0))
    other = init_vae_params(np.random.default_rng(1))
    for a, b, c in zip(all_arrays((enc, dec)), all_arrays(again), all_arrays(other)):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_mlp_is_tanh_then_linear():
    rng = np.random.default_rng(2)
    (W1, b1), (W2, b2) = params = init_mlp_params([7, 5, 3], rng, scale=0.5, dtype=np.float64)
    x = rng.normal(size=(4, 7))
    np.testing.assert_allclose(mlp(params, x), np.tanh(x @ W1 + b1) @ W2 + b2, rtol=1e-13)
    # every hidden layer gets tanh, the last layer none
    deep = init_mlp_params([7, 5, 4, 3], rng, scale=0.5, dtype=np.float64)
    (V1, c1), (V2, c2), (V3, c3) = deep
    ref = np.tanh(np.tanh(x @ V1 + c1) @ V2 + c2) @ V3 + c3
    np.testing.assert_allclose(mlp(deep, x), ref, rtol=1e-13)


def stock_layer(activation):
    """The layer written with autograd's own operations, for its stock gradients."""
    return lambda inputs, W, b: activation(anp.matmul(inputs, W) + b)


@pytest.mark.parametrize("layer,stock", [(affine, stock_layer(lambda a: a)), (affine_tanh, stock_layer(anp.tanh)),
                                         (affine_relu, stock_layer(lambda a: anp.maximum(a, 0.0)))])
@pytest.mark.parametrize("input_shape", [(4, 7), (3, 4, 7), (7,)])
def test_layer_primitives_gradients(layer, stock, input_shape):
    """affine, affine_tanh and affine_relu: values and gradients at all three arguments (for a batch, a
    batch of samples and one input) against autograd's stock operations and against finite differences
    (random inputs: no pre-activation is exactly 0, where relu has no derivative)."""
    rng = np.random.default_rng(3)
    inputs, W, b = rng.normal(size=input_shape), rng.normal(0, 0.5, (7, 5)), rng.normal(size=5)
    np.testing.assert_allclose(layer(inputs, W, b), stock(inputs, W, b), rtol=1e-14)
    weights = rng.normal(size=np.shape(stock(inputs, W, b)))  # a random direction for the output
    for argnum in range(3):
        got = grad(lambda *a: anp.sum(weights * layer(*a)), argnum)(inputs, W, b)
        want = grad(lambda *a: anp.sum(weights * stock(*a)), argnum)(inputs, W, b)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.random.seed(0)  # check_grads draws its random directions from np.random
    check_grads(layer, modes=["rev"], order=1)(inputs, W, b)


def test_affine_tanh_gradient_extremes_and_float32():
    """1 - tanh^2 reuses the output: exactly 0 where tanh saturates, and float32 stays float32."""
    W, b = np.eye(4), np.zeros(4)
    ext = np.array([[-1e3, -30.0, 30.0, 1e3]])
    np.testing.assert_array_equal(grad(lambda a: anp.sum(affine_tanh(a, W, b)))(ext), 0.0)
    a32, W32, b32 = (np.random.default_rng(3).uniform(-5, 5, s).astype(np.float32) for s in ((6, 4), (4, 3), (3,)))
    assert affine_tanh(a32, W32, b32).dtype == np.float32
    assert all(grad(lambda *a: anp.sum(affine_tanh(*a)), i)(a32, W32, b32).dtype == np.float32 for i in range(3))


def test_affine_relu_gradient_passes_only_where_the_unit_is_on_and_stays_float32():
    """The gradient is the upstream one where inputs @ W + b > 0 and 0 elsewhere, 0 at exactly 0 too
    (a subgradient; autograd's stock maximum would split it, 1/2)."""
    W, b = np.eye(4), np.zeros(4)
    a = np.array([[-2.0, 0.0, 1e-300, 3.0]])
    weights = np.array([[5.0, 7.0, 11.0, 13.0]])
    np.testing.assert_array_equal(affine_relu(a, W, b), [[0.0, 0.0, 1e-300, 3.0]])
    np.testing.assert_array_equal(grad(lambda a: anp.sum(weights * affine_relu(a, W, b)))(a), [[0.0, 0.0, 11.0, 13.0]])
    a32, W32, b32 = (np.random.default_rng(3).uniform(-5, 5, s).astype(np.float32) for s in ((6, 4), (4, 3), (3,)))
    assert affine_relu(a32, W32, b32).dtype == np.float32
    assert all(grad(lambda *a: anp.sum(affine_relu(*a)), i)(a32, W32, b32).dtype == np.float32 for i in range(3))


def test_init_vae_params_builds_any_depth_and_relu_layers_say_so_by_their_type():
    enc, dec = init_vae_params(np.random.default_rng(0), hidden=(256, 128), activation="relu")
    assert [(W.shape, b.shape) for W, b in enc] == [((784, 256), (256,)), ((256, 128), (128,)), ((128, 4), (4,))]
    assert [(W.shape, b.shape) for W, b in dec] == [((2, 128), (128,)), ((128, 256), (256,)), ((256, 784), (784,))]
    assert [type(layer) for layer in enc + dec] == [ReluLayer, ReluLayer, tuple] * 2  # the output layers are linear
    assert hidden_dims(enc) == (256, 128) and hidden_dims(dec) == (128, 256)
    default = init_vae_params(np.random.default_rng(0))
    assert [type(layer) for net in default for layer in net] == [tuple] * 4 and hidden_dims(default[1]) == (500,)
    # The same draws in the same order whatever the activation: only the layers' kind differs.
    tanh = init_vae_params(np.random.default_rng(0), hidden=(256, 128))
    for a, b in zip(all_arrays((enc, dec)), all_arrays(tanh)):
        np.testing.assert_array_equal(a, b)


def test_relu_networks_compute_relu_and_the_decoder_is_its_last_hidden_layer_then_linear():
    rng = np.random.default_rng(5)
    enc, dec = init_vae_params(rng, 7, (5, 4), 2, scale=0.8, dtype=np.float64, activation="relu")
    x, z = rng.normal(size=(6, 7)), rng.normal(size=(3, 6, 2))
    np.testing.assert_allclose(mlp(enc, x), numpy_mlp(enc, x, "relu"), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(decoder(dec, z), numpy_mlp(dec, z, "relu"), rtol=1e-13, atol=1e-15)
    assert not np.allclose(decoder(dec, z), numpy_mlp(dec, z, "tanh"), atol=1e-3)  # the two differ here
    for params in (dec, init_vae_params(rng, 7, 5, 2, dtype=np.float64)[1]):
        hidden = hidden_activations(params, z)
        assert hidden.shape == (3, 6, hidden_dims(params)[-1])
        np.testing.assert_array_equal(affine(hidden, *params[-1]), decoder(params, z))


def test_autograd_differentiates_parameters_that_hold_relu_layers_and_keeps_their_kind():
    rng = np.random.default_rng(6)
    enc, dec = init_vae_params(rng, 7, (5, 4), 2, scale=0.8, dtype=np.float64, activation="relu")
    z = rng.normal(size=(6, 2))
    gradient = grad(lambda dec: anp.sum(decoder(dec, z) ** 2))(dec)
    assert [type(layer) for layer in gradient] == [ReluLayer, ReluLayer, tuple]
    np.random.seed(0)  # check_grads draws its random directions from np.random
    check_grads(lambda dec: decoder(dec, z), modes=["rev"], order=1)(dec)


def test_encoder_and_decoder_shapes_and_values():
    rng = np.random.default_rng(4)
    enc, dec = init_vae_params(rng, scale=0.1)
    x = binary_images(rng, 5)
    mean, log_std = encoder(enc, x)
    assert mean.shape == (5, 2) and log_std.shape == (5, 2)
    assert mean.dtype == np.float32 and log_std.dtype == np.float32
    (W1, b1), (W2, b2) = [(W.astype(np.float64), b.astype(np.float64)) for W, b in enc]
    out = np.tanh(x.astype(np.float64) @ W1 + b1) @ W2 + b2
    # float32 forward pass vs float64: a sum of 784 terms, errors ~ sqrt(784)*eps32 relative
    np.testing.assert_allclose(mean, out[:, :2], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(log_std, out[:, 2:], rtol=1e-4, atol=1e-5)

    z = rng.normal(size=(3, 5, 2)).astype(np.float32)
    logits = decoder(dec, z)
    assert logits.shape == (3, 5, 784) and logits.dtype == np.float32
    for s in range(3):
        np.testing.assert_allclose(logits[s], decoder(dec, z[s]), rtol=1e-6, atol=1e-6)
    assert decoder(dec, z[0]).shape == (5, 784)
