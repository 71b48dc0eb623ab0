"""The description of the gradient estimators (vae_autograd.report.estimators) names every
estimator and states only what the study's numbers show.
"""
import json

from vae_autograd.report.estimators import describe_estimators


def test_description_names_every_estimator_and_states_only_what_passes(estimator_result):
    summary = estimator_result["summary"]
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


def test_description_follows_the_ratios(estimator_result):
    summary = json.loads(json.dumps(estimator_result["summary"]))
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
