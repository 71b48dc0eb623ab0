"""Diagonal Gaussians and Bernoullis, written by hand (study part 2.2).

Log-densities sum over the last axis and broadcast over the leading ones, so a batch
of images, a batch of latent samples (S, N, D) or a whole latent grid (G, D) goes
through in one call. Samplers draw only from a ``numpy.random.Generator``'s
``standard_normal`` / ``random``. Everything is differentiable by autograd.

Constants are Python floats on purpose: a NumPy float64 scalar such as
``np.log(2 * np.pi)`` would silently upcast float32 arrays to float64.
"""
import autograd.numpy as anp
from autograd.extend import defvjp, primitive

from .logspace import sigmoid, softplus

LOG_2PI = 1.8378770664093453  # log(2 pi)


@primitive
def diag_gaussian_log_density(x, mean, log_std):
    """log N(x; mean, diag(exp(log_std)^2)), summed over the last axis.

    x, mean, log_std: broadcastable arrays (..., D). Returns (...).
    A primitive with its exact gradients below: one node on autograd's tape instead of
    ten, which matters in a training step whose other arrays are small.
    """
    return anp.sum(-0.5 * _where_apart(x, mean, (x - mean) * anp.exp(-log_std))**2 - log_std - 0.5 * LOG_2PI,
                   axis=-1)


def _where_apart(x, mean, value):
    """value where x != mean, exactly 0 where x == mean.

    A standardized distance (x - mean) / std^k is 0 at x == mean however small the std;
    computed as (x - mean) * exp(-k log_std), it is 0 * inf = nan once exp overflows
    (log_std below -44 in float32), where the density is finite (-log_std - log(2 pi) / 2).
    """
    return anp.where(x == mean, 0.0, value)


def _unbroadcast(g, shape):
    """Sum g over the axes that broadcasting added to an array of the given shape."""
    g = anp.sum(g, axis=tuple(range(anp.ndim(g) - len(shape)))) if anp.ndim(g) > len(shape) else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and anp.shape(g)[i] != 1)
    return anp.sum(g, axis=axes, keepdims=True) if axes else g


def _gaussian_vjp(argnum):
    # d/dx = -(x - mean) / std^2, d/dmean = (x - mean) / std^2, d/dlog_std = ((x - mean) / std)^2 - 1
    def vjp_maker(ans, x, mean, log_std):
        inv_var = anp.exp(-2.0 * log_std)
        def vjp(g):
            g = anp.expand_dims(g, -1)
            if argnum == 2:
                full = g * (_where_apart(x, mean, (x - mean) ** 2 * inv_var) - 1.0)
            else:
                full = _where_apart(x, mean, g * (x - mean) * inv_var * (-1.0 if argnum == 0 else 1.0))
            return _unbroadcast(full, anp.shape((x, mean, log_std)[argnum]))
        return vjp
    return vjp_maker


defvjp(diag_gaussian_log_density, _gaussian_vjp(0), _gaussian_vjp(1), _gaussian_vjp(2))


def diag_gaussian_entropy(log_std):
    """H(N(mean, diag(exp(log_std)^2))) = sum(log_std) + D/2 (1 + log 2 pi). (..., D) -> (...)."""
    return anp.sum(log_std, axis=-1) + 0.5 * anp.shape(log_std)[-1] * (1.0 + LOG_2PI)


def sample_diag_gaussian(mean, log_std, rng, num_samples=None):
    """Reparameterized draw mean + exp(log_std) * eps, eps ~ N(0, I).

    mean, log_std: (..., D). Returns (..., D), or (num_samples, ..., D) if given.
    Gradients flow to mean and log_std through the deterministic transform.
    """
    shape = anp.broadcast(anp.zeros(anp.shape(mean)), anp.zeros(anp.shape(log_std))).shape
    if num_samples is not None:
        shape = (num_samples,) + shape
    eps = rng.standard_normal(shape, dtype=anp.result_type(mean, log_std))
    return mean + anp.exp(log_std) * eps


@primitive
def bernoulli_log_density(x, logits):
    """log Bernoulli(x; sigmoid(logits)), summed over the last axis.

    log p(x) = x * logits - softplus(logits): finite and exact (to rounding of the
    larger term) for |logits| up to 1e4 and beyond, unlike log(sigmoid(logits)).
    x, logits: broadcastable (..., D). A primitive: its gradient x - sigmoid(logits)
    is one expression instead of a chain of five taped operations.
    """
    return anp.sum(x * logits - softplus.fun(logits), axis=-1)


defvjp(bernoulli_log_density,
       lambda ans, x, logits: lambda g: _unbroadcast(anp.expand_dims(g, -1) * logits, anp.shape(x)),
       lambda ans, x, logits: lambda g: _unbroadcast(
           anp.expand_dims(g, -1) * (x - anp.exp(logits - softplus.fun(logits))), anp.shape(logits)))


def sample_bernoulli(logits, rng):
    """Binary draws x ~ Bernoulli(sigmoid(logits)) with the dtype of logits."""
    logits = anp.asarray(logits)
    u = rng.random(logits.shape, dtype=anp.result_type(logits, anp.float32))
    return (u < sigmoid(logits)).astype(logits.dtype)
