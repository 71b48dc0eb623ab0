"""Encoder and decoder MLPs of the Kingma & Welling (2013, App. C) VAE (study part 2.3).

Parameters are explicit lists of layers, one (W, b) pair per layer, as in autograd's examples;
every layer but the last is a hidden layer, the last is linear. With the defaults: encoder
784 -> 500 tanh -> 2 + 2, decoder 2 -> 500 tanh -> 784. Any depth works: hidden=(256, 128)
makes the encoder 784 -> 256 -> 128 -> 2 + 2 and the decoder its mirror 2 -> 128 -> 256 -> 784.

The activation travels with the parameters, in the type of each hidden layer: a plain tuple
(W, b) is a tanh layer, a ReluLayer((W, b)) a relu one. Why a tuple subclass and not a third
element such as (W, b, "relu"), or an option passed alongside: (1) it is still a pair, so every
`W, b = layer`, flat_arrays, Adam's state, the checkpoint's arrays and the study's dozens of
encoder(enc_params, x) and decoder(dec_params, z) calls work unchanged for any architecture, and
no caller can pair relu weights with tanh; (2) a string inside the parameters would break
autograd's differentiation of the nested parameters (it has no vector space), where a tuple
subclass registered below is one more container autograd knows; (3) the default model is made
of the very same plain tuples as before, so its tape and its numbers do not change.

The encoder outputs the log standard deviation of q(z|x), not the variance: any real
number is a valid log std, so the network needs no positivity constraint or clipping;
the Gaussian log-density and entropy use log std directly (no log of a number that
can underflow to 0); and one unit of output moves the std by the same factor whether
it is 1 or 0.01, which keeps gradients well scaled as posteriors narrow in training.
"""
import numpy as np
from autograd.builtins import SequenceBox, SequenceVSpace
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import getval

from .distributions import into, split_mean_log_std


@primitive
def affine(inputs, W, b):
    """inputs @ W + b as one taped operation. inputs (..., m), W (m, n), b (n,) -> (..., n).

    Matmul-then-add would be two nodes and a general-purpose unbroadcast of the bias
    gradient; its vector-Jacobian products are written out below instead. The bias is
    added in place: one (..., n) array per layer, not two. (W and b share a dtype, and the
    product's is at least W's, so the in-place add never narrows.) Stacked inputs (samples,
    images, m) go through as one (samples * images, m) product: NumPy's matmul would run one
    small product per sample, 7 to 10 times slower.
    """
    out = _rows(inputs) @ W
    out += b
    return out.reshape(np.shape(inputs)[:-1] + out.shape[-1:])


@primitive
def affine_tanh(inputs, W, b):
    """tanh(inputs @ W + b): a hidden layer as one taped operation, (..., m) -> (..., n).

    One node instead of two on autograd's tape, and tanh overwrites the product's buffer.
    """
    out = affine.fun(inputs, W, b)
    return np.tanh(out, out=out)


@primitive
def affine_relu(inputs, W, b):
    """max(inputs @ W + b, 0): a relu hidden layer as one taped operation, (..., m) -> (..., n).

    As affine_tanh: one node, and the maximum overwrites the product's buffer.
    """
    out = affine.fun(inputs, W, b)
    return np.maximum(out, 0.0, out=out)


def _rows(a):
    """(..., n) -> (rows, n)."""
    a = np.asarray(a)
    return a.reshape(-1, a.shape[-1])


def _layer_vjp(local_grad):
    """Vector-Jacobian products of out = f(inputs @ W + b) for the arguments autograd asks for.

    local_grad(out, g) is the gradient at inputs @ W + b; it is computed once and shared by
    the two or three products (autograd's defvjp would compute it once per argument).
    """
    def vjp_maker(argnums, out, args, kwargs):
        inputs, W, _ = args

        def vjp(g):
            g = local_grad(out, g)
            return [(_rows(g) @ W.T).reshape(np.shape(inputs)) if argnum == 0 else _rows(inputs).T @ _rows(g)
                    if argnum == 1 else _rows(g).sum(axis=0) for argnum in argnums]
        return vjp
    return vjp_maker


def _tanh_local_grad(out, g):
    """g * (1 - out^2), the gradient at a = inputs @ W + b of out = tanh(a): reuses the layer's
    output (autograd's stock tanh goes through cosh), in one new array."""
    local = out * out
    np.subtract(1.0, local, out=local)
    return into(np.multiply, g, local, local)


def _relu_local_grad(out, g):
    """g where out > 0, else 0: the gradient at a = inputs @ W + b of out = max(a, 0), read off the
    layer's output (at a = 0 it is 0, a subgradient; autograd's stock maximum would give 1/2)."""
    return np.where(out > 0.0, g, 0.0)


defvjp_argnums(affine, _layer_vjp(lambda out, g: g))
defvjp_argnums(affine_tanh, _layer_vjp(_tanh_local_grad))
defvjp_argnums(affine_relu, _layer_vjp(_relu_local_grad))

ACTIVATIONS = ("tanh", "relu")  # of the hidden layers; the output layer is linear


class ReluLayer(tuple):
    """(W, b) of a relu hidden layer: a pair like any layer, whose type says relu (see above)."""
    __slots__ = ()

    def __repr__(self):
        return f"ReluLayer({tuple.__repr__(self)})"


class _ReluLayerVSpace(SequenceVSpace):
    seq_type = ReluLayer  # gradients of a ReluLayer are ReluLayers, as a tuple's are tuples


# Registered as autograd registers tuple itself: autograd.grad can box and differentiate
# parameters that hold relu layers (the training step's fast_grad boxes only the arrays).
_ReluLayerVSpace.register(ReluLayer)
SequenceBox.register(ReluLayer)


def hidden_layer(activation, W, b):
    """The hidden layer (W, b) with activation "tanh" (a plain tuple) or "relu" (a ReluLayer)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    return (W, b) if activation == "tanh" else ReluLayer((W, b))


def layer_like(layer, W, b):
    """(W, b) as a layer of the same kind as layer: how parameters are rebuilt around other arrays
    (fast_grad's boxes and gradients) without losing their activations."""
    return (W, b) if type(layer) is tuple else type(layer)((W, b))


def network(layers, activation="tanh"):
    """[(W, b), ...] -> a network: every layer but the last a hidden layer of activation."""
    return [hidden_layer(activation, W, b) for W, b in layers[:-1]] + [tuple(layers[-1])]


def init_mlp_params(layer_sizes, rng, scale=0.01, dtype=np.float32, activation="tanh"):
    """[(W, b), ...] with W (m, n) and b (n,) drawn from N(0, scale^2), hidden layers of activation."""
    return network([
        ((scale * rng.standard_normal((m, n))).astype(dtype),
         (scale * rng.standard_normal(n)).astype(dtype))
        for m, n in zip(layer_sizes[:-1], layer_sizes[1:])
    ], activation)


def init_vae_params(rng, data_dim=784, hidden=(500,), latent_dim=2, scale=0.01, dtype=np.float32,
                    activation="tanh"):
    """(enc_params, dec_params): encoder data_dim -> hidden... -> 2 latent_dim, decoder the mirror.

    hidden: the hidden layers' widths from the data side, a sequence such as (256, 128), or an int
    for one hidden layer. The encoder is drawn first, then the decoder, layer by layer (W, then b).
    """
    hidden = (hidden,) if isinstance(hidden, (int, np.integer)) else tuple(hidden)
    if not hidden or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in hidden):
        raise ValueError(f"hidden must be one or more positive layer widths, such as (500,) or (256, 128); "
                         f"got {hidden!r}")
    enc_params = init_mlp_params([data_dim, *hidden, 2 * latent_dim], rng, scale, dtype, activation)
    dec_params = init_mlp_params([latent_dim, *hidden[::-1], data_dim], rng, scale, dtype, activation)
    return enc_params, dec_params


def mlp(params, inputs):
    """Hidden layers (each tanh or relu, by its kind) and a linear output layer. inputs (..., m) -> (..., n)."""
    return affine(hidden_activations(params, inputs), *params[-1])


def hidden_activations(params, inputs):
    """The last hidden layer's output of the network params: inputs (..., m) -> (..., H), so that
    mlp(params, inputs) is affine(hidden_activations(params, inputs), *params[-1]). For code that
    works with the output layer's weights directly (study.windows: x . logits = (x W^T) . hidden + b . x)."""
    hidden = inputs
    for layer in params[:-1]:
        W, b = layer
        # getval: under autograd.grad of the nested parameters, a layer is a box around its tuple.
        hidden = (affine_relu if type(getval(layer)) is ReluLayer else affine_tanh)(hidden, W, b)
    return hidden


def encoder(enc_params, x):
    """q(z|x) = N(mean, diag(exp(log_std)^2)). x (..., 784) -> mean, log_std (..., Dz).

    The network outputs them side by side, (..., 2 Dz) (distributions.split_mean_log_std).
    """
    return split_mean_log_std(mlp(enc_params, x))


def decoder(dec_params, z):
    """Bernoulli logits of p(x|z). z (..., Dz) -> logits (..., 784)."""
    return mlp(dec_params, z)


def data_dim(dec_params):
    """Pixels per image D: the decoder's output size."""
    return dec_params[-1][0].shape[1]


def latent_dim(dec_params):
    """Dimension Dz of the latent space: the decoder's input size."""
    return dec_params[0][0].shape[0]


def hidden_dims(params):
    """The widths of a network's hidden layers, from its input side: (128, 256) for a decoder
    2 -> 128 -> 256 -> 784."""
    return tuple(W.shape[1] for W, _ in params[:-1])


def params_dtype(params):
    """The dtype the network computes in (that of its first weight matrix)."""
    return params[0][0].dtype
