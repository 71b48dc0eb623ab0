"""Score-function versus reparameterization gradients (vae_autograd.study.estimators), on a tiny synthetic model.

A 784 -> 8 -> 2 decoder in float64 on random binary images: its ELBO is about -560 nats,
so the score function's weights carry the large constant part the estimators differ by,
"""


import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad, grad

from tests.helpers import ESTIMATORS, NUM_ESTIMATES, NUM_IMAGES
from vae_autograd.core.elbo import joint_log_density, log_q
from vae_autograd.study.estimator_study import (
    gradient_estimator_study,
)
from vae_autograd.study.estimators import (
    exact_elbo_and_gradient,
    group_means,
    log_weights_and_reparam_gradients,
    quadrature_elbo,
    score,
    single_sample_estimates,
)


def test_shapes(estimator_setting):
    assert tuple(estimator_setting["estimates"]) == ESTIMATORS
    for values in estimator_setting["estimates"].values():
        assert values.shape == (NUM_ESTIMATES, NUM_IMAGES, 4) and values.dtype == np.float64
    assert estimator_setting["exact"].shape == (NUM_IMAGES, 4) and estimator_setting["elbo"].shape == (NUM_IMAGES,)
    assert np.all(estimator_setting["elbo"] < 0)


def test_same_seed_same_numbers_whatever_the_chunk_size(estimator_setting):
    args = (estimator_setting["dec_params"], estimator_setting["x"][:2], estimator_setting["mean"][:2],
            estimator_setting["log_std"][:2])
    first = single_sample_estimates(*args, np.random.default_rng(7), 40)
    again = single_sample_estimates(*args, np.random.default_rng(7), 40, chunk_rows=6)
    other = single_sample_estimates(*args, np.random.default_rng(8), 40)
    for name in ESTIMATORS:
        np.testing.assert_allclose(again[name], first[name], rtol=1e-5, atol=1e-4)
        assert not np.allclose(other[name], first[name])


def test_broadcast_trick_matches_one_autograd_call_per_sample(estimator_setting):
    dec_params, x = estimator_setting["dec_params"], estimator_setting["x"][:2]
    mean, log_std = (np.asarray(a[:2], np.float64) for a in (estimator_setting["mean"], estimator_setting["log_std"]))
    eps = np.random.default_rng(3).standard_normal((4, 2, 2))
    log_w, grads = log_weights_and_reparam_gradients(dec_params, x, mean, log_std, eps)

    def log_weight_sum(lam, eps_s):
        z = lam[0] + anp.exp(lam[1]) * eps_s
        return anp.sum(joint_log_density(dec_params, x, z) - log_q(lam[0], lam[1], z))

    for s in range(len(eps)):
        grad_mean, grad_log_std = grad(log_weight_sum)((mean, log_std), eps[s])
        np.testing.assert_allclose(grads[s], np.concatenate([grad_mean, grad_log_std], -1), rtol=1e-9)
    # In closed form: d/d mean = grad_z log p, d/d log_std = grad_z log p * sigma * eps + 1.
    z = mean + np.exp(log_std) * eps
    grad_z = elementwise_grad(lambda z: joint_log_density(dec_params, x, z))(z)
    np.testing.assert_allclose(grads, np.concatenate([grad_z, grad_z * np.exp(log_std) * eps + 1], -1),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(log_w, joint_log_density(dec_params, x, z) - log_q(mean, log_std, z))


def test_analytic_score_matches_autograd(estimator_setting):
    mean, log_std = (np.asarray(a[:3], np.float64) for a in (estimator_setting["mean"], estimator_setting["log_std"]))
    eps = np.random.default_rng(4).standard_normal((6, 3, 2))
    z = mean + np.exp(log_std) * eps  # held fixed while lam moves
    copies = (np.broadcast_to(mean, z.shape), np.broadcast_to(log_std, z.shape))
    by_autograd = grad(lambda lam: anp.sum(log_q(lam[0], lam[1], z)))(copies)
    np.testing.assert_allclose(score(mean, log_std, eps), np.concatenate(by_autograd, -1), rtol=1e-10)


def test_exact_gradient_matches_finite_differences_and_a_finer_grid(estimator_setting):
    """Score form on the grid = reparameterization form (finite differences of the grid ELBO)."""
    dec_params, x = estimator_setting["dec_params"], estimator_setting["x"][:1]
    lam = np.hstack([estimator_setting["mean"][:1], estimator_setting["log_std"][:1]]).astype(np.float64)
    _, exact = exact_elbo_and_gradient(dec_params, x, lam[:, :2], lam[:, 2:])
    step = 1e-5
    for d in range(4):
        plus, minus = lam.copy(), lam.copy()
        plus[:, d] += step
        minus[:, d] -= step
        difference = (quadrature_elbo(dec_params, x, plus[:, :2], plus[:, 2:]) -
                      quadrature_elbo(dec_params, x, minus[:, :2], minus[:, 2:])) / (2 * step)
        np.testing.assert_allclose(difference, exact[:, d], rtol=1e-5, atol=1e-5)
    _, finer = exact_elbo_and_gradient(dec_params, x, lam[:, :2], lam[:, 2:], halfwidth=7.5, spacing=0.2)
    np.testing.assert_allclose(exact, finer, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(exact, estimator_setting["exact"][:1], rtol=1e-4, atol=1e-4)  # float32 lam


def test_loo_terms_use_the_other_draws_of_their_group(estimator_setting):
    """Rebuilt by hand from the same eps: draw s of group g has baseline mean(w of the group but s)."""
    args = (estimator_setting["dec_params"], estimator_setting["x"][:2], estimator_setting["mean"][:2],
            estimator_setting["log_std"][:2])
    estimates = single_sample_estimates(*args, np.random.default_rng(6), 7, group_sizes=(2, 3))
    eps = np.random.default_rng(6).standard_normal((7, 2, 2), dtype=np.result_type(args[2], np.float32))
    log_w, _ = log_weights_and_reparam_gradients(*args, eps)
    scores = score(np.float64(args[2]), np.float64(args[3]), np.float64(eps))
    for k in (2, 3):
        terms = estimates[f"score_function_loo_{k}"]
        assert terms.shape == (7 // k * k, 2, 4)  # the last, incomplete group is left out
        for s in range(len(terms)):
            group = range(s // k * k, s // k * k + k)
            baseline = np.mean([log_w[t] for t in group if t != s], axis=0)
            np.testing.assert_allclose(terms[s], (log_w[s] - baseline)[:, None] * scores[s], rtol=1e-6)
    np.testing.assert_allclose(group_means("score_function_loo_3", estimates["score_function_loo_3"]),
                               estimates["score_function_loo_3"].reshape(2, 3, 2, 4).mean(axis=1))
    np.testing.assert_array_equal(group_means("score_function", estimates["score_function"]),
                                  estimates["score_function"])


def test_bad_input_raises_clear_errors(estimator_setting):
    dec_params, x, mean, log_std = (estimator_setting[k] for k in ("dec_params", "x", "mean", "log_std"))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\(N, 784\), got shape \(5, 700\)"):
        single_sample_estimates(dec_params, x[:, :700], mean, log_std, rng, 10)
    with pytest.raises(ValueError, match="one row per image"):
        exact_elbo_and_gradient(dec_params, x, mean[:3], log_std)
    with pytest.raises(ValueError, match="num_estimates"):
        single_sample_estimates(dec_params, x, mean, log_std, rng, 1)
    with pytest.raises(ValueError, match="group_sizes must be distinct integers >= 2"):
        single_sample_estimates(dec_params, x, mean, log_std, rng, 10, group_sizes=(1, 2))
    with pytest.raises(ValueError, match=r"\(N, 784\), got shape \(5, 700\)"):
        gradient_estimator_study(*estimator_setting["enc_dec"], x[:, :700], rng, 10)
    with pytest.raises(ValueError, match="estimates_per_image must be an integer >= 20"):
        gradient_estimator_study(*estimator_setting["enc_dec"], x, rng, 100, estimates_per_image=10)
