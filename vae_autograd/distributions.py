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


def diag_gaussian_log_density(x, mean, log_std):
    """log N(x; mean, diag(exp(log_std)^2)), summed over the last axis.

    x, mean, log_std: broadcastable arrays (..., D). Returns (...).
    """
    scaled = (x - mean) * np.exp(-log_std)
    return np.sum(-0.5 * scaled**2 - log_std - 0.5 * LOG_2PI, axis=-1)


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


def bernoulli_log_density(x, logits):
    """log Bernoulli(x; sigmoid(logits)), summed over the last axis.

    log p(x) = x * logits - softplus(logits): exact and finite for |logits| up to
    1e4 and beyond, unlike log(sigmoid(logits)). x, logits: broadcastable (..., D).
    """
    return np.sum(x * logits - softplus(logits), axis=-1)


def sample_bernoulli(logits, rng):
    """Binary draws x ~ Bernoulli(sigmoid(logits)) with the dtype of logits."""
    logits = np.asarray(logits)
    u = rng.random(logits.shape, dtype=np.result_type(logits, np.float32))
    return (u < sigmoid(logits)).astype(logits.dtype)
