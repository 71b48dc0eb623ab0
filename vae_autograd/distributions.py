"""Diagonal Gaussians and Bernoullis, written by hand (study part 2.2).

Log-densities sum over the last axis and broadcast over the leading ones, so a batch
of images, a batch of latent samples (S, N, D) or a whole latent grid (G, D) goes
through in one call. Samplers draw only from a ``numpy.random.Generator``'s
``standard_normal`` / ``random``. Everything is differentiable by autograd.

Constants are Python floats on purpose: a NumPy float64 scalar such as
``np.log(2 * np.pi)`` would silently upcast float32 arrays to float64.
"""
import autograd.numpy as np
from autograd.extend import defvjp, primitive

LOG_2PI = 1.8378770664093453  # log(2 pi)


@primitive
def softplus(a):
    """log(1 + exp(a)), exact for any finite a: max(a, 0) + log1p(exp(-|a|))."""
    return np.maximum(a, 0.0) + np.log1p(np.exp(-np.abs(a)))


# d softplus / da = sigmoid(a) = exp(a - softplus(a)); reusing the answer costs one exp.
defvjp(softplus, lambda ans, a: lambda g: g * np.exp(a - ans))


def sigmoid(a):
    """1 / (1 + exp(-a)) without overflow: exp(-softplus(-a))."""
    return np.exp(-softplus(-a))


@primitive
def diag_gaussian_log_density(x, mean, log_std):
    """log N(x; mean, diag(exp(log_std)^2)), summed over the last axis.

    x, mean, log_std: broadcastable arrays (..., D). Returns (...).
    A primitive with its exact gradients below: one node on autograd's tape instead of
    ten, which matters in a training step whose other arrays are small.
    """
    scaled = (x - mean) * np.exp(-log_std)
    return np.sum(-0.5 * scaled**2 - log_std - 0.5 * LOG_2PI, axis=-1)


def _unbroadcast(g, shape):
    """Sum g over the axes that broadcasting added to an array of the given shape."""
    g = np.sum(g, axis=tuple(range(np.ndim(g) - len(shape)))) if np.ndim(g) > len(shape) else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and np.shape(g)[i] != 1)
    return np.sum(g, axis=axes, keepdims=True) if axes else g


def _gaussian_vjp(argnum):
    # d/dx = -(x - mean) / std^2, d/dmean = (x - mean) / std^2, d/dlog_std = ((x - mean) / std)^2 - 1
    def vjp_maker(ans, x, mean, log_std):
        inv_var = np.exp(-2.0 * log_std)
        def vjp(g):
            g = np.expand_dims(g, -1)
            if argnum == 2:
                full = g * ((x - mean) ** 2 * inv_var - 1.0)
            else:
                full = g * (x - mean) * inv_var * (-1.0 if argnum == 0 else 1.0)
            return _unbroadcast(full, np.shape((x, mean, log_std)[argnum]))
        return vjp
    return vjp_maker


defvjp(diag_gaussian_log_density, _gaussian_vjp(0), _gaussian_vjp(1), _gaussian_vjp(2))


def sample_diag_gaussian(mean, log_std, rng, num_samples=None):
    """Reparameterized draw mean + exp(log_std) * eps, eps ~ N(0, I).

    mean, log_std: (..., D). Returns (..., D), or (num_samples, ..., D) if given.
    Gradients flow to mean and log_std through the deterministic transform.
    """
    shape = np.broadcast(np.zeros(np.shape(mean)), np.zeros(np.shape(log_std))).shape
    if num_samples is not None:
        shape = (num_samples,) + shape
    eps = rng.standard_normal(shape, dtype=np.result_type(mean, log_std))
    return mean + np.exp(log_std) * eps


@primitive
def bernoulli_log_density(x, logits):
    """log Bernoulli(x; sigmoid(logits)), summed over the last axis.

    log p(x) = x * logits - softplus(logits): finite and exact (to rounding of the
    larger term) for |logits| up to 1e4 and beyond, unlike log(sigmoid(logits)).
    x, logits: broadcastable (..., D). A primitive: its gradient x - sigmoid(logits)
    is one expression instead of a chain of five taped operations.
    """
    return np.sum(x * logits - softplus.fun(logits), axis=-1)


defvjp(bernoulli_log_density,
       lambda ans, x, logits: lambda g: _unbroadcast(np.expand_dims(g, -1) * logits, np.shape(x)),
       lambda ans, x, logits: lambda g: _unbroadcast(
           np.expand_dims(g, -1) * (x - np.exp(logits - softplus.fun(logits))), np.shape(logits)))


def sample_bernoulli(logits, rng):
    """Binary draws x ~ Bernoulli(sigmoid(logits)) with the dtype of logits."""
    logits = np.asarray(logits)
    u = rng.random(logits.shape, dtype=np.result_type(logits, np.float32))
    return (u < sigmoid(logits)).astype(logits.dtype)
