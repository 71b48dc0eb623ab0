"""Encoder and decoder MLPs of the Kingma & Welling (2013, App. C) VAE (study part 2.3).

Parameters are explicit lists of (W, b) pairs, one per layer, as in autograd's
examples. With the defaults: encoder 784 -> 500 tanh -> 2 + 2, decoder 2 -> 500 tanh -> 784.

The encoder outputs the log standard deviation of q(z|x), not the variance: any real
number is a valid log std, so the network needs no positivity constraint or clipping;
the Gaussian log-density and entropy use log std directly (no log of a number that
can underflow to 0); and one unit of output moves the std by the same factor whether
it is 1 or 0.01, which keeps gradients well scaled as posteriors narrow in training.
"""
import autograd.numpy as anp
from autograd.extend import defvjp, primitive


@primitive
def tanh(a):
    return anp.tanh(a)


# Autograd's stock tanh gradient goes through cosh(a); 1 - tanh^2 reuses the answer.
defvjp(tanh, lambda ans, a: lambda g: g * (1.0 - ans * ans))


@primitive
def affine(inputs, W, b):
    """inputs @ W + b as one taped operation. inputs (..., m), W (m, n), b (n,) -> (..., n).

    Matmul-then-add would be two nodes and a general-purpose unbroadcast of the bias
    gradient; its three vector-Jacobian products are written out below instead. Stacked
    inputs (samples, images, m) go through as one (samples * images, m) product: NumPy's
    matmul would run one small product per sample, 7 to 10 times slower.
    """
    return _unrows(_rows(inputs) @ W + b, inputs)


def _rows(a):
    return anp.reshape(a, (-1, anp.shape(a)[-1]))


def _unrows(rows, like):
    """rows (K, n) back to like's leading shape: (..., n)."""
    return anp.reshape(rows, anp.shape(like)[:-1] + anp.shape(rows)[-1:])


defvjp(affine,
       lambda ans, inputs, W, b: lambda g: _unrows(_rows(g) @ W.T, inputs),
       lambda ans, inputs, W, b: lambda g: _rows(inputs).T @ _rows(g),
       lambda ans, inputs, W, b: lambda g: anp.sum(_rows(g), axis=0))


def init_mlp_params(layer_sizes, rng, scale=0.01, dtype=anp.float32):
    """[(W, b), ...] with W (m, n) and b (n,) drawn from N(0, scale^2)."""
    return [
        ((scale * rng.standard_normal((m, n))).astype(dtype),
         (scale * rng.standard_normal(n)).astype(dtype))
        for m, n in zip(layer_sizes[:-1], layer_sizes[1:])
    ]


def init_vae_params(rng, data_dim=784, hidden_dim=500, latent_dim=2, scale=0.01,
                    dtype=anp.float32):
    """(enc_params, dec_params) for the one-hidden-layer encoder and decoder."""
    enc_params = init_mlp_params([data_dim, hidden_dim, 2 * latent_dim], rng, scale, dtype)
    dec_params = init_mlp_params([latent_dim, hidden_dim, data_dim], rng, scale, dtype)
    return enc_params, dec_params


def mlp(params, inputs):
    """tanh hidden layers and a linear output layer. inputs (..., m) -> (..., n)."""
    hidden = inputs
    for W, b in params[:-1]:
        hidden = tanh(affine(hidden, W, b))
    return affine(hidden, *params[-1])


def encoder(enc_params, x):
    """q(z|x) = N(mean, diag(exp(log_std)^2)). x (..., 784) -> mean, log_std (..., Dz)."""
    out = mlp(enc_params, x)
    latent_dim = out.shape[-1] // 2
    return out[..., :latent_dim], out[..., latent_dim:]


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
