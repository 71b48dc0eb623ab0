"""The description of the gradient estimators (vae_autograd.report.estimators) names every
estimator and states only what the study's numbers show.
"""
from vae_autograd.report.estimators import describe_estimators, estimator_section
from vae_autograd.report.format import number


def said(summary):
    return " ".join(describe_estimators(summary).values())


def test_description_names_every_estimator_and_states_only_what_passes(results):
    summary = results["gradient_estimators"]
    for check in summary["unbiasedness"]["estimators"].values():
        check["max_abs_z"] = 1.0
    text = said(summary)
    assert "leave-one-out baseline within K = 2, 5 and 10 draws" in text
    assert "score function (REINFORCE)" in text and "reparameterization estimator" in text
    assert "No estimator shows a detectable bias" in text and "do not support" not in text
    q = summary["images"]["variance_ratio"]["score_function_loo_10"]["log_std"]
    assert f"{q['median']:,.3g} (quartiles {q['q25']:,.3g} to {q['q75']:,.3g}" in text
    assert f"{summary['unbiasedness']['z_threshold']:.2f}" in text

    summary["unbiasedness"]["estimators"]["score_function_loo_5"]["max_abs_z"] = 9.0
    text = said(summary)
    assert "No estimator shows a detectable bias" not in text
    assert ("score function, leave-one-out baseline within K = 5 estimator's mean differs from the exact "
            "gradient by up to 9.0 standard errors") in text
    assert "do not support calling it unbiased" in text
    assert "reparameterization estimators pass" in text


def test_description_claims_nothing_from_the_ratios_minima_or_the_order_of_their_medians(results):
    """The smallest ratio is the minimum of noisy estimates, and the medians have no interval:
    the text with them changed is the text with them changed, in the numbers only."""
    summary = results["gradient_estimators"]
    before = said(summary)
    median = summary["images"]["variance_ratio"]["score_function_loo_5"]["mean"]
    smallest = summary["images"]["variance_ratio"]["score_function_loo_10"]["log_std"]
    shown = f"{number(median['median'])} (quartiles", f"smallest {number(smallest['min'])})"
    median["median"], smallest["min"] = 999, 0.5  # far above the others' medians; below 1
    after = said(summary)
    assert after.replace("999 (quartiles", shown[0]).replace("smallest 0.5)", shown[1]) == before


def test_the_bias_sentence_gives_the_z_scores_unrounded_down(results):
    summary = results["gradient_estimators"]
    for check in summary["unbiasedness"]["estimators"].values():
        check["max_abs_z"] = 1.0
    summary["focus"]["table"][0]["bias_in_se"] = -0.357
    assert "their means lie 0.36, " in said(summary)


def test_the_group_sizes_are_read_from_the_results(results):
    summary = results["gradient_estimators"]
    summary["group_size"]["score_function_loo_10"] = 12  # as another run might record them
    assert "within K = 2, 5 and 12 draws" in said(summary)


def test_the_section_tables_every_estimator_and_ends_with_the_description(results):
    summary = results["gradient_estimators"]
    lines = estimator_section(summary)
    rows = [line for line in lines if line.startswith("| score function") or line.startswith("| reparam")]
    assert len(rows) == len(summary["focus"]["table"]) + len(summary["estimators"]) - 1
    assert lines[-2] == describe_estimators(summary)["focus"]


def test_the_focus_image_is_named_among_the_images_its_ratio_is_ranked_against(results):
    """Image 0's ratio is ranked against every image's, its own from its other draws among them (the study draws
    for x[0] again): 'higher than 17 of the 20 images' ratios' counted it without saying so."""
    summary = results["gradient_estimators"]
    images = summary["images"]
    images.update(num_images=20, estimates_per_image=1000)
    focus = describe_estimators(summary)["focus"]
    assert f"of the {images['variance_ratio']['score_function']['mean_1']['count']} images' ratios" in focus
    assert focus.endswith("Image 0 is one of those 20 images, with 1000 further draws there: its ratio from those "
                          "draws is one of the ratios counted.")
