"""Tests for vae_autograd.core.distributions against SciPy and closed forms.

Tolerance conventions used below:
- Deterministic float computations are compared with tolerances of a few machine
  epsilons (EPS64 / EPS32) times the size of the intermediates the formula goes
  through (e.g. |logit|), i.e. what a backward-stable implementation guarantees.
- Monte Carlo checks use fixed seeds and a 4-standard-error band (a two-sided
  4-sigma band has a false-alarm rate of ~6e-5 per check for a correct sampler,
  while a wrong mean/scale of the size of a few SE would be caught).
"""
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from autograd import grad

from tests.helpers import EPS32, EPS64, NO_OVERFLOW
from vae_autograd.core.distributions import (
    LOG_2PI,
    bernoulli_log_density,
    diag_gaussian_log_density,
    diag_gaussian_log_density_packed,
    sample_bernoulli,
    sample_diag_gaussian,
    sample_diag_gaussian_packed,
)

EXTREME_LOGITS = np.array([-1e4, -1e3, -50.0, -40.0, -20.0, -10.0, 0.0,
                           10.0, 20.0, 40.0, 50.0, 1e3, 1e4])


def ref_gauss(x, mean, log_std):
    """SciPy reference, with explicit broadcasting."""
    return scipy.stats.norm.logpdf(x, mean, np.exp(log_std)).sum(-1)


def gauss_tol(x, mean, log_std):
    """Each summand is accurate to a few ulps; summing D terms adds <= D ulps of
    sum|terms|. 1e-13 * sum|terms| leaves a >10x margin for D <= 10."""
    terms = scipy.stats.norm.logpdf(x, mean, np.exp(log_std))
    return 1e-13 * np.abs(terms).sum(-1) + 1e-300


def log_sigmoid_ref(logits):
    """log sigmoid(l) = -log(1 + exp(-l)), stable for any l."""
    return -np.logaddexp(0.0, -logits)


def test_diag_gaussian_matches_scipy_random_inputs():
    rng = np.random.default_rng(0)
    n, d = 200, 7
    mean = rng.normal(0, 3, (n, d))
    log_std = rng.uniform(-10, 5, (n, d))
    # distances from 0 up to 1e3 standard deviations
    dist = rng.normal(0, 1, (n, d)) * 10.0 ** rng.uniform(-3, 3, (n, d))
    x = mean + np.exp(log_std) * dist
    got = diag_gaussian_log_density(x, mean, log_std)
    assert got.shape == (n,)
    assert got.dtype == np.float64
    assert np.all(np.isfinite(got))
    np.testing.assert_array_less(np.abs(got - ref_gauss(x, mean, log_std)),
                                 gauss_tol(x, mean, log_std))


@pytest.mark.parametrize("log_std", [-10.0, -3.0, 0.0, 2.0, 5.0])
@pytest.mark.parametrize("dist", [0.0, 1.0, -37.5, 1e3, -1e3])
def test_diag_gaussian_extremes(log_std, dist):
    """|x - mean| = 1e3 standard deviations and std from e^-10 to e^5."""
    mean = np.array([1.5, -2.0, 0.0])
    ls = np.full(3, log_std)
    x = mean + np.exp(ls) * dist
    got = diag_gaussian_log_density(x, mean, ls)
    assert np.isfinite(got)
    assert abs(got - ref_gauss(x, mean, ls)) <= gauss_tol(x, mean, ls)


def test_diag_gaussian_broadcasting_samples_and_grid():
    rng = np.random.default_rng(1)
    S, N, D, G = 5, 4, 3, 11
    mean = rng.normal(size=(N, D))
    log_std = rng.uniform(-2, 1, (N, D))
    x = rng.normal(size=(S, N, D))
    got = diag_gaussian_log_density(x, mean, log_std)
    assert got.shape == (S, N)
    ref = ref_gauss(x, np.broadcast_to(mean, x.shape), np.broadcast_to(log_std, x.shape))
    np.testing.assert_allclose(got, ref, rtol=1e-13)
    # each sample slice equals the unbroadcast call
    for s in range(S):
        np.testing.assert_allclose(got[s], diag_gaussian_log_density(x[s], mean, log_std),
                                   rtol=1e-15)

    grid = rng.normal(size=(G, D))
    m1, ls1 = rng.normal(size=D), rng.uniform(-1, 1, D)
    got = diag_gaussian_log_density(grid, m1, ls1)
    assert got.shape == (G,)
    np.testing.assert_allclose(got, ref_gauss(grid, m1, ls1), rtol=1e-13)


def test_diag_gaussian_float32_stays_float32():
    x = np.array([[0.5, -1.0]], dtype=np.float32)
    got = diag_gaussian_log_density(x, np.zeros(2, np.float32), np.zeros(2, np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref_gauss(x.astype(np.float64), 0.0, 0.0), rtol=4 * EPS32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_diag_gaussian_standard_deviation_far_below_the_dtype_range(dtype):
    """std = exp(-100): exp(100) overflows float32, and (x - mean) * exp(-log_std) was 0 * inf
    = nan at x == mean. There the density is exactly exp(100) / sqrt(2 pi) per dimension;
    a point any distance away has log-density -inf in float32 (about -1e87 in float64)."""
    mean = np.array([0.5, -1.0], dtype)
    log_std = np.full(2, -100.0, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        at_mean = diag_gaussian_log_density(mean, mean, log_std)
        assert at_mean.dtype == dtype
        np.testing.assert_allclose(at_mean, 2 * (100.0 - 0.5 * np.log(2 * np.pi)), rtol=1e-6)
        one_off = diag_gaussian_log_density(mean + np.array([0.0, 1e-3], dtype), mean, log_std)
        if dtype == np.float32:
            assert one_off == -np.inf
        else:
            np.testing.assert_allclose(one_off, -0.5 * (1e-3 * np.exp(100.0)) ** 2, rtol=1e-6)
        # Gradients at x == mean: d/dx = d/dmean = 0 (the peak), d/dlog_std = -1 per dimension.
        grads = [grad(lambda *a, i=i: diag_gaussian_log_density(*a), i)(mean, mean, log_std) for i in range(3)]
    np.testing.assert_array_equal(grads[0], 0.0)
    np.testing.assert_array_equal(grads[1], 0.0)
    np.testing.assert_array_equal(grads[2], -1.0)
    assert all(g.dtype == dtype for g in grads)


def test_diag_gaussian_at_its_mean_with_zero_std_is_infinite():
    with np.errstate(over="ignore", invalid="ignore"):
        assert diag_gaussian_log_density(np.zeros(2), np.zeros(2), np.full(2, -np.inf)) == np.inf


def test_diag_gaussian_gradients_match_autograds_own_and_the_packed_form():
    """The hand-written gradients of diag_gaussian_log_density, and of its packed form (mean and log std
    side by side, as the training step passes them), at every argument, against autograd's gradients of
    the same formula in its own operations. Samples (S, N, D) broadcast against parameters (N, D), and
    the gradient of the sum weighted by random w tests every entry."""
    rng = np.random.default_rng(4)
    mean, log_std = rng.normal(size=(4, 3)), rng.uniform(-1, 1, (4, 3))
    x, w = rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 4))

    def stock(x, mean, log_std):
        return anp.sum(-0.5 * ((x - mean) * anp.exp(-log_std)) ** 2 - log_std - 0.5 * LOG_2PI, axis=-1)

    want = [grad(lambda *a: anp.sum(w * stock(*a)), i)(x, mean, log_std) for i in range(3)]
    for i in range(3):
        got = grad(lambda *a: anp.sum(w * diag_gaussian_log_density(*a)), i)(x, mean, log_std)
        np.testing.assert_allclose(got, want[i], rtol=1e-13)
    packed = np.concatenate([mean, log_std], axis=-1)
    np.testing.assert_array_equal(diag_gaussian_log_density_packed(x, packed),
                                  diag_gaussian_log_density(x, mean, log_std))
    got_x, got_packed = (grad(lambda *a: anp.sum(w * diag_gaussian_log_density_packed(*a)), i)(x, packed)
                         for i in (0, 1))
    np.testing.assert_allclose(got_x, want[0], rtol=1e-13)
    np.testing.assert_allclose(got_packed, np.concatenate(want[1:], axis=-1), rtol=1e-13)


def test_bernoulli_gradients_match_autograds_own():
    """Both arguments, with images (N, D) broadcast against logits (S, N, D), against autograd's
    gradients of x * logits - log(1 + exp(logits)) in its own operations (moderate logits)."""
    rng = np.random.default_rng(6)
    logits, x, w = rng.uniform(-6, 6, (3, 4, 5)), rng.integers(0, 2, (4, 5)).astype(np.float64), rng.normal(size=(3, 4))

    def stock(x, logits):
        return anp.sum(x * logits - anp.logaddexp(0.0, logits), axis=-1)

    np.testing.assert_allclose(bernoulli_log_density(x, logits), stock(x, logits), rtol=1e-14)
    for i in range(2):
        got = grad(lambda *a: anp.sum(w * bernoulli_log_density(*a)), i)(x, logits)
        np.testing.assert_allclose(got, grad(lambda *a: anp.sum(w * stock(*a)), i)(x, logits), rtol=1e-13, atol=1e-15)


def test_bernoulli_matches_scipy_moderate_logits():
    """|logits| <= 5: SciPy's log(1 - expit(l)) loses at most ~e^5 ulps (relative
    ~3e-14) and x*l - softplus(l) at most a few ulps of |l|, so 1e-12 per pixel."""
    rng = np.random.default_rng(2)
    N, D = 50, 20
    logits = rng.uniform(-5, 5, (N, D))
    x = rng.integers(0, 2, (N, D)).astype(np.float64)
    got = bernoulli_log_density(x, logits)
    assert got.shape == (N,)
    ref = scipy.stats.bernoulli.logpmf(x, scipy.special.expit(logits)).sum(-1)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * D)


@pytest.mark.parametrize("dtype,eps", [(np.float64, EPS64), (np.float32, EPS32)])
@np.errstate(**NO_OVERFLOW)
def test_bernoulli_extreme_logits_finite_and_exact(dtype, eps):
    """x * l - softplus(l) is exact to within a few ulps of |l| (its largest
    intermediate). The cases below are exactly representable and must be exact."""
    logits = EXTREME_LOGITS.astype(dtype)[:, None]
    for xv in (0.0, 1.0):
        x = np.full((len(EXTREME_LOGITS), 1), xv, dtype=dtype)
        got = bernoulli_log_density(x, logits)
        assert got.dtype == dtype
        assert np.all(np.isfinite(got))
        logits64 = logits[:, 0].astype(np.float64)
        ref = log_sigmoid_ref(logits64) if xv == 1.0 else log_sigmoid_ref(-logits64)
        np.testing.assert_array_less(np.abs(got.astype(np.float64) - ref),
                                     4 * eps * np.maximum(np.abs(logits64), 1.0))
    one = np.ones((1, 1), dtype)
    zero = np.zeros((1, 1), dtype)
    big = np.full((1, 1), 1e4, dtype)
    assert bernoulli_log_density(one, big)[0] == 0.0
    assert bernoulli_log_density(zero, big)[0] == -1e4
    assert bernoulli_log_density(zero, -big)[0] == 0.0
    assert bernoulli_log_density(one, -big)[0] == -1e4


@pytest.mark.parametrize("dtype,eps", [(np.float64, EPS64), (np.float32, EPS32)])
@np.errstate(**NO_OVERFLOW)
def test_bernoulli_gradient_is_x_minus_sigmoid(dtype, eps):
    """d/dl [x l - softplus(l)] = x - sigmoid(l). The package computes sigmoid as
    exp(l - softplus(l)); the exponent carries an error of ~eps*|l|, hence the
    tolerance 4*eps*(1 + |l|)."""
    rng = np.random.default_rng(3)
    logits = np.concatenate([EXTREME_LOGITS, rng.uniform(-8, 8, 20)]).astype(dtype)
    for xv in (0.0, 1.0):
        x = np.full(logits.shape, xv, dtype)
        g = grad(bernoulli_log_density, 1)(x, logits)
        assert g.dtype == dtype
        assert np.all(np.isfinite(g))
        logits64 = logits.astype(np.float64)
        np.testing.assert_array_less(np.abs(g - (xv - scipy.special.expit(logits64))),
                                     4 * eps * (1 + np.abs(logits64)))
    big = np.array([1e4, -1e4], dtype)
    np.testing.assert_array_equal(grad(lambda ll: bernoulli_log_density(np.ones(2, dtype), ll))(big), [0.0, 1.0])
    np.testing.assert_array_equal(grad(lambda ll: bernoulli_log_density(np.zeros(2, dtype), ll))(big), [-1.0, 0.0])


def test_sample_diag_gaussian_moments_and_ks():
    n = 200_000
    mean = np.array([0.0, -3.0, 10.0, 1e-3])
    log_std = np.array([0.0, -3.0, 2.0, 1.0])
    std = np.exp(log_std)
    z = sample_diag_gaussian(mean, log_std, np.random.default_rng(5), num_samples=n)
    assert z.shape == (n, 4) and z.dtype == np.float64
    # SE of the sample mean = std/sqrt(n); SE of the sample std ~ std/sqrt(2n) (normal data)
    assert np.all(np.abs(z.mean(0) - mean) < 4 * std / np.sqrt(n))
    assert np.all(np.abs(z.std(0, ddof=1) - std) < 4 * std / np.sqrt(2 * n))
    # A frozen distribution's cdf, not ("norm", args=...): scipy 1.18 no longer passes
    # args through to the distribution that way.
    p = scipy.stats.kstest(z[:, 2], scipy.stats.norm(mean[2], std[2]).cdf).pvalue
    assert p > 1e-3


def test_sample_diag_gaussian_seeding_dtype_shapes():
    mean = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    log_std = np.array([0.0, -1.0, 0.5])  # broadcasts against mean
    a = sample_diag_gaussian(mean, log_std, np.random.default_rng(7))
    b = sample_diag_gaussian(mean, log_std, np.random.default_rng(7))
    c = sample_diag_gaussian(mean, log_std, np.random.default_rng(8))
    assert a.shape == (2, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.any(a == c)
    s = sample_diag_gaussian(mean, log_std, np.random.default_rng(7), num_samples=9)
    assert s.shape == (9, 2, 3)
    s1 = sample_diag_gaussian(mean, log_std, np.random.default_rng(7), num_samples=1)
    assert s1.shape == (1, 2, 3)
    m32, ls32 = mean.astype(np.float32), log_std.astype(np.float32)
    z32 = sample_diag_gaussian(m32, ls32, np.random.default_rng(7), num_samples=4)
    assert z32.dtype == np.float32 and z32.shape == (4, 2, 3)
    # a float32 scalar log_std keeps float32 too. (A Python-float log_std does NOT:
    # np.exp(0.0) is a NumPy float64 scalar and upcasts; see the test report.)
    assert sample_diag_gaussian(m32, np.float32(0.0), np.random.default_rng(7)).dtype == np.float32


def test_sample_diag_gaussian_reparameterization_gradients():
    mean = np.array([[0.3, -1.0], [2.0, 0.0]])
    log_std = np.array([[0.1, -2.0], [1.0, 0.5]])
    S = 6
    eps = np.random.default_rng(9).standard_normal((S,) + mean.shape)
    z = sample_diag_gaussian(mean, log_std, np.random.default_rng(9), num_samples=S)
    np.testing.assert_allclose(z, mean + np.exp(log_std) * eps, rtol=1e-15)

    def total(m, ls):
        return anp.sum(sample_diag_gaussian(m, ls, np.random.default_rng(9), num_samples=S))

    np.testing.assert_allclose(grad(total, 0)(mean, log_std), np.full(mean.shape, S), rtol=1e-15)
    np.testing.assert_allclose(grad(total, 1)(mean, log_std),
                               (np.exp(log_std) * eps).sum(0), rtol=1e-14)


def test_sample_diag_gaussian_packed_draws_the_same_with_the_same_gradients():
    """The training step's sampler takes mean and log std packed: same draws, and the gradient
    of a weighted sum of them (autograd's own: mean + exp(log_std) * eps in its operations)."""
    rng = np.random.default_rng(9)
    mean, log_std = rng.normal(size=(2, 3)), rng.uniform(-1, 1, (2, 3))
    packed, w, S = np.concatenate([mean, log_std], axis=-1), rng.normal(size=(6, 2, 3)), 6
    z = sample_diag_gaussian_packed(packed, np.random.default_rng(9), num_samples=S)
    np.testing.assert_array_equal(z, sample_diag_gaussian(mean, log_std, np.random.default_rng(9), num_samples=S))
    assert sample_diag_gaussian_packed(packed.astype(np.float32), np.random.default_rng(9)).dtype == np.float32
    eps = np.random.default_rng(9).standard_normal((S, 2, 3))
    want = grad(lambda p: anp.sum(w * (p[:, :3] + anp.exp(p[:, 3:]) * eps)))(packed)
    got = grad(lambda p: anp.sum(w * sample_diag_gaussian_packed(p, np.random.default_rng(9), num_samples=S)))(packed)
    np.testing.assert_allclose(got, want, rtol=1e-14)


@np.errstate(**NO_OVERFLOW)
def test_sample_bernoulli_frequencies():
    n = 100_000
    logits = np.array([0.0, 3.0, -3.0, 0.7, 1e4, -1e4])
    x = sample_bernoulli(np.broadcast_to(logits, (n, len(logits))), np.random.default_rng(10))
    assert x.shape == (n, len(logits)) and x.dtype == np.float64
    assert set(np.unique(x)) <= {0.0, 1.0}
    p = scipy.special.expit(logits[:4])
    freq = x[:, :4].mean(0)
    assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n))  # binomial SE
    assert np.all(x[:, 4] == 1.0) and np.all(x[:, 5] == 0.0)
    k = int(x[:, 3].sum())
    assert scipy.stats.binomtest(k, n, p[3]).pvalue > 1e-3


def test_sample_bernoulli_float32_and_seeding():
    logits = np.random.default_rng(11).normal(0, 2, (500, 7)).astype(np.float32)
    a = sample_bernoulli(logits, np.random.default_rng(12))
    b = sample_bernoulli(logits, np.random.default_rng(12))
    c = sample_bernoulli(logits, np.random.default_rng(13))
    assert a.dtype == np.float32 and a.shape == logits.shape
    assert set(np.unique(a)) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)
    ext = np.array([1e4, -1e4], np.float32)
    e = sample_bernoulli(np.broadcast_to(ext, (1000, 2)), np.random.default_rng(0))
    assert np.all(e[:, 0] == 1) and np.all(e[:, 1] == 0)
    # frequency in float32 too: p = sigmoid(0.5), binomial SE
    n = 100_000
    f = sample_bernoulli(np.full(n, 0.5, np.float32), np.random.default_rng(14)).mean(dtype=np.float64)
    p = scipy.special.expit(0.5)
    assert abs(f - p) < 4 * np.sqrt(p * (1 - p) / n)
