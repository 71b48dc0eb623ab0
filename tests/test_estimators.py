"""Score-function versus reparameterization gradients (study part 7), on a tiny synthetic model.

A 784 -> 8 -> 2 decoder in float64 on random binary images: its ELBO is about -560 nats,
so the score function's weights carry the large constant part the estimators differ by,
and every test takes well under a second."""
import json

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad, grad
from scipy import stats

from vae_autograd.elbo import joint_log_density, log_q
from vae_autograd.estimators import (
    ESTIMATORS,
    aggregate_table,
    estimator_table,
    exact_elbo_and_gradient,
    fig_gradient_histograms,
    gradient_estimator_study,
    log_weights_and_reparam_gradients,
    quadrature_elbo,
    score,
    single_sample_estimates,
)
from vae_autograd.model import encoder, init_vae_params

NUM_IMAGES, NUM_ESTIMATES = 5, 10000


@pytest.fixture(scope="module")
def tiny():
    """(enc_params, dec_params): an untrained 784 -> 8 -> 2 VAE in float64."""
    return init_vae_params(np.random.default_rng(0), 784, 8, 2, scale=0.3, dtype=np.float64)


@pytest.fixture(scope="module")
def images():
    """Five random binary images (5, 784)."""
    return (np.random.default_rng(1).random((NUM_IMAGES, 784)) < 0.3).astype(np.float64)


@pytest.fixture(scope="module")
def setting(tiny, images):
    """Five images, their q parameters, 10^4 estimates of each kind and the exact gradient."""
    enc_params, dec_params = tiny
    x = images
    mean, log_std = encoder(enc_params, x)
    estimates = single_sample_estimates(dec_params, x, mean, log_std, np.random.default_rng(1),
                                        NUM_ESTIMATES)
    elbo, exact = exact_elbo_and_gradient(dec_params, x, mean, log_std)
    return {"enc_dec": tiny, "dec_params": dec_params, "x": x, "mean": mean, "log_std": log_std,
            "estimates": estimates, "exact": exact, "elbo": elbo}


def test_shapes(setting):
    assert tuple(setting["estimates"]) == ESTIMATORS
    for values in setting["estimates"].values():
        assert values.shape == (NUM_ESTIMATES, NUM_IMAGES, 4) and values.dtype == np.float64
    assert setting["exact"].shape == (NUM_IMAGES, 4) and setting["elbo"].shape == (NUM_IMAGES,)
    assert np.all(setting["elbo"] < 0)


def test_same_seed_same_numbers_whatever_the_chunk_size(setting):
    args = setting["dec_params"], setting["x"][:2], setting["mean"][:2], setting["log_std"][:2]
    first = single_sample_estimates(*args, np.random.default_rng(7), 40)
    again = single_sample_estimates(*args, np.random.default_rng(7), 40, chunk_rows=6)
    other = single_sample_estimates(*args, np.random.default_rng(8), 40)
    for name in ESTIMATORS:
        np.testing.assert_allclose(again[name], first[name], rtol=1e-5, atol=1e-4)
        assert not np.allclose(other[name], first[name])


def test_broadcast_trick_matches_one_autograd_call_per_sample(setting):
    dec_params, x = setting["dec_params"], setting["x"][:2]
    mean, log_std = (np.asarray(a[:2], np.float64) for a in (setting["mean"], setting["log_std"]))
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


def test_analytic_score_matches_autograd(setting):
    mean, log_std = (np.asarray(a[:3], np.float64) for a in (setting["mean"], setting["log_std"]))
    eps = np.random.default_rng(4).standard_normal((6, 3, 2))
    z = mean + np.exp(log_std) * eps  # held fixed while lam moves
    copies = (np.broadcast_to(mean, z.shape), np.broadcast_to(log_std, z.shape))
    by_autograd = grad(lambda lam: anp.sum(log_q(lam[0], lam[1], z)))(copies)
    np.testing.assert_allclose(score(mean, log_std, eps), np.concatenate(by_autograd, -1), rtol=1e-10)


def test_exact_gradient_matches_finite_differences_and_a_finer_grid(setting):
    """Score form on the grid = reparameterization form (finite differences of the grid ELBO)."""
    dec_params, x = setting["dec_params"], setting["x"][:1]
    lam = np.hstack([setting["mean"][:1], setting["log_std"][:1]]).astype(np.float64)
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
    np.testing.assert_allclose(exact, setting["exact"][:1], rtol=1e-4, atol=1e-4)  # float32 lam


def test_every_estimator_is_unbiased(setting):
    """Means within 4 standard errors of the exact gradient: the focus and all 20 components.

    The max over 20 correlated z-scores is bounded with Bonferroni at family-wise 1e-3.
    """
    bound = stats.norm.isf(1e-3 / (2 * NUM_IMAGES * 4))
    table = aggregate_table(setting["estimates"], setting["exact"])
    rows = estimator_table(setting["estimates"], setting["exact"], ks=(1,))
    for name in ESTIMATORS:
        assert abs(next(r for r in rows if r["estimator"] == name)["bias_in_se"]) < 4, name
        assert table[name]["max_abs_z"] < bound, (name, table[name])


def test_score_function_variance_far_exceeds_reparameterization(setting):
    rows = estimator_table(setting["estimates"], setting["exact"], ks=(1,))
    focus = next(r for r in rows if r["estimator"] == "score_function")
    assert focus["variance_ratio_to_reparameterization"] > 100
    assert aggregate_table(setting["estimates"], setting["exact"])["score_function"]["min_variance_ratio"] > 10


def test_baseline_removes_most_of_the_score_function_variance(setting):
    plain = np.var(setting["estimates"]["score_function"], axis=0)
    baseline = np.var(setting["estimates"]["score_function_baseline"], axis=0)
    # Measured on this model: 84 to 7,500 times smaller, depending on the component.
    assert np.all(baseline < plain / 50)


def test_variance_falls_as_one_over_k(setting):
    rows = estimator_table(setting["estimates"], setting["exact"], ks=(1, 10, 100))
    assert {(r["estimator"], r["K"]) for r in rows} == {(n, k) for n in ESTIMATORS for k in (1, 10, 100)}
    for row in rows:
        # 100 blocks at K = 100: the variance estimate itself is uncertain by about 15%.
        assert 0.5 < row["variance_times_K_over_K1"] < 1.6, row
        assert row["num_estimates"] == NUM_ESTIMATES // row["K"]
        np.testing.assert_allclose(row["se"], row["std"] / np.sqrt(row["num_estimates"]), rtol=1e-12)
        np.testing.assert_allclose(row["bias_in_se"], (row["mean"] - row["exact"]) / row["se"], rtol=1e-12)
        if row["estimator"] == "reparameterization":
            assert row["variance_ratio_to_reparameterization"] == 1.0
    focus = setting["estimates"]["score_function"][:, 0, 0]
    single = next(r for r in rows if r["estimator"] == "score_function" and r["K"] == 1)
    assert single["mean"] == np.mean(focus) and single["exact"] == setting["exact"][0, 0]
    assert json.loads(json.dumps(rows)) == rows


def test_study_summarizes_the_estimates_and_the_exact_gradient(tiny, images):
    enc_params, dec_params = tiny
    x = images[:2]
    study = gradient_estimator_study(enc_params, dec_params, x, np.random.default_rng(5), num_estimates=400)
    again = gradient_estimator_study(enc_params, dec_params, x, np.random.default_rng(5), num_estimates=400)
    assert json.loads(json.dumps(study["summary"])) == again["summary"]
    # The same numbers as the study's steps taken one by one with the same generator.
    mean, log_std = encoder(enc_params, x)
    estimates = single_sample_estimates(dec_params, x, mean, log_std, np.random.default_rng(5), 400)
    elbo, exact = exact_elbo_and_gradient(dec_params, x, mean, log_std)
    summary = study["summary"]
    assert summary["exact"] == exact[0, 0] and summary["exact_gradient_image0"] == exact[0].tolist()
    assert summary["elbo_quadrature_mean"] == np.mean(elbo)
    assert summary["table"] == estimator_table(estimates, exact)
    assert summary["aggregate"] == aggregate_table(estimates, exact)
    assert summary["component_order"] == ["mean_1", "mean_2", "log_std_1", "log_std_2"]
    for name in ESTIMATORS:
        np.testing.assert_array_equal(study["focus_estimates"][name], estimates[name][:, 0, 0])


def test_figure_shares_the_x_range_and_marks_the_exact_value(setting):
    focus = {name: values[:, 0, 0] for name, values in setting["estimates"].items()}
    exact = setting["exact"][0, 0]
    fig = fig_gradient_histograms(focus, exact)
    assert len(fig.axes) == 3
    assert len({ax.get_xlim() for ax in fig.axes}) == 1
    for ax in fig.axes:
        assert any(np.allclose(line.get_xdata(), exact) for line in ax.get_lines())
    # The shared range is the score function's, so the reparameterization one is a spike.
    low, high = fig.axes[0].get_xlim()
    assert high - low > 20 * np.std(focus["reparameterization"])


def test_bad_input_raises_clear_errors(setting):
    dec_params, x, mean, log_std = (setting[k] for k in ("dec_params", "x", "mean", "log_std"))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\(N, 784\), got shape \(5, 700\)"):
        single_sample_estimates(dec_params, x[:, :700], mean, log_std, rng, 10)
    with pytest.raises(ValueError, match="one row per image"):
        exact_elbo_and_gradient(dec_params, x, mean[:3], log_std)
    with pytest.raises(ValueError, match="num_estimates"):
        single_sample_estimates(dec_params, x, mean, log_std, rng, 1)
    with pytest.raises(ValueError, match=r"\(N, 784\), got shape \(5, 700\)"):
        gradient_estimator_study(*setting["enc_dec"], x[:, :700], rng, 10)
