"""Part 7 in words: the estimator tables and the sentences computed from them."""
from .format import join, number


def estimator_section(summary):
    """Part 7: image 0's table, the variance ratios over the test images, and sentences
    computed from them (estimators.describe_estimators)."""
    focus, images, labels = summary["focus"], summary["images"], summary["labels"]
    lines = ["## Gradient estimators", "",
             f"{focus['component']}, exact value {focus['exact']:.3f} (quadrature); "
             f"{focus['num_estimates']} draws for each estimator. An estimate from n draws is the "
             "mean of n single-draw terms (for a baseline within K, of n / K groups of K); its "
             "variance per draw is n times its variance, in expectation the same for every n:", "",
             "| estimator | draws n | mean | std | standard error | bias / SE | variance per draw / reparam |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in focus["table"]:
        lines.append(f"| {labels[row['estimator']]} | {row['draws']} | {row['mean']:.3f} | {row['std']:.3f} | "
                     f"{row['se']:.3f} | {row['bias_in_se']:+.2f} | "
                     f"{row['variance_ratio_to_reparameterization']:.3g} |")
    lines += ["", f"Variance per draw divided by the reparameterization estimator's, over "
              f"{images['num_images']} test images ({images['estimates_per_image']} draws each): "
              "median [25%, 75%], smallest.", "",
              "| estimator | d/d mean_1 | d/d mean (both dimensions) | d/d log_std (both dimensions) |",
              "| --- | --- | --- | --- |"]
    for name in summary["estimators"]:
        if name != "reparameterization":
            cells = [f"{q['median']:.3g} [{q['q25']:.3g}, {q['q75']:.3g}], {q['min']:.3g}"
                     for q in (images["variance_ratio"][name][part] for part in ("mean_1", "mean", "log_std"))]
            lines.append(f"| {labels[name]} | " + " | ".join(cells) + " |")
    lines.append("")
    for paragraph in describe_estimators(summary).values():
        lines += [paragraph, ""]
    return lines


def describe_estimators(summary):
    """Sentences for the report, each claim computed from summary (gradient_estimator_study's).

    Names every estimator; says which are unbiased only as far as the z-scores pass the
    stated threshold; gives the variance ratios' quartiles over the images and where the
    focus image's ratio lies among them. Returns {name: paragraph}, in the report's order:
    "compared", "bias", "variance", and "focus" where it applies.
    """
    names, labels, focus = summary["estimators"], summary["labels"], summary["focus"]
    group_size = summary["group_size"]  # {estimator: draws per group K}
    images, check = summary["images"], summary["unbiasedness"]
    smallest_rows = {row["estimator"]: row for row in reversed(focus["table"])}  # each one's smallest n
    loo = [name for name in names if group_size[name] > 1]
    paragraphs = {"compared": (
        f"{len(names)} estimators of the ELBO's gradient are compared: the score function "
        f"(REINFORCE), the score function with a leave-one-out baseline within K = "
        f"{join([str(group_size[n]) for n in loo])} draws (the draws are taken in groups of K and "
        f"each draw's baseline is the mean log weight of the other K - 1 draws of its group, as a "
        f"training loop drawing K samples per image could do), and the reparameterization estimator. "
        f"Variances are per draw (K times the variance of a K-draw estimate), so ratios compare "
        f"estimators at an equal number of decoder passes.")}

    # Judged here from the z-scores and the threshold, so a summary edited by hand cannot contradict itself.
    passing = [n for n in names if check["estimators"][n]["max_abs_z"] < check["z_threshold"]]
    failing = [n for n in names if n not in passing]
    focus_z = join([f"{abs(smallest_rows[n]['bias_in_se']):.2f}" for n in names if n in smallest_rows])
    with_focus = check["components_per_estimator"] > images["num_images"] * len(summary["component_order"])
    scope = (f"{check['components_per_estimator']} gradient components per estimator ("
             + (f"the focus image's {focus['num_estimates']} draws and " if with_focus else "")
             + f"each of {images['num_images']} test images' {images['estimates_per_image']})")
    rule = (f"the Bonferroni threshold {check['z_threshold']:.2f} (family-wise level "
            f"{check['family_wise_level']:g} over all {check['num_tests']} tests)")
    if not failing:
        paragraphs["bias"] = (
            f"No estimator shows a detectable bias: on {focus['component']} (exact value "
            f"{focus['exact']:.3f}, by quadrature) their means lie {focus_z} standard errors from "
            f"the exact gradient, in the order above; over {scope} the largest |z| of any estimator is "
            f"{max(check['estimators'][n]['max_abs_z'] for n in names):.2f}, below {rule}.")
    else:
        paragraphs["bias"] = (
            f"Over {scope}, "
            + "; ".join(f"the {labels[n]} estimator's mean differs from the exact gradient by up to "
                        f"{check['estimators'][n]['max_abs_z']:.1f} standard errors" for n in failing)
            + f", beyond {rule}: these numbers do not support calling "
            + ("it" if len(failing) == 1 else "them") + " unbiased."
            + (f" The {join([labels[n] for n in passing])} estimator{'s' if len(passing) > 1 else ''} "
               f"pass{'' if len(passing) > 1 else 'es'} (largest |z| "
               f"{max(check['estimators'][n]['max_abs_z'] for n in passing):.2f})." if passing else ""))

    def spread(name, part):
        q = images["variance_ratio"][name][part]
        return (f"{number(q['median'])} (quartiles {number(q['q25'])} to {number(q['q75'])}, "
                f"smallest {number(q['min'])})")

    def short(name):  # the label again, shorter, for lists of all estimators in one sentence
        return f"with the baseline within K = {group_size[name]}" if group_size[name] > 1 else f"for the {labels[name]}"

    ratio_parts = [f"{short(n)}, {spread(n, 'mean')} for the means and {spread(n, 'log_std')} for the log_stds"
                   for n in names if n != "reparameterization"]
    paragraphs["variance"] = (
        f"Over {images['num_images']} test images ({images['estimates_per_image']} draws each), the "
        f"variance per draw divided by the reparameterization estimator's (median over images and latent "
        f"dimensions) is, " + "; ".join(ratio_parts) + ".")

    focus_parts = []
    for n in names:
        if n == "reparameterization" or n not in smallest_rows or n not in images["focus_rank"]:
            continue
        q = images["variance_ratio"][n]["mean_1"]
        focus_parts.append(f"{number(smallest_rows[n]['variance_ratio_to_reparameterization'])} "
                           f"{short(n)} (median over "
                           f"images {number(q['median'])}; higher than {round(images['focus_rank'][n] * q['count'])}"
                           f" of the {q['count']} images' ratios)")
    if focus_parts:
        # focus_rank counts image 0 among the images it ranks: the study draws for x[0] again, with the others.
        paragraphs["focus"] = (f"The image in the histograms is test image 0, from its {focus['num_estimates']} draws; "
                               f"its ratios for d ELBO / d mean_1 are " + "; ".join(focus_parts) + ". Image 0 is "
                               + ("the one image there" if images["num_images"] == 1
                                  else f"one of those {images['num_images']} images")
                               + f", with {images['estimates_per_image']} "
                               "further draws there: its ratio from those draws is one of the ratios counted.")

    # No claim compares the estimators' medians across K, or rests on a component's smallest
    # ratio: the medians are estimates with no interval here (12.4 against 11.4 for K = 5 and 10),
    # and the smallest is the minimum of many noisy ratio estimates, low by selection.
    return paragraphs
