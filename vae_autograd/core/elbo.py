"""The Monte Carlo ELBO with the reparameterization trick (study part 2.4).

No closed-form KL: every term is a log-density evaluated at sampled z, so the same
code serves any prior or posterior family. Vectorized over samples and examples.
"""
import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, defvjp_argnums, primitive

from .distributions import (
    LOG_2PI,
    bernoulli_log_density,
    diag_gaussian_log_density,
    diag_gaussian_log_density_packed,
    sample_diag_gaussian_packed,
)
from .images import check_images
from .model import data_dim, decoder, latent_dim, mlp, params_dtype


@primitive
def log_prior(z):
    """log N(z; 0, I). z (..., Dz) -> (...).

    A primitive with its gradient -z: one node on autograd's tape instead of four.
    """
    # Written out rather than via diag_gaussian_log_density(z, 0.0, 0.0): exp(-0.0) is a
    # NumPy float64 scalar, which would upcast float32 z.
    return -0.5 * np.sum(z**2, axis=-1) - 0.5 * np.shape(z)[-1] * LOG_2PI


defvjp(log_prior, lambda ans, z: lambda g: -g[..., None] * z)


def log_likelihood(dec_params, x, z):
    """log p(x|z) under the decoder's Bernoullis. x (N, 784), z (..., N, Dz) -> (..., N)."""
    return bernoulli_log_density(x, decoder(dec_params, z))


def joint_log_density(dec_params, x, z):
    """log p(x, z) = log p(x|z) + log p(z). x (N, 784), z (..., N, Dz) -> (..., N)."""
    return log_likelihood(dec_params, x, z) + log_prior(z)


def log_q(mean, log_std, z):
    """log q(z|x) for the encoder's Gaussian. mean, log_std (N, Dz), z (..., N, Dz) -> (..., N)."""
    return diag_gaussian_log_density(z, mean, log_std)


def log_importance_weights(enc_params, dec_params, x, rng, num_samples=1, batch_size=None, proposal=None,
                           samples_per_chunk=None):
    """log p(x, z_s) - log q(z_s) for z_s ~ q, reparameterized; q is the encoder's q(z|x).

    x (N, 784) binary (images.check_images) -> (num_samples, N). Their mean is the ELBO
    estimate; their logsumexp minus log(num_samples) is the importance-weighted (IWAE) bound.
    proposal: optional (mean, log_std) (N, Dz), a Gaussian per image to use as q instead
    of the encoder's (enc_params is then unused). With batch_size, the images go through
    in blocks of that many, so memory stays bounded for large sets (the draws are the
    same as for one block at a time); with samples_per_chunk, a block's draws are decoded that
    many at a time (log_importance_weight_chunks: the same numbers, in arrays small enough to
    stay in cache).
    """
    blocks = {}
    for rows, log_w in log_importance_weight_chunks(enc_params, dec_params, x, rng, num_samples, batch_size,
                                                    samples_per_chunk, proposal):
        blocks.setdefault(rows.start, []).append(log_w)
    return anp.concatenate([anp.concatenate(chunks) for chunks in blocks.values()], axis=1)


def log_importance_weight_chunks(enc_params, dec_params, x, rng, num_samples=1, batch_size=None,
                                 samples_per_chunk=None, proposal=None):
    """log_importance_weights in pieces: yields (rows, log_w), a slice of the images and their
    weights (k, len(rows)) for the next k <= samples_per_chunk of their num_samples draws.

    The pieces come in the order of the draws (image blocks in turn; within one, the samples in
    turn), and a draw of (a + b, n, Dz) normals equals one of (a, n, Dz) followed by one of
    (b, n, Dz): the weights are the very same numbers as log_importance_weights', for any
    samples_per_chunk, while memory no longer grows with num_samples.
    """
    # In the model's dtype: float64, int or list images must draw the same noise as float32 ones.
    x = check_images(x, data_dim(dec_params)).astype(params_dtype(dec_params), copy=False)
    check_num_samples(num_samples)
    if proposal is not None:
        proposal = [np.asarray(a, params_dtype(dec_params)) for a in proposal]
        if any(a.shape != (len(x), latent_dim(dec_params)) for a in proposal):
            raise ValueError(f"proposal mean and log_std must be ({len(x)}, {latent_dim(dec_params)}), one "
                             f"Gaussian per image; got {[a.shape for a in proposal]}")
        proposal = np.concatenate(proposal, axis=-1)  # packed as the encoder outputs mean and log_std
    batch_size = batch_size or len(x)
    samples_per_chunk = samples_per_chunk or num_samples
    for start in range(0, len(x), batch_size):
        rows = slice(start, start + batch_size)
        q = mlp(enc_params, x[rows]) if proposal is None else proposal[rows]
        for first in range(0, num_samples, samples_per_chunk):
            count = min(samples_per_chunk, num_samples - first)
            log_px, log_pz, log_qz = _log_densities(dec_params, x[rows], q, rng, count)
            yield slice(start, min(start + batch_size, len(x))), log_px + log_pz - log_qz


def _log_densities(dec_params, x, q, rng, num_samples):
    """log p(x|z), log p(z) and log q(z|x) at z ~ q, reparameterized, (num_samples, N) each.

    q (N, 2 Dz): the mean and log std of q(z|x) side by side, as the encoder outputs them. They
    go to the sampler and to log q whole: split on autograd's tape, they would be two more
    nodes in every training step.
    """
    z = sample_diag_gaussian_packed(q, rng, num_samples)
    return log_likelihood(dec_params, x, z), log_prior(z), diag_gaussian_log_density_packed(z, q)


def check_num_samples(num_samples, at_least=1, why="an average needs one"):
    """A ValueError naming the rule unless num_samples is an integer >= at_least."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < at_least:
        raise ValueError(f"num_samples must be an integer >= {at_least} ({why}), got {num_samples!r}")


def elbo(enc_params, dec_params, x, rng, num_samples=1):
    """Monte Carlo estimate of the mean ELBO per image over the minibatch x (N, 784), binary."""
    x = check_images(x, data_dim(dec_params)).astype(params_dtype(dec_params), copy=False)
    check_num_samples(num_samples)
    return elbo_unchecked(enc_params, dec_params, x, rng, num_samples)


def elbo_unchecked(enc_params, dec_params, x, rng, num_samples=1):
    """elbo without the image check: for a loop over minibatches of data checked once."""
    return _mean_log_weight(*_log_densities(dec_params, x, mlp(enc_params, x), rng, num_samples))


@primitive
def _mean_log_weight(log_px, log_pz, log_qz):
    """The mean of log w = log p(x|z) + log p(z) - log q(z|x): the ELBO estimate from its log densities.

    One node on autograd's tape instead of four (add, subtract, sum, divide). Its gradient is
    1 / size for log p(x|z) and log p(z), -1 / size for log q, in their dtype (autograd's
    anp.mean divides by a NumPy int64, which under NumPy 2 makes a float32 backward pass float64).
    """
    log_w = log_px + log_pz - log_qz
    return np.sum(log_w) / log_w.size


def _mean_log_weight_vjp(argnums, ans, args, kwargs):
    def vjp(g):
        per_weight = np.full(np.shape(args[0]), g / np.size(args[0]))
        return [-per_weight if argnum == 2 else per_weight for argnum in argnums]
    return vjp


defvjp_argnums(_mean_log_weight, _mean_log_weight_vjp)
