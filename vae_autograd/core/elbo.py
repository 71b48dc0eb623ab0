"""The Monte Carlo ELBO with the reparameterization trick (study part 2.4).

No closed-form KL: every term is a log-density evaluated at sampled z, so the same
code serves any prior or posterior family. Vectorized over samples and examples.
"""
import autograd.numpy as anp
import numpy as np

from .distributions import LOG_2PI, bernoulli_log_density, diag_gaussian_log_density, sample_diag_gaussian
from .images import check_images
from .model import data_dim, decoder, encoder, latent_dim, params_dtype


def log_prior(z):
    """log N(z; 0, I). z (..., Dz) -> (...)."""
    # Written out rather than via diag_gaussian_log_density(z, 0.0, 0.0): exp(-0.0) is a
    # NumPy float64 scalar, which would upcast float32 z.
    return -0.5 * anp.sum(z**2, axis=-1) - 0.5 * z.shape[-1] * LOG_2PI


def log_likelihood(dec_params, x, z):
    """log p(x|z) under the decoder's Bernoullis. x (N, 784), z (..., N, Dz) -> (..., N)."""
    return bernoulli_log_density(x, decoder(dec_params, z))


def joint_log_density(dec_params, x, z):
    """log p(x, z) = log p(x|z) + log p(z). x (N, 784), z (..., N, Dz) -> (..., N)."""
    return log_likelihood(dec_params, x, z) + log_prior(z)


def log_q(mean, log_std, z):
    """log q(z|x) for the encoder's Gaussian. mean, log_std (N, Dz), z (..., N, Dz) -> (..., N)."""
    return diag_gaussian_log_density(z, mean, log_std)


def log_importance_weights(enc_params, dec_params, x, rng, num_samples=1, batch_size=None, proposal=None):
    """log p(x, z_s) - log q(z_s) for z_s ~ q, reparameterized; q is the encoder's q(z|x).

    x (N, 784) binary (images.check_images) -> (num_samples, N). Their mean is the ELBO
    estimate; their logsumexp minus log(num_samples) is the importance-weighted (IWAE) bound.
    proposal: optional (mean, log_std) (N, Dz), a Gaussian per image to use as q instead
    of the encoder's (enc_params is then unused). With batch_size, the images go through
    in blocks of that many, so memory stays bounded for large sets (the draws are the
    same as for one block at a time).
    """
    blocks = log_importance_weight_chunks(enc_params, dec_params, x, rng, num_samples, batch_size, proposal=proposal)
    return anp.concatenate([log_w for _, log_w in blocks], axis=1)  # one chunk per block: all samples


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
    batch_size = batch_size or len(x)
    samples_per_chunk = samples_per_chunk or num_samples
    for start in range(0, len(x), batch_size):
        rows = slice(start, start + batch_size)
        mean, log_std = encoder(enc_params, x[rows]) if proposal is None else (proposal[0][rows], proposal[1][rows])
        for first in range(0, num_samples, samples_per_chunk):
            count = min(samples_per_chunk, num_samples - first)
            yield slice(start, min(start + batch_size, len(x))), _proposal_log_weights(dec_params, x[rows], mean,
                                                                                        log_std, rng, count)


def _proposal_log_weights(dec_params, x, mean, log_std, rng, num_samples):
    """log_importance_weights of one block under the proposal N(mean, exp(log_std)^2)."""
    z = sample_diag_gaussian(mean, log_std, rng, num_samples)
    return joint_log_density(dec_params, x, z) - log_q(mean, log_std, z)


def _log_weights(enc_params, dec_params, x, rng, num_samples):
    """log_importance_weights of one block under the encoder's q(z|x), without the image check."""
    return _proposal_log_weights(dec_params, x, *encoder(enc_params, x), rng, num_samples)


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
    log_w = _log_weights(enc_params, dec_params, x, rng, num_samples)
    # sum / size rather than anp.mean: autograd's gradient of mean divides by a NumPy int64,
    # which under NumPy 2 turns the whole float32 backward pass into float64.
    return anp.sum(log_w) / log_w.size
