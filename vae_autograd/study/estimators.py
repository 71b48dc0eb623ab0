"""Score-function (REINFORCE) versus reparameterization gradients of the ELBO (study part 7).

For a fixed minibatch x (M, 784) the variational parameters lam = (mean, log_std), each
(M, D) with D = 2, are the encoder's outputs for those images, then held fixed and
treated as free parameters. The target is the gradient of the mean ELBO

    L(lam) = (1/M) sum_i E_{q(z|x_i)}[log p(x_i, z) - log q(z|x_i)]

with respect to mean and log_std. Image i's parameters enter only its own term, so
every gradient here is reported per image: the gradient of image i's own ELBO, which
is M times the gradient of L (the factor 1/M changes no ratio and no z-score, and
leaving it out keeps the numbers independent of M). A gradient is an (M, 2D) array in
the encoder's output order [d/d mean, d/d log_std]; component (0, 0) is the study's
focus, d ELBO / d mean_1 of image 0.

With z = mean + exp(log_std) * eps, eps ~ N(0, I), and log weight
w = log p(x, z) - log q(z|x), the estimators are

- reparameterization: d w / d lam through z and through q's parameters (autograd).
- score function: w * d log q(z|x) / d lam with z held fixed, where the score is
  (z - mean) / sigma^2 = eps / sigma for the mean and ((z - mean) / sigma)^2 - 1 =
  eps^2 - 1 for log_std. This is the usual REINFORCE form. The exact derivative of
  E_q[f_lam(z)] with f_lam = log p - log q depending on lam has one more term,
  E_q[d f_lam / d lam] = E_q[-score] = 0, because the score has mean zero (the
  derivative of the integral of q, which is 1). Dropping a term with mean zero keeps the
  estimator unbiased.
- score function with a leave-one-out baseline within K draws (score_function_loo_K):
  the draws are taken in groups of K, as a training loop taking K samples per image
  would, and each draw's term is (w - b) * score, where b is the mean log weight of the
  other K - 1 draws of its group. b does not depend on this draw's eps, so
  E[b * score] = E[b] * E[score] = 0 and every term is unbiased. A good b (about the
  ELBO, around -150 nats) removes the large constant part of w; without it, that
  constant part times the score is pure noise. The estimate from one group is the mean
  of its K terms.

All estimators are computed from the same draws eps (common random numbers, which
sharpen the comparison and share the cost). The plain estimators' draws are independent
of one another. The K terms of one group are not: two of them have covariance
g^2 / (K - 1)^2, g the exact gradient, because each one's baseline holds the other's
log weight. So every statistic of a loo_K estimator is computed from its group means,
which are independent, and its variance is reported per draw, K times the variance of a
group mean: an n-draw estimate, for n a multiple of K, has variance (variance per
draw) / n, like the plain estimators, so ratios of variances per draw compare estimators
at equal cost. The exact gradient comes from quadrature on a grid in eps space
(exact_elbo_and_gradient).
"""
import autograd.numpy as anp
import numpy as np
from autograd import make_vjp

from ..core.distributions import diag_gaussian_entropy
from ..core.elbo import joint_log_density, log_q
from ..core.images import check_images
from ..core.logspace import logsumexp
from ..core.model import data_dim, latent_dim
from .grids import latent_grid

GROUP_SIZES = (2, 5, 10)


LOO_PREFIX = "score_function_loo_"


def estimator_names(group_sizes=GROUP_SIZES):
    """The estimators compared, in the order tables and figures list them."""
    return (("score_function",) + tuple(f"{LOO_PREFIX}{k}" for k in group_sizes)
            + ("reparameterization",))


def group_size(name):
    """Draws per group: K for score_function_loo_K, 1 for the plain estimators."""
    return int(name[len(LOO_PREFIX):]) if name.startswith(LOO_PREFIX) else 1


def estimator_label(name):
    """A reader's name for an estimator, with the baseline's K."""
    if name.startswith(LOO_PREFIX):
        return f"score function, leave-one-out baseline within K = {group_size(name)}"
    return {"score_function": "score function", "reparameterization": "reparameterization"}.get(name, name)


def _check_inputs(dec_params, x, mean, log_std):
    check_images(x, data_dim(dec_params))
    expected = (len(x), latent_dim(dec_params))
    if np.shape(mean) != expected or np.shape(log_std) != expected:
        raise ValueError(f"mean and log_std must both be {expected} (one row per image), got "
                         f"{np.shape(mean)} and {np.shape(log_std)}; pass encoder(enc_params, x)")


def _over_chunks(fun, array, chunk_rows):
    """fun over slices of array's first axis, each about chunk_rows network rows, concatenated.

    array: (L, M, D) with M rows per slice element; fun returns a tuple of (l, ...) arrays.
    Chunking bounds memory: one (rows, 784) activation array of 10^6 rows is 3 GB.
    """
    step = max(1, chunk_rows // array.shape[1])
    parts = [fun(array[start:start + step]) for start in range(0, len(array), step)]
    return [anp.concatenate(part) for part in zip(*parts)]


def log_weights_and_reparam_gradients(dec_params, x, mean, log_std, eps):
    """Log weights w (S, M) at z = mean + exp(log_std) * eps and their gradients (S, M, 2D).

    eps: (S, M, D). Each gradient is d w / d lam through z and through log q's
    parameters. lam is broadcast to one copy per sample, and each w depends only on its
    own copy, so the gradient of the sum of all S * M log weights with respect to the
    copies is every sample's own gradient: one backward pass instead of S.
    """
    def log_weights(lam):
        mean_copies, log_std_copies = lam
        z = mean_copies + anp.exp(log_std_copies) * eps
        return joint_log_density(dec_params, x, z) - log_q(mean_copies, log_std_copies, z)

    lam = (np.broadcast_to(mean, eps.shape), np.broadcast_to(log_std, eps.shape))
    vjp, log_w = make_vjp(log_weights)(lam)
    grad_mean, grad_log_std = vjp(np.ones_like(log_w))
    return log_w, np.concatenate([grad_mean, grad_log_std], axis=-1)


def score(mean, log_std, eps):
    """d log q(z|x) / d lam at z = mean + exp(log_std) * eps, with z held fixed: (S, M, 2D).

    For the mean it is (z - mean) / sigma^2 = eps / sigma. For log_std it is
    ((z - mean) / sigma)^2 - 1 = eps^2 - 1.
    """
    return np.concatenate([eps * np.exp(-log_std), eps**2 - 1.0], axis=-1)


def _check_group_sizes(group_sizes):
    if not all(isinstance(k, (int, np.integer)) and k >= 2 for k in group_sizes) \
            or len(set(group_sizes)) != len(group_sizes):
        raise ValueError(f"group_sizes must be distinct integers >= 2 (a leave-one-out baseline needs "
                         f"another draw in the group), got {group_sizes!r}")


def single_sample_estimates(dec_params, x, mean, log_std, rng, num_estimates=10000,
                            group_sizes=GROUP_SIZES, chunk_rows=4000):
    """Per-draw gradient terms of every estimator in estimator_names(group_sizes).

    x (M, 784); mean, log_std (M, D). Returns a dict name -> float64 array. The plain
    estimators give (S, M, 2D) with S = num_estimates: independent single-sample
    estimates. score_function_loo_K gives (S // K * K, M, 2D): the terms of the draws
    that fill whole groups of K consecutive draws, group g being rows g*K .. g*K + K - 1
    (its estimate is their mean; see group_means). All eps are drawn up front, so the
    numbers do not depend on chunk_rows. Costs one forward and one backward pass of the
    decoder per (draw, image): about 3.5 s of CPU for S * M = 10^5.
    """
    _check_inputs(dec_params, x, mean, log_std)
    _check_group_sizes(group_sizes)
    if not (isinstance(num_estimates, (int, np.integer)) and num_estimates >= 2):
        raise ValueError(f"num_estimates must be an integer >= 2 (a variance needs two estimates), "
                         f"got {num_estimates!r}")
    eps = rng.standard_normal((num_estimates,) + np.shape(mean), dtype=np.result_type(mean, np.float32))
    log_w, reparam = _over_chunks(
        lambda eps_chunk: log_weights_and_reparam_gradients(dec_params, x, mean, log_std, eps_chunk),
        eps, chunk_rows)
    log_w = log_w.astype(np.float64)
    score_values = score(np.asarray(mean, np.float64), np.asarray(log_std, np.float64),
                         eps.astype(np.float64))
    estimates = {"score_function": log_w[..., None] * score_values}
    for k in group_sizes:
        used = num_estimates // k * k
        grouped = log_w[:used].reshape((used // k, k) + log_w.shape[1:])  # (groups, K, M)
        leave_one_out = (np.sum(grouped, axis=1, keepdims=True) - grouped) / (k - 1)
        estimates[f"{LOO_PREFIX}{k}"] = ((grouped - leave_one_out).reshape(log_w[:used].shape)[..., None]
                                         * score_values[:used])
    estimates["reparameterization"] = reparam.astype(np.float64)
    return estimates


def group_means(name, terms):
    """The estimator's independent estimates: (S, ...) terms -> (S // K, ...) means of groups of K.

    For the plain estimators (K = 1) the terms themselves.
    """
    k = group_size(name)
    return terms[:len(terms) // k * k].reshape((len(terms) // k, k) + terms.shape[1:]).mean(axis=1)


def _quadrature_rule(halfwidth, spacing):
    """eps_grid (G, D) over [-halfwidth, halfwidth]^2 and N(0, I) weights (G,) summing to 1.

    Normalizing the weights makes the rule exact for constants despite the cut-off
    tails. For a Gaussian times a smooth function, a Riemann sum with spacing h (in
    units of std) has an error of order exp(-2 pi^2 / h^2). At the defaults (+-6 std,
    h = 0.3, 41^2 points) it is about 5e-7 on a gradient of about 1, measured against a
    grid 4x finer and wider.
    """
    eps_grid, _ = latent_grid(-halfwidth, halfwidth, spacing)
    log_weights = -0.5 * np.sum(eps_grid**2, axis=1)
    return eps_grid, np.exp(log_weights - logsumexp(log_weights))


def _log_joint_on_grid(dec_params, x, mean, log_std, eps_grid, chunk_rows):
    """log p(x_i, mean_i + sigma_i * eps_g) at every grid point: (G, M), differentiable."""
    if np.shape(mean)[-1] != eps_grid.shape[1]:
        raise ValueError(f"quadrature needs a {eps_grid.shape[1]}-D latent space, got "
                         f"{np.shape(mean)[-1]}-D; use the Monte Carlo estimates alone")
    z_grid = mean + anp.exp(log_std) * eps_grid[:, None, :]  # (G, M, D)
    [log_joint] = _over_chunks(lambda z: (joint_log_density(dec_params, x, z),), z_grid, chunk_rows)
    return log_joint


def quadrature_elbo(dec_params, x, mean, log_std, halfwidth=6.0, spacing=0.3, chunk_rows=4000):
    """Each image's ELBO E_q[log p(x, z)] + H(q) by quadrature: (M,), in mean's dtype.

    Differentiable in mean and log_std by autograd (the grid is fixed in eps space and
    moves with q), so finite differences or grad of it check exact_elbo_and_gradient.
    """
    _check_inputs(dec_params, x, mean, log_std)
    eps_grid, weights = _quadrature_rule(halfwidth, spacing)
    log_joint = _log_joint_on_grid(dec_params, x, mean, log_std, eps_grid, chunk_rows)
    return anp.dot(weights, log_joint) + diag_gaussian_entropy(log_std)


def exact_elbo_and_gradient(dec_params, x, mean, log_std, halfwidth=6.0, spacing=0.3,
                            chunk_rows=4000):
    """Each image's ELBO (M,) and its gradient (M, 2D) by quadrature, in float64.

    The gradient uses the score form, which needs only forward passes:
    d/d mean E_q[log p] = E_q[log p * eps / sigma],
    d/d log_std E_q[log p] = E_q[log p * (eps^2 - 1)],
    and the entropy adds 1 per log_std. Each image's E_q[log p] is subtracted from log p
    first. In the integral that changes nothing (the score has mean zero), but on the
    grid it removes the rounding error of multiplying weights by -150. The
    reparameterization form, grad of quadrature_elbo, is an independent check.
    """
    _check_inputs(dec_params, x, mean, log_std)
    mean, log_std = np.asarray(mean, np.float64), np.asarray(log_std, np.float64)
    eps_grid, weights = _quadrature_rule(halfwidth, spacing)
    log_joint = _log_joint_on_grid(dec_params, x, mean, log_std, eps_grid, chunk_rows)
    expected_log_joint = np.dot(weights, log_joint)
    centered = log_joint - expected_log_joint
    grad_mean = np.einsum("g,gm,gd->md", weights, centered, eps_grid) * np.exp(-log_std)
    grad_log_std = np.einsum("g,gm,gd->md", weights, centered, eps_grid**2 - 1.0) + 1.0
    return expected_log_joint + diag_gaussian_entropy(log_std), np.concatenate([grad_mean, grad_log_std], axis=-1)
