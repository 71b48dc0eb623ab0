"""The study of the gradient estimators (vae_autograd.study.estimator_study): unbiasedness,
variances per draw, quartiles, and the study's summary, on conftest's estimator setting.
"""
import json

import numpy as np
import pytest
from scipy import stats

from tests.helpers import ESTIMATORS, LOO, NUM_ESTIMATES, NUM_IMAGES
from vae_autograd.core.model import encoder
from vae_autograd.study.estimator_study import (
    estimator_table,
    gradient_estimator_study,
    quartiles,
    ratio_quartiles,
    unbiasedness_check,
    variance_per_draw,
    variance_ratios,
)
from vae_autograd.study.estimators import exact_elbo_and_gradient, single_sample_estimates


def test_every_estimator_is_unbiased(estimator_setting):
    """Means within the Bonferroni bound of the exact gradient: the focus and all 20 components.

    The z-scores of the baseline estimators come from their group means, which are
    independent; the max over 5 estimators x 20 correlated z-scores is bounded with
    Bonferroni at family-wise 1e-3.
    """
    check = unbiasedness_check([(estimator_setting["estimates"], estimator_setting["exact"])], family_wise_level=1e-3)
    bound = stats.norm.isf(1e-3 / (2 * len(ESTIMATORS) * NUM_IMAGES * 4))
    assert check["z_threshold"] == pytest.approx(bound, rel=1e-9)
    assert check["components_per_estimator"] == NUM_IMAGES * 4
    assert check["num_tests"] == NUM_IMAGES * 4 * len(ESTIMATORS)
    rows = estimator_table(estimator_setting["estimates"], estimator_setting["exact"], ks=(1,))
    for name in ESTIMATORS:
        focus = next(r for r in rows if r["estimator"] == name)
        assert abs(focus["bias_in_se"]) < 4, name
        assert check["estimators"][name]["passes"], (name, check["estimators"][name])


def test_unbiasedness_check_flags_a_shifted_estimator(estimator_setting):
    shifted = dict(estimator_setting["estimates"])
    shifted["score_function_loo_5"] = shifted["score_function_loo_5"] + 5.0  # about 10 SE at this S
    check = unbiasedness_check([(shifted, estimator_setting["exact"])])
    assert not check["estimators"]["score_function_loo_5"]["passes"]
    assert check["estimators"]["score_function_loo_5"]["max_abs_z"] > 2 * check["z_threshold"]
    assert check["estimators"]["reparameterization"]["passes"]


def test_score_function_variance_far_exceeds_reparameterization(estimator_setting):
    rows = estimator_table(estimator_setting["estimates"], estimator_setting["exact"], ks=(1,))
    focus = next(r for r in rows if r["estimator"] == "score_function")
    assert focus["variance_ratio_to_reparameterization"] > 100
    assert np.min(variance_ratios(estimator_setting["estimates"])["score_function"]) > 10


def test_within_k_baseline_removes_most_of_the_score_function_variance(estimator_setting):
    """The ELBO here is about -560 nats, so w is a large constant plus noise: any baseline near
    it removes most of the variance, even the one other draw of a pair."""
    plain = variance_per_draw("score_function", estimator_setting["estimates"]["score_function"])
    for name in LOO:
        # Measured on this model: 30 (K = 2) to 7,000 times smaller, depending on the component.
        assert np.all(variance_per_draw(name, estimator_setting["estimates"][name]) < plain / 10), name
    ratios = variance_ratios(estimator_setting["estimates"])
    medians = [np.median(ratios[name]) for name in LOO]
    assert medians[0] > medians[-1]  # more draws in the group, a better baseline


def test_loo_variance_per_draw_counts_the_covariance_within_a_group(estimator_setting):
    """Two terms of one group have covariance g^2 / (K - 1)^2 (each baseline holds the other's
    w), so K var(group mean) = var(term) + g^2 / (K - 1). g is large on the log_std components."""
    exact = estimator_setting["exact"]
    for name in LOO:
        k = int(name.rsplit("_", 1)[1])
        terms = estimator_setting["estimates"][name]
        predicted = np.var(terms, axis=0, ddof=1) + exact**2 / (k - 1)
        # 1,000 to 5,000 group means: the variance estimates are good to 2-5%.
        np.testing.assert_allclose(variance_per_draw(name, terms), predicted, rtol=0.2)


def test_variance_per_draw_is_constant_in_the_number_of_draws(estimator_setting):
    rows = estimator_table(estimator_setting["estimates"], estimator_setting["exact"], ks=(1, 10, 100))
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
    focus = estimator_setting["estimates"]["score_function"][:, 0, 0]
    single = next(r for r in rows if r["estimator"] == "score_function" and r["draws"] == 1)
    assert single["mean"] == np.mean(focus) and single["exact"] == estimator_setting["exact"][0, 0]
    pairs = next(r for r in rows if r["estimator"] == "score_function_loo_2" and r["draws"] == 2)
    pair_means = estimator_setting["estimates"]["score_function_loo_2"][:, 0, 0].reshape(-1, 2).mean(axis=1)
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


def test_study_summarizes_the_estimates_and_the_exact_gradient(untrained_vae, estimator_images, estimator_result):
    enc_params, dec_params = untrained_vae
    x = estimator_images[:3]
    again = gradient_estimator_study(enc_params, dec_params, x, np.random.default_rng(5), num_estimates=400,
                                     estimates_per_image=200)
    summary = estimator_result["summary"]
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
        np.testing.assert_array_equal(estimator_result["variance_ratios"][name], ratios[name])
        assert summary["images"]["variance_ratio"][name] == ratio_quartiles(ratios[name])
        np.testing.assert_array_equal(estimator_result["focus_estimates"][name], focus[name][:, 0, 0])
    assert summary["unbiasedness"] == unbiasedness_check([(per_image, exact), (focus, exact[:1])])
    assert set(summary["images"]["focus_rank"]) == set(ESTIMATORS) - {"reparameterization"}
