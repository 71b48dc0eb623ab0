"""Tests for vae_autograd.core.elbo (the model it runs is tests/helpers.tiny_model).

The ELBO is checked three independent ways on a tiny float64 model (6 pixels,
5 hidden units, 2 latents) where 2-D quadrature is exact to ~1e-12:
  * the Monte Carlo ELBO (200,000 samples) against E_q[log p(x|z)] by quadrature
    minus the closed-form KL(q || N(0, I)), within 4 Monte Carlo standard errors;
  * ELBO <= log p(x), with log p(x) by quadrature over the prior;
  * the importance-weighted estimate log mean exp(log w) between the ELBO and log p(x).
Monte Carlo tolerances are 4 standard errors (two-sided false-alarm rate ~6e-5
per check for a correct implementation); all seeds are fixed.
"""
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from autograd import grad
from autograd.test_util import check_grads

from tests.helpers import all_arrays, binary_images, relu_vae, tiny_model
from vae_autograd.core.distributions import LOG_2PI
from vae_autograd.core.elbo import elbo, joint_log_density, log_importance_weights, log_likelihood, log_prior, log_q
from vae_autograd.core.fast_grad import value_and_grad_per_array
from vae_autograd.core.model import ReluLayer, decoder, encoder, init_vae_params, layer_like

LOG2 = np.log(2.0)


def test_log_prior_matches_scipy_and_keeps_float32():
    z = np.random.default_rng(5).normal(0, 3, (4, 6, 2))
    got = log_prior(z)
    assert got.shape == (4, 6)
    mvn = scipy.stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z)
    np.testing.assert_allclose(got, mvn, rtol=1e-13)
    np.testing.assert_allclose(got, scipy.stats.norm.logpdf(z).sum(-1), rtol=1e-13)
    got32 = log_prior(z.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, mvn, rtol=1e-6)


def test_log_prior_gradient_is_minus_z():
    rng = np.random.default_rng(5)
    z, w = rng.normal(0, 3, (4, 6, 2)), rng.normal(size=(4, 6))
    np.testing.assert_allclose(grad(lambda z: anp.sum(w * log_prior(z)))(z), -w[..., None] * z, rtol=1e-15)
    np.random.seed(0)  # check_grads draws its random directions from np.random
    check_grads(log_prior, modes=["rev"], order=1)(z)
    assert grad(lambda z: anp.sum(log_prior(z)))(z.astype(np.float32)).dtype == np.float32


def test_log_q_log_likelihood_and_joint():
    enc, dec, x = tiny_model(n=4)
    mean, log_std = encoder(enc, x)
    z = np.random.default_rng(6).normal(size=(3, 4, 2))
    lq = log_q(mean, log_std, z)
    assert lq.shape == (3, 4)
    ref = scipy.stats.norm.logpdf(z, mean, np.exp(log_std)).sum(-1)
    np.testing.assert_allclose(lq, ref, rtol=1e-13)

    ll = log_likelihood(dec, x, z)
    assert ll.shape == (3, 4)
    p = scipy.special.expit(decoder(dec, z))
    np.testing.assert_allclose(ll, scipy.stats.bernoulli.logpmf(x, p).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(joint_log_density(dec, x, z), ll + log_prior(z), rtol=1e-15)


def test_log_importance_weights_shape():
    enc, dec, x = tiny_model(n=4)
    assert log_importance_weights(enc, dec, x, np.random.default_rng(0)).shape == (1, 4)
    assert log_importance_weights(enc, dec, x, np.random.default_rng(0), num_samples=7).shape == (7, 4)
    enc, dec = init_vae_params(np.random.default_rng(0))
    xs = binary_images(np.random.default_rng(1), 3)
    lw = log_importance_weights(enc, dec, xs, np.random.default_rng(0), num_samples=2)
    assert lw.shape == (2, 3) and lw.dtype == np.float32


def test_elbo_at_init_is_about_minus_784_log_2():
    """With weights and biases ~ N(0, 0.01^2), every decoder logit is ~0.01 in size, so
    log p(x|z) = sum_d [x_d l_d - softplus(l_d)] = -784 log 2 + sum_d (x_d - 1/2) l_d
    + O(784 l^2 / 8): the random-sign sum is ~0.5 * 0.01 * sqrt(784) ~ 0.14 nats and
    the square term ~0.01. The encoder outputs mean, log_std ~ 0.05, so q(z|x) is
    within ~0.005 nats (KL) of the prior, and log p(z) - log q(z|x) averages to -KL.
    Hence ELBO = -784 log 2 +- ~0.2; a 1-nat band is 5x that and fails if any term
    (e.g. a log 2 per pixel, or a missing log-prior) is off."""
    rng = np.random.default_rng(7)
    enc, dec = init_vae_params(rng, scale=0.01)
    x = binary_images(rng, 20)
    value = elbo(enc, dec, x, np.random.default_rng(8), num_samples=10)
    assert value.dtype == np.float32
    assert abs(float(value) + 784 * LOG2) < 1.0


def gauss_grid(lo, hi, k):
    t = np.linspace(lo, hi, k)
    h = t[1] - t[0]
    g = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    return g, h


def expected_loglik_quadrature(dec, x, mean, log_std, k):
    """E_q[log p(x|z)] per example by the trapezoid rule in standardized coordinates
    eps in [-8, 8]^2 (Gaussian mass outside ~1e-15); reference log-likelihood from
    SciPy. Returns (expectation (N,), total quadrature weight)."""
    eps, h = gauss_grid(-8.0, 8.0, k)
    w = np.exp(scipy.stats.norm.logpdf(eps).sum(-1)) * h * h          # (G,)
    z = mean + np.exp(log_std) * eps[:, None, :]                       # (G, N, 2)
    ll = scipy.stats.bernoulli.logpmf(x, scipy.special.expit(decoder(dec, z))).sum(-1)
    return (w[:, None] * ll).sum(0), w.sum()


def log_evidence_quadrature(dec, x, k):
    """log p(x) = log of the integral of p(x|z) N(z; 0, I) over z in [-10, 10]^2 (trapezoid)."""
    z, h = gauss_grid(-10.0, 10.0, k)
    lj = (scipy.stats.bernoulli.logpmf(x, scipy.special.expit(decoder(dec, z[:, None, :]))).sum(-1)
          + scipy.stats.norm.logpdf(z).sum(-1)[:, None])
    return scipy.special.logsumexp(lj, axis=0) + 2 * np.log(h)


def test_elbo_matches_quadrature_and_bounds_log_evidence():
    enc, dec, x = tiny_model()
    mean, log_std = encoder(enc, x)
    # Exact ELBO = E_q[log p(x|z)] - KL(q || N(0, I)), the KL in closed form.
    kl = 0.5 * np.sum(mean**2 + np.exp(2 * log_std) - 1 - 2 * log_std, axis=-1)
    e_ll, wsum = expected_loglik_quadrature(dec, x, mean, log_std, 241)
    e_ll_coarse, _ = expected_loglik_quadrature(dec, x, mean, log_std, 121)
    # The trapezoid rule converges geometrically for this smooth Gaussian-weighted
    # integrand: halving h changing the answer by < 1e-9 shows it is exact to far
    # below the Monte Carlo error (~1e-3) used next.
    assert abs(wsum - 1) < 1e-12
    np.testing.assert_allclose(e_ll, e_ll_coarse, rtol=0, atol=1e-9)
    exact = e_ll - kl

    S = 200_000
    lw = log_importance_weights(enc, dec, x, np.random.default_rng(21), num_samples=S)
    assert lw.shape == (S, 3)
    mc = lw.mean(0)
    se = lw.std(0, ddof=1) / np.sqrt(S)
    assert np.all(np.abs(mc - exact) < 4 * se), (mc, exact, se)
    # elbo() is the mean of the same weights (same seed -> same eps)
    np.testing.assert_allclose(elbo(enc, dec, x, np.random.default_rng(21), num_samples=S),
                               mc.mean(), rtol=1e-12)

    log_px = log_evidence_quadrature(dec, x, 301)
    np.testing.assert_allclose(log_px, log_evidence_quadrature(dec, x, 151), rtol=0, atol=1e-9)
    # ELBO <= log p(x) (gap = KL(q || p(z|x)) >= 0); 1e-9 is the quadrature error above
    assert np.all(exact <= log_px + 1e-9), (exact, log_px)
    assert np.all(mc <= log_px + 4 * se)

    # Importance-weighted estimate log mean_s w_s: E[iw] <= log p(x) (Jensen), and with
    # S samples it is >= the ELBO in expectation and approaches log p(x). Its delta-method
    # SE is std(w)/(mean(w) sqrt(S)). Only the upper side is checked against log p(x):
    # the weights are heavy-tailed (gap ~1-2 nats), so the estimate is biased low by more
    # than the sample SE suggests; the lower side is checked against the exact ELBO.
    w = np.exp(lw - lw.max(0))
    iw = scipy.special.logsumexp(lw, axis=0) - np.log(S)
    iw_se = w.std(0, ddof=1) / (w.mean(0) * np.sqrt(S))
    assert np.all(iw <= log_px + 4 * iw_se), (iw, log_px, iw_se)
    assert np.all(iw > exact + 4 * iw_se), (iw, exact, iw_se)


class FixedEps:
    """Stands in for a numpy Generator: standard_normal returns the given eps."""

    def __init__(self, eps):
        self.eps = eps

    def standard_normal(self, shape, dtype=np.float64):
        assert tuple(shape) == self.eps.shape
        return self.eps.astype(dtype)


def test_batch_elbo_equals_per_example_formula():
    """Vectorization: log_importance_weights on the batch must equal, example by
    example, log p(x_n, z) - log q(z|x_n) with z = mean_n + exp(log_std_n) * eps
    built by hand from the same seed, and the batch ELBO must equal the mean of the
    single-example ELBOs fed the same eps. float64, so only BLAS summation order
    differs (~1e-15 relative); rtol 1e-11."""
    for enc, dec, x in [tiny_model(n=5),
                        (*init_vae_params(np.random.default_rng(9), scale=0.1, dtype=np.float64),
                         binary_images(np.random.default_rng(10), 4, np.float64))]:
        N, S = x.shape[0], 6
        lw = log_importance_weights(enc, dec, x, np.random.default_rng(11), num_samples=S)
        eps = np.random.default_rng(11).standard_normal((S, N, 2))
        per_example = []
        for n in range(N):
            xn = x[n:n + 1]
            m, ls = encoder(enc, xn)
            z = m + np.exp(ls) * eps[:, n:n + 1]
            ref = (scipy.stats.bernoulli.logpmf(xn, scipy.special.expit(decoder(dec, z))).sum(-1)
                   + scipy.stats.norm.logpdf(z).sum(-1)
                   - scipy.stats.norm.logpdf(z, m, np.exp(ls)).sum(-1))
            np.testing.assert_allclose(lw[:, n], ref[:, 0], rtol=1e-11)
            per_example.append(elbo(enc, dec, xn, FixedEps(eps[:, n:n + 1]), num_samples=S))
        batch = elbo(enc, dec, x, np.random.default_rng(11), num_samples=S)
        np.testing.assert_allclose(batch, lw.mean(), rtol=1e-13)
        np.testing.assert_allclose(batch, np.mean(per_example), rtol=1e-11)


def fixed_noise_elbo(x, num_samples=4):
    """The ELBO as a deterministic function of the parameters: a fresh Generator with
    the same seed on every call gives the same eps, so finite differences are valid."""
    def f(params):
        return elbo(params[0], params[1], x, np.random.default_rng(0), num_samples)
    return f


def test_elbo_gradient_check_grads_tiny_float64():
    enc, dec, x = tiny_model()
    np.random.seed(1)  # check_grads draws its random directions from np.random
    check_grads(fixed_noise_elbo(x), modes=["rev"], order=1)((enc, dec))


def tiny_relu_model():
    """(enc, dec, x): tiny_model's images, and relu hidden layers (5, 4): decoder 2 -> 4 -> 5 -> 6."""
    enc, dec = relu_vae(21, 6, (5, 4), scale=0.5)
    return enc, dec, tiny_model()[2]


@pytest.mark.parametrize("model", [tiny_model, tiny_relu_model])
def test_elbo_gradient_central_differences_per_array(model):
    """Each parameter array separately: a random direction v inside that array,
    (f(p + h v) - f(p - h v)) / 2h against <grad, v>. With h = 1e-5 the
    truncation error is ~h^2 |f'''| ~ 1e-10 and rounding ~eps |f| / h ~ 1e-10, so
    agreement to 1e-7 absolute + 1e-6 relative tests the gradient, not the noise (for relu
    layers too: a kink within h of one of the few dozen pre-activations has probability ~1e-5).
    The gradient is autograd's of the nested parameters and the training step's (fast_grad)."""
    enc, dec, x = model()
    f = fixed_noise_elbo(x)
    params = (enc, dec)
    g = grad(f)(params)
    value, step = value_and_grad_per_array(f)(params)
    assert value == f(params) and [type(layer) for layer in step[1]] == [type(layer) for layer in dec]
    rng = np.random.default_rng(12)
    h = 1e-5

    def shifted(net, layer, k, delta):
        nets = [[list(pair) for pair in n] for n in params]
        nets[net][layer][k] = nets[net][layer][k] + delta
        return tuple([layer_like(old, *pair) for old, pair in zip(params[i], n)] for i, n in enumerate(nets))

    for net in range(2):
        for layer in range(len(params[net])):
            for k in range(2):
                a = params[net][layer][k]
                gk = g[net][layer][k]
                assert gk.shape == a.shape and gk.dtype == np.float64
                np.testing.assert_allclose(step[net][layer][k], gk, rtol=1e-12, atol=1e-15)
                v = rng.standard_normal(a.shape)
                numeric = (f(shifted(net, layer, k, h * v)) - f(shifted(net, layer, k, -h * v))) / (2 * h)
                analytic = np.sum(gk * v)
                assert abs(numeric - analytic) < 1e-7 + 1e-6 * abs(analytic), (net, layer, k, numeric, analytic)


def test_the_relu_model_is_a_relu_model():
    """What makes the relu case of the test above a test of relu: its layers say relu, and as tanh
    layers the same arrays give another ELBO."""
    enc, dec, x = tiny_relu_model()
    assert [type(layer) for layer in enc + dec] == [ReluLayer, ReluLayer, tuple] * 2
    as_tanh = [[(W, b) for W, b in net] for net in (enc, dec)]
    assert abs(fixed_noise_elbo(x)((enc, dec)) - fixed_noise_elbo(x)(as_tanh)) > 0.1


def test_elbo_gradient_equals_autograds_through_its_own_operations():
    """The ELBO's gradient, through the package's primitives (layers, sampler, densities and the mean
    of the log weights, each with a hand-written vector-Jacobian product), against autograd's through
    the same formulas written with its own operations only, with the same noise."""
    enc, dec, x = tiny_model()
    S = 4
    eps = np.random.default_rng(0).standard_normal((S, len(x), 2))

    def stock_elbo(params):
        (W1, b1), (W2, b2) = params[0]
        (W3, b3), (W4, b4) = params[1]
        out = anp.tanh(x @ W1 + b1) @ W2 + b2
        mean, log_std = out[:, :2], out[:, 2:]
        z = mean + anp.exp(log_std) * eps
        logits = anp.tanh(z @ W3 + b3) @ W4 + b4
        log_px = anp.sum(x * logits - anp.logaddexp(0.0, logits), axis=-1)
        log_pz = anp.sum(-0.5 * z**2 - 0.5 * LOG_2PI, axis=-1)
        log_qz = anp.sum(-0.5 * ((z - mean) * anp.exp(-log_std)) ** 2 - log_std - 0.5 * LOG_2PI, axis=-1)
        return anp.mean(log_px + log_pz - log_qz)

    np.testing.assert_allclose(fixed_noise_elbo(x, S)((enc, dec)), stock_elbo((enc, dec)), rtol=1e-13)
    package, stock = grad(fixed_noise_elbo(x, S))((enc, dec)), grad(stock_elbo)((enc, dec))
    for got, want in zip(all_arrays(package), all_arrays(stock)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14)


def test_elbo_gradient_float32_full_size_finite():
    rng = np.random.default_rng(13)
    params = init_vae_params(rng)
    x = binary_images(rng, 8)
    g = grad(fixed_noise_elbo(x, num_samples=2))(params)
    for a, ga in zip(all_arrays(params), all_arrays(g)):
        assert ga.shape == a.shape
        assert ga.dtype == np.float32
        assert np.all(np.isfinite(ga))
    # the gradient is not trivially zero: the decoder output bias gets (x - sigmoid(l))
    # averaged over the batch, about x_mean - 1/2 per pixel
    assert np.abs(g[1][1][1]).max() > 0.05
