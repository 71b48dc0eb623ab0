"""The best Gaussian (vae_autograd.study.gaussian_fit) for a 2-D posterior, on targets whose answers are known: explicit
Gaussians and mixtures, and a tiny VAE.
"""
import numpy as np

from vae_autograd.core.distributions import LOG_2PI
from vae_autograd.study.gaussian_fit import Gaussians, fit_on_windows, global_fit, posterior_starts, window_serves
from vae_autograd.study.windows import (
    explicit_target,
    gaussian_elbo,
    lattice_level,
    level_spacing,
    window_axes,
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
    target = gaussian_target()
    tabulate, rows = target.tabulate, np.arange(3)
    # Starts two stds off and twice too wide.
    fit = fit_on_windows(target, Gaussians(rows, MEANS + 2 * STDS, np.log(2 * STDS)), num_steps=300)
    mean, log_std, fitted, converged = fit.fitted.mean, fit.fitted.log_std, fit.fitted.elbo, fit.converged
    assert converged.all()
    np.testing.assert_allclose(mean, MEANS, atol=1e-3 * STDS.max())
    np.testing.assert_allclose(np.exp(log_std), STDS, rtol=1e-3)
    elbo = gaussian_elbo(tabulate, rows, mean, log_std)
    np.testing.assert_allclose(elbo, OFFSETS, atol=1e-5)  # approximation gap 0 up to rounding
    np.testing.assert_allclose(fitted, elbo, atol=1e-9)   # on the window that served the fit
    exact = gaussian_elbo(tabulate, rows, MEANS, np.log(STDS))
    np.testing.assert_allclose(exact, OFFSETS, atol=1e-9)


def test_fits_started_far_off_travel_window_by_window_to_the_posterior():
    """Starts 25 stds away, and 5x too wide or 3x too narrow: each round's window holds only a
    few stds of the way, so the Gaussians travel over many windows (a Gaussian pressed
    against its window's edge, narrowed by the escape penalty, must not shrink the next
    window), and narrow or widen to the posterior on the last."""
    rows = np.tile(np.arange(3), 2)
    starts = Gaussians(rows, MEANS[rows] + 25 * STDS[rows] * [1.0, -0.6],
                       np.log(STDS[rows] * np.repeat([5.0, 1 / 3], 3)[:, None]))
    fit = fit_on_windows(gaussian_target(), starts, num_steps=100)
    assert fit.converged.all()
    assert np.all(np.abs(fit.fitted.mean - MEANS[rows]) < 1e-3 * STDS[rows])
    np.testing.assert_allclose(np.exp(fit.fitted.log_std), STDS[rows], rtol=1e-3)  # a 1e-6 nat optimum
    np.testing.assert_allclose(fit.fitted.elbo, OFFSETS[rows], atol=1e-6)


def test_a_start_far_narrower_than_its_way_widens_its_windows_and_arrives():
    """A start 0.002 wide, 1,000 of its widths or more from each posterior (as a spurious mode of a
    barely trained model gives): a window of its own width would carry it 14 spacings a round, 0.03,
    and max_rounds would end it unconverged halfway; windows that double while it is pressed against
    their edge bring it to the exact optimum."""
    rows = np.arange(3)
    starts = Gaussians(rows, MEANS + [[2.0, 2.0], [-2.0, 2.0], [2.5, -2.5]], np.full((3, 2), np.log(0.002)))
    fit = fit_on_windows(gaussian_target(), starts, num_steps=100)
    assert fit.converged.all()
    assert np.all(np.abs(fit.fitted.mean - MEANS) < 1e-3 * STDS)
    np.testing.assert_allclose(fit.fitted.elbo, OFFSETS, atol=1e-6)


def test_correlated_gaussian_has_the_known_approximation_gap():
    # The best diagonal Gaussian under KL(q || p) keeps the mean and the target's
    # conditional stds s_i sqrt(1 - rho^2); its gap is -log(1 - rho^2) / 2.
    rho = 0.8
    target = gaussian_target(rho)
    best = global_fit(target, 3, posterior_starts(target).local, num_steps=300)
    elbo, mean, log_std = best.elbo, best.mean, best.log_std
    np.testing.assert_allclose(OFFSETS - elbo, -0.5 * np.log(1 - rho**2), atol=1e-4)
    np.testing.assert_allclose(np.exp(log_std), STDS * np.sqrt(1 - rho**2), rtol=2e-3)
    np.testing.assert_allclose(mean, MEANS, atol=2e-3 * STDS.max())
    assert np.all(elbo <= OFFSETS)


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
    local = fit_on_windows(target, Gaussians(rows, modes[1:], np.log(std)[None])).fitted
    np.testing.assert_allclose(local.elbo, -100.0 + np.log(0.2), atol=1e-4)
    starts = posterior_starts(target).local
    found = global_fit(target, 1, starts, extra=local)
    best, mean = found.elbo, found.mean
    np.testing.assert_allclose(best, -100.0 + np.log(0.8), atol=1e-4)
    np.testing.assert_allclose(mean[0], modes[0], atol=1e-3)


def test_batched_fit_equals_fitting_each_image_alone():
    target = gaussian_target(rho=0.5)
    start_mean, start_log_std = MEANS + STDS, np.log(STDS) - 0.5

    def arrays(fit):
        return fit.fitted.mean, fit.fitted.log_std, fit.fitted.elbo, fit.start_elbo, fit.converged

    together = arrays(fit_on_windows(target, Gaussians(np.arange(3), start_mean, start_log_std), num_steps=50))
    for n in range(3):
        alone = arrays(fit_on_windows(target, Gaussians(np.array([n]), start_mean[n:n + 1], start_log_std[n:n + 1]),
                                      num_steps=50))
        for a, b in zip(together, alone):
            np.testing.assert_allclose(a[n:n + 1], b, rtol=1e-12, atol=1e-12)
