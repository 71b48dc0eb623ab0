"""Diagonal Gaussians and Bernoullis, written by hand (study part 2.2).

Log-densities sum over the last axis and broadcast over the leading ones, so a batch
of images, a batch of latent samples (S, N, D) or a whole latent grid (G, D) goes
through in one call. Samplers draw only from a ``numpy.random.Generator``'s
``standard_normal`` / ``random``. Everything is differentiable by autograd.

Constants are Python floats on purpose: a NumPy float64 scalar such as
``np.log(2 * np.pi)`` would silently upcast float32 arrays to float64.
"""
import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import getval

from .logspace import sigmoid, softplus

LOG_2PI = 1.8378770664093453  # log(2 pi)


@primitive
def diag_gaussian_log_density(x, mean, log_std):
    """log N(x; mean, diag(exp(log_std)^2)), summed over the last axis.

    x, mean, log_std: broadcastable arrays (..., D). Returns (...).
    A primitive with its exact gradients below: one node on autograd's tape instead of
    ten, which matters in a training step whose other arrays are small.
    """
    return np.sum(-0.5 * _where_apart(x, mean, (x - mean) * np.exp(-log_std))**2 - log_std - 0.5 * LOG_2PI,
                  axis=-1)


@primitive
def diag_gaussian_log_density_packed(x, params):
    """diag_gaussian_log_density(x, *split_mean_log_std(params)): params (..., 2D) as the encoder outputs
    them. The training step's log q(z|x): splitting params on autograd's tape would take two nodes."""
    return diag_gaussian_log_density.fun(x, *split_mean_log_std(params))


def split_mean_log_std(params):
    """mean, log_std: the halves of a diagonal Gaussian's parameters packed along the last axis (..., 2D)."""
    half = np.shape(params)[-1] // 2
    return params[..., :half], params[..., half:]


def _where_apart(x, mean, value):
    """value where x != mean, exactly 0 where x == mean.

    A standardized distance (x - mean) / std^k is 0 at x == mean however small the std;
    computed as (x - mean) * exp(-k log_std), it is 0 * inf = nan once exp overflows
    (log_std below -44 in float32), where the density is finite (-log_std - log(2 pi) / 2).
    """
    return np.where(x == mean, 0.0, value)


def _unbroadcast(g, shape):
    """Sum g over the axes that broadcasting added to an array of the given shape."""
    if np.shape(g) == shape:
        return g
    g = g.sum(axis=tuple(range(np.ndim(g) - len(shape)))) if np.ndim(g) > len(shape) else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and np.shape(g)[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _gaussian_grads(g, x, mean, log_std):
    """The gradients of sum(g * diag_gaussian_log_density(x, mean, log_std)) at x, mean, log_std,
    before unbroadcasting: -(x - mean) / std^2, (x - mean) / std^2 and ((x - mean) / std)^2 - 1."""
    g, diff, at_mean = g[..., None], x - mean, x == mean  # at_mean: see _where_apart
    inv_var = np.exp(-2.0 * log_std)
    scaled = g * diff * inv_var
    return (np.where(at_mean, 0.0, -scaled), np.where(at_mean, 0.0, scaled),
            g * (np.where(at_mean, 0.0, diff**2 * inv_var) - 1.0))


def _gaussian_vjp(argnums, ans, args, kwargs):
    def vjp(g):
        grads = _gaussian_grads(g, *args)
        return [_unbroadcast(grads[argnum], np.shape(args[argnum])) for argnum in argnums]
    return vjp


def _packed_gaussian_vjp(argnums, ans, args, kwargs):
    x, params = args

    def vjp(g):
        d_x, d_mean, d_log_std = _gaussian_grads(g, x, *split_mean_log_std(params))
        grads = d_x, np.concatenate([d_mean, d_log_std], axis=-1)
        return [_unbroadcast(grads[argnum], np.shape(args[argnum])) for argnum in argnums]
    return vjp


defvjp_argnums(diag_gaussian_log_density, _gaussian_vjp)
defvjp_argnums(diag_gaussian_log_density_packed, _packed_gaussian_vjp)


def diag_gaussian_entropy(log_std):
    """H(N(mean, diag(exp(log_std)^2))) = sum(log_std) + D/2 (1 + log 2 pi). (..., D) -> (...)."""
    return anp.sum(log_std, axis=-1) + 0.5 * anp.shape(log_std)[-1] * (1.0 + LOG_2PI)


def sample_diag_gaussian(mean, log_std, rng, num_samples=None):
    """Reparameterized draw mean + exp(log_std) * eps, eps ~ N(0, I).

    mean, log_std: (..., D). Returns (..., D), or (num_samples, ..., D) if given.
    Gradients flow to mean and log_std through the deterministic transform.
    """
    shape = np.broadcast_shapes(np.shape(mean), np.shape(log_std))
    dtype = np.result_type(getval(mean), getval(log_std))
    return _reparameterize(mean, log_std, _standard_normal(rng, shape, num_samples, dtype))


def sample_diag_gaussian_packed(params, rng, num_samples=None):
    """sample_diag_gaussian(*split_mean_log_std(params), rng, num_samples), the same draws: params (..., 2D)."""
    shape = np.shape(split_mean_log_std(getval(params))[0])
    return _reparameterize_packed(params, _standard_normal(rng, shape, num_samples, np.result_type(getval(params))))


def _standard_normal(rng, shape, num_samples, dtype):
    """eps ~ N(0, I) of the given shape, or (num_samples,) + shape."""
    return rng.standard_normal(shape if num_samples is None else (num_samples,) + shape, dtype=dtype)


@primitive
def _reparameterize(mean, log_std, eps):
    """mean + exp(log_std) * eps as one node on autograd's tape instead of three."""
    return mean + np.exp(log_std) * eps


@primitive
def _reparameterize_packed(params, eps):
    return _reparameterize.fun(*split_mean_log_std(params), eps)


def _reparameterize_grads(g, mean, log_std, eps):
    """The gradients of sum(g * (mean + exp(log_std) * eps)) at mean and log_std, in their shapes."""
    return _unbroadcast(g, np.shape(mean)), np.exp(log_std) * _unbroadcast(g * eps, np.shape(log_std))


defvjp_argnums(_reparameterize, lambda argnums, z, args, kwargs: lambda g: [
    _reparameterize_grads(g, *args)[argnum] for argnum in argnums])
defvjp(_reparameterize_packed, lambda z, params, eps: lambda g: np.concatenate(
    _reparameterize_grads(g, *split_mean_log_std(params), eps), axis=-1))


def bernoulli_log_density(x, logits):
    """log Bernoulli(x; sigmoid(logits)), summed over the last axis.

    log p(x) = x * logits - softplus(logits): finite and exact (to rounding of the
    larger term) for |logits| up to 1e4 and beyond, unlike log(sigmoid(logits)).
    x, logits: broadcastable (..., D). Its gradient x - sigmoid(logits) is one expression
    instead of a chain of five taped operations; sigmoid(logits) = exp(logits -
    softplus(logits)) reuses the softplus of the density, computed once, here.
    """
    return _bernoulli_log_density(x, logits, softplus.fun(getval(logits)))


@primitive
def _bernoulli_log_density(x, logits, softplus_logits):
    """bernoulli_log_density given softplus(logits): a constant to autograd, as the gradients
    below account for its dependence on logits."""
    terms = x * logits
    return np.sum(into(np.subtract, terms, softplus_logits, terms), axis=-1)


def _bernoulli_logits_vjp(ans, x, logits, softplus_logits):
    def vjp(g):
        sigmoid = logits - softplus_logits
        np.exp(sigmoid, out=sigmoid)
        full = into(np.subtract, x, sigmoid, sigmoid)  # x - sigmoid(logits)
        return _unbroadcast(into(np.multiply, g[..., None], full, full), np.shape(logits))
    return vjp


def into(ufunc, a, b, temporary):
    """ufunc(a, b), written into temporary (a or b, a new array no one else holds) where that keeps
    the result's dtype and shape: the training step's largest arrays take one allocation less."""
    arrays = isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    if arrays and np.result_type(a, b) == temporary.dtype and a.ndim <= temporary.ndim >= b.ndim:
        try:
            return ufunc(a, b, out=temporary)
        except ValueError:  # the result is larger than temporary (broadcast)
            pass
    return ufunc(a, b)


defvjp(_bernoulli_log_density,
       lambda ans, x, logits, softplus_logits: lambda g: _unbroadcast(g[..., None] * logits, np.shape(x)),
       _bernoulli_logits_vjp)


def sample_bernoulli(logits, rng):
    """Binary draws x ~ Bernoulli(sigmoid(logits)) with the dtype of logits."""
    logits = anp.asarray(logits)
    u = rng.random(logits.shape, dtype=anp.result_type(logits, anp.float32))
    return (u < sigmoid(logits)).astype(logits.dtype)
