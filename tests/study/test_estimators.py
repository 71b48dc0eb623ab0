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

from vae_autograd.core.elbo import joint_log_density, log_q
from vae_autograd.core.model import encoder, init_vae_params
from vae_autograd.figures.estimators import fig_gradient_histograms
from vae_autograd.report.estimators import describe_estimators
from vae_autograd.study.estimator_study import (
    estimator_table,
    gradient_estimator_study,
    quartiles,
    ratio_quartiles,
    unbiasedness_check,
    variance_per_draw,
    variance_ratios,
)
from vae_autograd.study.estimators import (
    estimator_names,
    exact_elbo_and_gradient,
    group_means,
    log_weights_and_reparam_gradients,
    quadrature_elbo,
    score,
    single_sample_estimates,
)

NUM_IMAGES, NUM_ESTIMATES = 5, 10000
ESTIMATORS = estimator_names()
LOO = [name for name in ESTIMATORS if name.startswith("score_function_loo_")]


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


def test_loo_terms_use_the_other_draws_of_their_group(setting):
    """Rebuilt by hand from the same eps: draw s of group g has baseline mean(w of the group but s)."""
    args = setting["dec_params"], setting["x"][:2], setting["mean"][:2], setting["log_std"][:2]
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


def test_every_estimator_is_unbiased(setting):
    """Means within the Bonferroni bound of the exact gradient: the focus and all 20 components.

    The z-scores of the baseline estimators come from their group means, which are
    independent; the max over 5 estimators x 20 correlated z-scores is bounded with
    Bonferroni at family-wise 1e-3.
    """
    check = unbiasedness_check([(setting["estimates"], setting["exact"])], family_wise_level=1e-3)
    bound = stats.norm.isf(1e-3 / (2 * len(ESTIMATORS) * NUM_IMAGES * 4))
    assert check["z_threshold"] == pytest.approx(bound, rel=1e-9)
    assert check["components_per_estimator"] == NUM_IMAGES * 4
    assert check["num_tests"] == NUM_IMAGES * 4 * len(ESTIMATORS)
    rows = estimator_table(setting["estimates"], setting["exact"], ks=(1,))
    for name in ESTIMATORS:
        focus = next(r for r in rows if r["estimator"] == name)
        assert abs(focus["bias_in_se"]) < 4, name
        assert check["estimators"][name]["passes"], (name, check["estimators"][name])


def test_unbiasedness_check_flags_a_shifted_estimator(setting):
    shifted = dict(setting["estimates"])
    shifted["score_function_loo_5"] = shifted["score_function_loo_5"] + 5.0  # about 10 SE at this S
    check = unbiasedness_check([(shifted, setting["exact"])])
    assert not check["estimators"]["score_function_loo_5"]["passes"]
    assert check["estimators"]["score_function_loo_5"]["max_abs_z"] > 2 * check["z_threshold"]
    assert check["estimators"]["reparameterization"]["passes"]


def test_score_function_variance_far_exceeds_reparameterization(setting):
    rows = estimator_table(setting["estimates"], setting["exact"], ks=(1,))
    focus = next(r for r in rows if r["estimator"] == "score_function")
    assert focus["variance_ratio_to_reparameterization"] > 100
    assert np.min(variance_ratios(setting["estimates"])["score_function"]) > 10


def test_within_k_baseline_removes_most_of_the_score_function_variance(setting):
    """The ELBO here is about -560 nats, so w is a large constant plus noise: any baseline near
    it removes most of the variance, even the one other draw of a pair."""
    plain = variance_per_draw("score_function", setting["estimates"]["score_function"])
    for name in LOO:
        # Measured on this model: 30 (K = 2) to 7,000 times smaller, depending on the component.
        assert np.all(variance_per_draw(name, setting["estimates"][name]) < plain / 10), name
    ratios = variance_ratios(setting["estimates"])
    medians = [np.median(ratios[name]) for name in LOO]
    assert medians[0] > medians[-1]  # more draws in the group, a better baseline


def test_loo_variance_per_draw_counts_the_covariance_within_a_group(setting):
    """Two terms of one group have covariance g^2 / (K - 1)^2 (each baseline holds the other's
    w), so K var(group mean) = var(term) + g^2 / (K - 1). g is large on the log_std components."""
    exact = setting["exact"]
    for name in LOO:
        k = int(name.rsplit("_", 1)[1])
        terms = setting["estimates"][name]
        predicted = np.var(terms, axis=0, ddof=1) + exact**2 / (k - 1)
        # 1,000 to 5,000 group means: the variance estimates are good to 2-5%.
        np.testing.assert_allclose(variance_per_draw(name, terms), predicted, rtol=0.2)


def test_variance_per_draw_is_constant_in_the_number_of_draws(setting):
    rows = estimator_table(setting["estimates"], setting["exact"], ks=(1, 10, 100))
    sizes = {name: int(name.rsplit("_", 1)[1]) if name in LOO else 1 for name in ESTIMATORS}
    expected = {(n, d) for n in ESTIMATORS for d in {1, 10, 100, sizes[n]} if d % sizes[n] == 0}
    assert {(r["estimator"], r["draws"]) for r in rows} == expected
    reparam_single = next(r for r in rows if r["estimator"] == "reparameterization" and r["draws"] == 1)
    for row in rows:
        # 100 estimates at 100 draws: the variance estimate itself is uncertain by about 15%.
        assert 0.5 < row["variance_per_draw_over_smallest_n"] < 1.6, row
        assert row["num_estimates"] == NUM_ESTIMATES // row["draws"]
        np.testing.assert_allclose(row["variance_per_draw"], row["variance"] * row["draws"], rtol=1e-12)
        np.testing.assert_allclose(row["variance_ratio_to_reparameterization"],
                                   row["variance_per_draw"] / reparam_single["variance"], rtol=1e-12)
        np.testing.assert_allclose(row["se"], row["std"] / np.sqrt(row["num_estimates"]), rtol=1e-12)
        np.testing.assert_allclose(row["bias_in_se"], (row["mean"] - row["exact"]) / row["se"], rtol=1e-12)
    assert reparam_single["variance_ratio_to_reparameterization"] == 1.0
    focus = setting["estimates"]["score_function"][:, 0, 0]
    single = next(r for r in rows if r["estimator"] == "score_function" and r["draws"] == 1)
    assert single["mean"] == np.mean(focus) and single["exact"] == setting["exact"][0, 0]
    pairs = next(r for r in rows if r["estimator"] == "score_function_loo_2" and r["draws"] == 2)
    pair_means = setting["estimates"]["score_function_loo_2"][:, 0, 0].reshape(-1, 2).mean(axis=1)
    np.testing.assert_allclose(pairs["variance"], np.var(pair_means, ddof=1), rtol=1e-12)
    assert pairs["num_estimates"] == len(pair_means)
    assert json.loads(json.dumps(rows)) == rows


def test_quartiles_on_a_hand_example():
    assert quartiles([5.0, 1.0, 4.0, 2.0, 3.0]) == {"min": 1.0, "q25": 2.0, "median": 3.0, "q75": 4.0,
                                                     "max": 5.0, "count": 5}
    # Four values: the quartiles interpolate between order statistics (numpy's "linear").
    assert quartiles(np.array([[10.0, 0.0], [30.0, 20.0]])) == {"min": 0.0, "q25": 7.5, "median": 15.0,
                                                                "q75": 22.5, "max": 30.0, "count": 4}
    ratios = np.array([[1.0, 2.0, 10.0, 20.0],    # image 0: mean_1, mean_2, log_std_1, log_std_2
                       [3.0, 4.0, 30.0, 40.0],
                       [5.0, 6.0, 50.0, 60.0]])
    summary = ratio_quartiles(ratios)
    assert summary["mean_1"] == quartiles([1.0, 3.0, 5.0]) and summary["mean_1"]["median"] == 3.0
    assert summary["mean"] == {"min": 1.0, "q25": 2.25, "median": 3.5, "q75": 4.75, "max": 6.0, "count": 6}
    assert summary["log_std"]["median"] == 35.0 and summary["log_std"]["min"] == 10.0


@pytest.fixture(scope="module")
def study(tiny, images):
    enc_params, dec_params = tiny
    return gradient_estimator_study(enc_params, dec_params, images[:3], np.random.default_rng(5),
                                    num_estimates=400, estimates_per_image=200)


def test_study_summarizes_the_estimates_and_the_exact_gradient(tiny, images, study):
    enc_params, dec_params = tiny
    x = images[:3]
    again = gradient_estimator_study(enc_params, dec_params, x, np.random.default_rng(5), num_estimates=400,
                                     estimates_per_image=200)
    summary = study["summary"]
    assert json.loads(json.dumps(summary)) == again["summary"]
    # The same numbers as the study's steps taken one by one with the same generator.
    rng = np.random.default_rng(5)
    mean, log_std = encoder(enc_params, x)
    focus = single_sample_estimates(dec_params, x[:1], mean[:1], log_std[:1], rng, 400)
    per_image = single_sample_estimates(dec_params, x, mean, log_std, rng, 200)
    elbo, exact = exact_elbo_and_gradient(dec_params, x, mean, log_std)
    assert summary["estimators"] == list(ESTIMATORS) and summary["group_sizes"] == [2, 5, 10]
    assert summary["labels"]["score_function_loo_5"] == "score function, leave-one-out baseline within K = 5"
    assert summary["focus"]["exact"] == exact[0, 0] and summary["focus"]["exact_gradient"] == exact[0].tolist()
    assert summary["focus"]["table"] == estimator_table(focus, exact[:1])
    assert summary["focus"]["num_estimates"] == 400
    assert summary["elbo_quadrature_mean"] == np.mean(elbo)
    assert summary["component_order"] == ["mean_1", "mean_2", "log_std_1", "log_std_2"]
    ratios = variance_ratios(per_image)
    assert summary["images"]["num_images"] == 3 and summary["images"]["estimates_per_image"] == 200
    for name in ESTIMATORS:
        np.testing.assert_array_equal(study["variance_ratios"][name], ratios[name])
        assert summary["images"]["variance_ratio"][name] == ratio_quartiles(ratios[name])
        np.testing.assert_array_equal(study["focus_estimates"][name], focus[name][:, 0, 0])
    assert summary["unbiasedness"] == unbiasedness_check([(per_image, exact), (focus, exact[:1])])
    assert set(summary["images"]["focus_rank"]) == set(ESTIMATORS) - {"reparameterization"}


def test_description_names_every_estimator_and_states_only_what_passes(study):
    summary = study["summary"]
    text = " ".join(describe_estimators(summary))
    assert "leave-one-out baseline within K = 2, 5 and 10 draws" in text
    assert "score function (REINFORCE)" in text and "reparameterization estimator" in text
    assert "No estimator shows a detectable bias" in text and "do not support" not in text
    q = summary["images"]["variance_ratio"]["score_function_loo_10"]["log_std"]
    assert f"{q['median']:,.3g} (quartiles {q['q25']:,.3g} to {q['q75']:,.3g}" in text
    assert f"{summary['unbiasedness']['z_threshold']:.2f}" in text

    biased = json.loads(json.dumps(summary))
    biased["unbiasedness"]["estimators"]["score_function_loo_5"]["max_abs_z"] = 9.0
    text = " ".join(describe_estimators(biased))
    assert "No estimator shows a detectable bias" not in text
    assert ("score function, leave-one-out baseline within K = 5 estimator's mean differs from the exact "
            "gradient by up to 9.0 standard errors") in text
    assert "do not support calling it unbiased" in text
    assert "reparameterization estimators pass" in text


def test_description_follows_the_ratios(study):
    summary = json.loads(json.dumps(study["summary"]))
    for name in ("score_function_loo_2", "score_function_loo_5", "score_function_loo_10"):
        for part in ("mean", "log_std"):
            summary["images"]["variance_ratio"][name][part]["min"] = 2.0
    summary["images"]["variance_ratio"]["score_function_loo_5"]["mean"]["median"] = 1e6
    text = " ".join(describe_estimators(summary))
    assert "no baseline estimator has a lower variance than reparameterization" in text
    assert "does not fall steadily as K grows" in text
    summary["images"]["variance_ratio"]["score_function_loo_10"]["log_std"]["min"] = 0.5
    text = " ".join(describe_estimators(summary))
    assert "on some components the baseline within K = 10 gives a lower variance than reparameterization" in text
    assert "(smallest ratios 0.5)" in text


def test_figure_shares_the_x_range_and_names_each_baseline_with_its_k(setting):
    focus = {name: values[:, 0, 0] for name, values in setting["estimates"].items()}
    exact = setting["exact"][0, 0]
    fig = fig_gradient_histograms(focus, exact)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == len(ESTIMATORS)
    assert len({ax.get_xlim() for ax in panels}) == 1
    for ax, name in zip(panels, ESTIMATORS):
        assert any(np.allclose(line.get_xdata(), exact) for line in ax.get_lines())
        if name in LOO:
            assert f"leave-one-out baseline within K = {name.rsplit('_', 1)[1]}:" in ax.get_title()
    # The shared range is the score function's, so the reparameterization one is a spike.
    low, high = panels[0].get_xlim()
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
    with pytest.raises(ValueError, match="group_sizes must be distinct integers >= 2"):
        single_sample_estimates(dec_params, x, mean, log_std, rng, 10, group_sizes=(1, 2))
    with pytest.raises(ValueError, match=r"\(N, 784\), got shape \(5, 700\)"):
        gradient_estimator_study(*setting["enc_dec"], x[:, :700], rng, 10)
    with pytest.raises(ValueError, match="estimates_per_image must be an integer >= 20"):
        gradient_estimator_study(*setting["enc_dec"], x, rng, 100, estimates_per_image=10)
