"""Encoder and decoder MLPs of the Kingma & Welling (2013, App. C) VAE (study part 2.3).

Parameters are explicit lists of (W, b) pairs, one per layer, as in autograd's
examples. With the defaults: encoder 784 -> 500 tanh -> 2 + 2, decoder 2 -> 500 tanh -> 784.

The encoder outputs the log standard deviation of q(z|x), not the variance: any real
number is a valid log std, so the network needs no positivity constraint or clipping;
the Gaussian log-density and entropy use log std directly (no log of a number that
can underflow to 0); and one unit of output moves the std by the same factor whether
it is 1 or 0.01, which keeps gradients well scaled as posteriors narrow in training.
"""
import numpy as np
from autograd.extend import defvjp_argnums, primitive

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


defvjp_argnums(affine, _layer_vjp(lambda out, g: g))
defvjp_argnums(affine_tanh, _layer_vjp(_tanh_local_grad))


def init_mlp_params(layer_sizes, rng, scale=0.01, dtype=np.float32):
    """[(W, b), ...] with W (m, n) and b (n,) drawn from N(0, scale^2)."""
    return [
        ((scale * rng.standard_normal((m, n))).astype(dtype),
         (scale * rng.standard_normal(n)).astype(dtype))
        for m, n in zip(layer_sizes[:-1], layer_sizes[1:])
    ]


def init_vae_params(rng, data_dim=784, hidden_dim=500, latent_dim=2, scale=0.01,
                    dtype=np.float32):
    """(enc_params, dec_params) for the one-hidden-layer encoder and decoder."""
    enc_params = init_mlp_params([data_dim, hidden_dim, 2 * latent_dim], rng, scale, dtype)
    dec_params = init_mlp_params([latent_dim, hidden_dim, data_dim], rng, scale, dtype)
    return enc_params, dec_params


def mlp(params, inputs):
    """tanh hidden layers and a linear output layer. inputs (..., m) -> (..., n)."""
    hidden = inputs
    for W, b in params[:-1]:
        hidden = affine_tanh(hidden, W, b)
    return affine(hidden, *params[-1])


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


def hidden_dim(dec_params):
    """Hidden units H of the decoder: its first layer's output size."""
    return dec_params[0][0].shape[1]


def params_dtype(params):
    """The dtype the network computes in (that of its first weight matrix)."""
    return params[0][0].dtype
