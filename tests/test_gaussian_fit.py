"""The best Gaussian for a 2-D posterior, on targets whose answers are known: explicit
Gaussians and mixtures, and a tiny VAE."""
import numpy as np
import pytest

from vae_autograd.core.distributions import LOG_2PI
from vae_autograd.study.gaussian_fit import Gaussians, fit_on_windows, global_fit, posterior_starts, window_serves
from vae_autograd.study.posterior import log_joint_on_windows
from vae_autograd.study.windows import (
    decoder_target,
    explicit_target,
    gaussian_elbo,
    lattice_level,
    level_spacing,
    window_axes,
    window_elbo,
    window_log_joint,
)


def gaussian_log_density(z, mean, std, rho=0.0):
    """log N(z; mean, [[s1^2, rho s1 s2], [rho s1 s2, s2^2]]). z (..., 2), mean, std (..., 2)."""
    u = (z - mean) / std
    quad = (u[..., 0]**2 - 2 * rho * u[..., 0] * u[..., 1] + u[..., 1]**2) / (1 - rho**2)
    return -0.5 * quad - np.log(std).sum(-1) - 0.5 * np.log(1 - rho**2) - LOG_2PI


# Three "images": Gaussian posteriors of very different widths, log p(x) = offsets.
MEANS = np.array([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.1]])
STDS = np.array([[0.02, 0.05], [0.3, 0.1], [1.0, 0.6]])
OFFSETS = np.array([-150.0, -90.0, -20.0])


def gaussian_target(rho=0.0):
    def log_density(rows, z):
        shape = (len(rows),) + (1,) * (z.ndim - 2) + (2,)
        return OFFSETS[rows].reshape((-1,) + (1,) * (z.ndim - 2)) + gaussian_log_density(
            z, MEANS[rows].reshape(shape), STDS[rows].reshape(shape), rho)
    return explicit_target(log_density, len(MEANS))


def test_fit_recovers_a_gaussian_posterior_exactly():
    tabulate = gaussian_target().tabulate
    rows = np.arange(3)
    # Starts two stds off and twice too wide.
    fit = fit_on_windows(tabulate, Gaussians(rows, MEANS + 2 * STDS, np.log(2 * STDS)), num_steps=300)
    mean, log_std, fitted, converged = fit.fitted.mean, fit.fitted.log_std, fit.fitted.elbo, fit.converged
    assert converged.all()
    np.testing.assert_allclose(mean, MEANS, atol=1e-3 * STDS.max())
    np.testing.assert_allclose(np.exp(log_std), STDS, rtol=1e-3)
    elbo = gaussian_elbo(tabulate, rows, mean, log_std)
    np.testing.assert_allclose(elbo, OFFSETS, atol=1e-5)  # approximation gap 0 up to rounding
    np.testing.assert_allclose(fitted, elbo, atol=1e-9)   # on the window that served the fit
    exact = gaussian_elbo(tabulate, rows, MEANS, np.log(STDS))
    np.testing.assert_allclose(exact, OFFSETS, atol=1e-9)


def test_correlated_gaussian_has_the_known_approximation_gap():
    # The best diagonal Gaussian under KL(q || p) keeps the mean and the target's
    # conditional stds s_i sqrt(1 - rho^2); its gap is -log(1 - rho^2) / 2.
    rho = 0.8
    target = gaussian_target(rho)
    best = global_fit(target.tabulate, 3, posterior_starts(target).local, num_steps=300)
    elbo, mean, log_std = best.elbo, best.mean, best.log_std
    np.testing.assert_allclose(OFFSETS - elbo, -0.5 * np.log(1 - rho**2), atol=1e-4)
    np.testing.assert_allclose(np.exp(log_std), STDS * np.sqrt(1 - rho**2), rtol=2e-3)
    np.testing.assert_allclose(mean, MEANS, atol=2e-3 * STDS.max())
    assert np.all(elbo <= OFFSETS)


def random_window(rng, rows=6, size=9):
    """A window of a smooth non-Gaussian log joint, and Gaussians partly off it."""
    mean = rng.standard_normal((rows, 2))
    log_std = np.log(rng.uniform(0.1, 0.4, (rows, 2)))
    level = lattice_level(np.exp(log_std))
    axes = window_axes(mean + 0.3 * rng.standard_normal((rows, 2)), level, size) * level_spacing(level)[:, :, None]
    z1, z2 = axes[:, 0, :, None], axes[:, 1, None, :]
    log_joint = -100.0 - 2.0 * z1**2 - z2**4 + np.sin(3.0 * z1 * z2)
    return mean, log_std, axes, log_joint


@pytest.mark.parametrize("escape_nats", [0.0, 100.0])
def test_window_elbo_gradient_matches_finite_differences(escape_nats):
    mean, log_std, axes, log_joint = random_window(np.random.default_rng(7))
    _, d_mean, d_log_std = window_elbo(mean, log_std, axes, log_joint, escape_nats, with_grad=True)
    step = 1e-6
    for analytic, which in ((d_mean, 0), (d_log_std, 1)):
        for d in range(2):
            shift = np.zeros_like(mean)
            shift[:, d] = step
            args_up = [mean + shift, log_std] if which == 0 else [mean, log_std + shift]
            args_down = [mean - shift, log_std] if which == 0 else [mean, log_std - shift]
            numeric = (window_elbo(*args_up, axes, log_joint, escape_nats)
                       - window_elbo(*args_down, axes, log_joint, escape_nats)) / (2 * step)
            np.testing.assert_allclose(analytic[:, d], numeric, rtol=1e-5, atol=1e-5)
    # The penalty matters here: some Gaussians hang off their windows.
    assert escape_nats == 0.0 or np.abs(d_mean).max() > 1.0


def test_a_centred_window_serves_and_a_moved_or_narrowed_one_does_not():
    rng = np.random.default_rng(2)
    mean, log_std = rng.standard_normal((50, 2)), np.log(rng.uniform(0.01, 1.0, (50, 2)))
    level = lattice_level(np.exp(log_std))
    axes = window_axes(mean, level) * level_spacing(level)[:, :, None]
    assert window_serves(axes, mean, log_std).all()
    assert not window_serves(axes, mean + 3 * np.exp(log_std), log_std).any()   # 3 std off: reach < 5
    assert not window_serves(axes, mean, log_std - np.log(2.2)).any()            # spacing > std


def two_mode_target(weights=(0.8, 0.2)):
    modes = np.array([[0.43, -0.61], [-1.27, 0.88]])
    std = np.array([0.04, 0.07])

    def log_density(rows, z):
        parts = [np.log(w) + gaussian_log_density(z, m, std) for w, m in zip(weights, modes)]
        return -100.0 + np.logaddexp(*parts)
    return explicit_target(log_density, 1), modes, std


def test_global_search_finds_the_better_mode_from_the_worse_one():
    target, modes, std = two_mode_target()
    rows = np.zeros(1, int)
    # Local fit started in the worse mode stays there: ELBO = -100 + log 0.2.
    local = fit_on_windows(target.tabulate, Gaussians(rows, modes[1:], np.log(std)[None])).fitted
    np.testing.assert_allclose(local.elbo, -100.0 + np.log(0.2), atol=1e-4)
    starts = posterior_starts(target).local
    found = global_fit(target.tabulate, 1, starts, extra=local)
    best, mean = found.elbo, found.mean
    np.testing.assert_allclose(best, -100.0 + np.log(0.8), atol=1e-4)
    np.testing.assert_allclose(mean[0], modes[0], atol=1e-3)


def test_batched_fit_equals_fitting_each_image_alone():
    tabulate = gaussian_target(rho=0.5).tabulate
    start_mean, start_log_std = MEANS + STDS, np.log(STDS) - 0.5

    def arrays(fit):
        return fit.fitted.mean, fit.fitted.log_std, fit.fitted.elbo, fit.start_elbo, fit.converged

    together = arrays(fit_on_windows(tabulate, Gaussians(np.arange(3), start_mean, start_log_std), num_steps=50))
    for n in range(3):
        alone = arrays(fit_on_windows(tabulate, Gaussians(np.array([n]), start_mean[n:n + 1], start_log_std[n:n + 1]),
                                      num_steps=50))
        for a, b in zip(together, alone):
            np.testing.assert_allclose(a[n:n + 1], b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- a tiny VAE (conftest.tiny_vae)

def test_lattice_windows_match_direct_decoding(tiny_vae):
    _, dec_params, x = tiny_vae
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(x), 60)
    center = rng.standard_normal((60, 2))
    level = lattice_level(rng.uniform(0.05, 0.5, (60, 2)))
    cache = {}
    # The second call meets the first one's points (shifted windows), from the cache.
    for shift in (0.0, 0.3):
        values, axes = window_log_joint(dec_params, x, rows, center + shift, level, size=8, rows_per_block=7,
                                        rows_per_group=25, cache=cache)
        z = np.stack(np.broadcast_arrays(axes[:, 0, :, None], axes[:, 1, None, :]), axis=-1).reshape(60, -1, 2)
        direct = log_joint_on_windows(dec_params, x[rows], z).reshape(values.shape)
        np.testing.assert_allclose(values, direct, atol=2e-4)
        assert len(np.unique(cache["keys"])) == len(cache["keys"]) == len(cache["values"])
    uncached, _ = window_log_joint(dec_params, x, rows, center + shift, level, size=8, rows_per_block=7,
                                   rows_per_group=25)
    np.testing.assert_array_equal(values, uncached)


def test_deterministic_elbo_matches_monte_carlo(tiny_vae):
    _, dec_params, x = tiny_vae
    tabulate = decoder_target(dec_params, x).tabulate
    rng = np.random.default_rng(1)
    rows = np.arange(5)
    mean, log_std = rng.standard_normal((5, 2)), np.log(rng.uniform(0.05, 0.6, (5, 2)))
    exact = gaussian_elbo(tabulate, rows, mean, log_std)
    eps = rng.standard_normal((200000, 5, 2))
    z = mean + np.exp(log_std) * eps
    (W1, b1), (W2, b2) = dec_params
    logits = np.tanh(z @ W1 + b1) @ W2 + b2
    log_lik = np.sum(x[rows] * logits - np.logaddexp(0, logits), axis=-1)
    log_w = log_lik - 0.5 * np.sum(z**2, -1) - LOG_2PI + np.sum(0.5 * eps**2 + log_std, -1) + LOG_2PI
    se = log_w.std(axis=0) / np.sqrt(len(log_w))
    assert np.all(np.abs(log_w.mean(axis=0) - exact) < 4 * se), (log_w.mean(axis=0) - exact) / se


