"""Windows on the latent lattice (vae_autograd.study.windows): the ELBO of a Gaussian on a
window and its gradient, and the log joint of a VAE tabulated on windows (conftest.tiny_vae).
"""
from functools import partial

import numpy as np
import pytest

from tests.helpers import numpy_log_joint, relu_vae
from vae_autograd.core.distributions import LOG_2PI
from vae_autograd.study.estimators import quadrature_elbo
from vae_autograd.study.posterior import log_joint_on_windows
from vae_autograd.study.windows import (
    KINKED_REFINEMENT,
    WINDOW_SIZE,
    decoder_target,
    gaussian_elbo,
    lattice_level,
    level_spacing,
    window_axes,
    window_elbo,
    window_log_joint,
)


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


def test_window_elbo_hessian_matches_finite_differences_of_its_gradient():
    """The Hessian the Newton fits use, in (mean_0, mean_1, log_std_0, log_std_1), against central
    differences of the gradient (without the escape penalty, whose curvature it leaves out)."""
    mean, log_std, axes, log_joint = random_window(np.random.default_rng(8))
    *_, hessian = window_elbo(mean, log_std, axes, log_joint, 0.0, with_hessian=True)
    theta, step = np.concatenate([mean, log_std], axis=1), 1e-6

    def gradient(theta):
        _, d_mean, d_log_std = window_elbo(theta[:, :2], theta[:, 2:], axes, log_joint, 0.0, with_grad=True)
        return np.concatenate([d_mean, d_log_std], axis=1)

    for k in range(4):
        shift = np.zeros_like(theta)
        shift[:, k] = step
        numeric = (gradient(theta + shift) - gradient(theta - shift)) / (2 * step)
        np.testing.assert_allclose(hessian[:, :, k], numeric, rtol=1e-5, atol=1e-4)
    # Not a diagonal or a block-diagonal matrix: the axes and the parameters interact.
    assert np.abs(hessian[:, 0, 3]).max() > 0.1 and np.abs(hessian[:, 0, 1]).max() > 0.1


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
    # A cached point's sum of softplus over its 784 logits was computed in another batch of points,
    # and a float32 BLAS product may round a row differently with the batch around it (seen: 5e-6
    # nats on values of -20 to -40 on some machines). A point cached under a wrong key would be off
    # by the difference between neighbouring lattice points, thousands of times more.
    np.testing.assert_allclose(values, uncached, rtol=1e-6, atol=0)


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


def test_windows_of_a_relu_decoder_of_two_hidden_layers_hold_its_log_joint_and_elbo():
    """window_log_joint takes the decoder's last hidden layer (model.hidden_activations) and its output
    layer apart, whatever the layers before it: for a relu decoder 2 -> 8 -> 16 -> 30, its values
    and the window ELBO of Gaussians are those of the decoder written out in NumPy with np.maximum
    (float32 rounding apart: the window code decodes in float32)."""
    enc, dec = relu_vae(3, 30, (16, 8))
    rng = np.random.default_rng(0)
    x = (rng.random((10, 30)) < 0.4).astype(np.float64)
    rows = rng.integers(0, len(x), 40)
    center, level = rng.standard_normal((40, 2)), lattice_level(rng.uniform(0.05, 0.5, (40, 2)))
    values, axes = window_log_joint(dec, x, rows, center, level, size=8, rows_per_block=7, rows_per_group=15)
    for r in range(len(rows)):
        z = np.stack(np.meshgrid(axes[r, 0], axes[r, 1], indexing="ij"), axis=-1).reshape(-1, 2)
        np.testing.assert_allclose(values[r].ravel(), numpy_log_joint(dec, x[rows[r]][None], z, "relu")[0],
                                   rtol=1e-6, atol=1e-4)
    mean, log_std = rng.standard_normal((10, 2)), np.log(rng.uniform(0.05, 0.6, (10, 2)))
    target = decoder_target(dec, x)
    got = gaussian_elbo(target.tabulate, np.arange(10), mean, log_std)
    # The window gaussian_elbo uses: a relu decoder's is KINKED_REFINEMENT times finer, over the same reach.
    assert target.refinement == KINKED_REFINEMENT
    level = lattice_level(np.exp(log_std)) - round(2 * np.log2(KINKED_REFINEMENT))
    axes = window_axes(mean, level, (WINDOW_SIZE - 1) * KINKED_REFINEMENT + 1) * level_spacing(level)[:, :, None]
    for n in range(10):
        # Brute force on the same points: q's weights normalized per axis, times the log joint, plus H(q).
        w = [np.exp(-0.5 * ((axes[n, d] - mean[n, d]) / np.exp(log_std[n, d])) ** 2) for d in (0, 1)]
        w = [v / v.sum() for v in w]
        z = np.stack(np.meshgrid(axes[n, 0], axes[n, 1], indexing="ij"), axis=-1).reshape(-1, 2)
        log_joint = numpy_log_joint(dec, x[n][None], z, "relu")[0].reshape(len(w[0]), len(w[1]))
        entropy = np.sum(log_std[n]) + 1.0 + LOG_2PI
        np.testing.assert_allclose(got[n], w[0] @ log_joint @ w[1] + entropy, rtol=1e-6, atol=1e-4)


def test_a_relu_decoders_finer_windows_take_its_kinks_into_account():
    """A relu decoder's log p(x, z) has kinks, where a lattice sum errs as spacing^2 times the jumps in
    slope: its windows are KINKED_REFINEMENT times finer (decoder_target). Against a midpoint rule of
    spacing std / 50 in eps space (0.0004 or less from one of std / 25), the window ELBO on them is within
    0.02 nats for random weights of sharp kinks, and the lattice a tanh decoder gets errs 25 times more."""
    enc, dec = relu_vae(1, 30, (16, 8))
    rng = np.random.default_rng(1)
    x = (rng.random((20, 30)) < 0.4).astype(np.float64)
    mean, log_std = rng.standard_normal((20, 2)), np.log(rng.uniform(0.05, 0.6, (20, 2)))
    reference = quadrature_elbo(dec, x, mean, log_std, halfwidth=6.0, spacing=0.02)
    rows = np.arange(len(x))
    finer = np.abs(gaussian_elbo(decoder_target(dec, x).tabulate, rows, mean, log_std) - reference).max()
    smooth = np.abs(gaussian_elbo(partial(window_log_joint, dec, x), rows, mean, log_std) - reference).max()
    assert finer < 0.02
    assert smooth > 25 * finer
