"""Part 7's study: the estimators of study.estimators on a focus image and over test images,
their variances per draw against the reparameterization estimator's, and a test of bias."""
from statistics import NormalDist

import numpy as np

from ..core.images import check_images
from ..core.model import data_dim, encoder
from .estimators import (
    GROUP_SIZES,
    _check_group_sizes,
    estimator_label,
    exact_elbo_and_gradient,
    group_means,
    group_size,
    single_sample_estimates,
)


def _component_stats(estimates, exact):
    """Mean, variance and z-score against exact of every component. estimates (S, ...)."""
    num = len(estimates)
    mean = np.mean(estimates, axis=0)
    var = np.var(estimates, axis=0, ddof=1)
    return mean, var, (mean - exact) / np.sqrt(var / num)


def variance_per_draw(name, terms):
    """K times the variance of the estimator's group means: (S, ...) -> (...).

    An estimate from n draws (n a multiple of K) has variance variance_per_draw / n.
    """
    return group_size(name) * np.var(group_means(name, terms), axis=0, ddof=1)


def estimator_table(estimates, exact, component=(0, 0), ks=(1, 10, 100)):
    """Statistics of one gradient component for each estimator and number of draws per estimate.

    estimates: dict name -> per-draw terms (S, M, 2D), as from single_sample_estimates;
    exact (M, 2D). component: (image, index into [mean, log_std]). Each estimator gets a
    row for its group size K (1 for the plain ones) and for every n in ks that is a
    multiple of K, as long as at least two n-draw estimates exist. An n-draw estimate is
    the mean of n / K consecutive group means. Returns a list of JSON-ready rows.
    bias_in_se = (mean - exact) / se. variance_per_draw = n * variance, which the
    1/n law keeps constant over n (variance_per_draw_over_smallest_n tests it);
    variance_ratio_to_reparameterization divides it by the reparameterization
    estimator's single-draw variance, so it compares estimators at equal cost.
    """
    exact_value = float(exact[component])
    rows = []
    for name, terms in estimates.items():
        groups = group_means(name, terms[(slice(None),) + tuple(component)])
        k = group_size(name)
        smallest = None
        for n in sorted({k} | {n for n in ks if n % k == 0}):
            per_estimate = n // k
            blocks = len(groups) // per_estimate
            if blocks < 2:
                continue
            averaged = groups[:blocks * per_estimate].reshape(blocks, per_estimate).mean(axis=1)
            mean, var, z = _component_stats(averaged, exact_value)
            smallest = var * n if smallest is None else smallest
            rows.append({"estimator": name, "draws": int(n), "num_estimates": int(blocks),
                         "mean": float(mean), "std": float(np.sqrt(var)),
                         "se": float(np.sqrt(var / blocks)), "bias_in_se": float(z),
                         "variance": float(var), "variance_per_draw": float(var * n),
                         "exact": exact_value,
                         "variance_per_draw_over_smallest_n": float(var * n / smallest)})
    reparam = [r for r in rows if r["estimator"] == "reparameterization" and r["draws"] == 1]
    if reparam:
        for row in rows:
            row["variance_ratio_to_reparameterization"] = row["variance_per_draw"] / reparam[0]["variance"]
    return rows


def variance_ratios(estimates):
    """Each estimator's variance per draw over the reparameterization one's: name -> (M, 2D)."""
    reparam = variance_per_draw("reparameterization", estimates["reparameterization"])
    return {name: variance_per_draw(name, terms) / reparam for name, terms in estimates.items()}


def quartiles(values):
    """min, q25, median, q75, max (linear interpolation between order statistics) and count."""
    values = np.ravel(values)
    low, q25, median, q75, high = np.percentile(values, [0, 25, 50, 75, 100])
    return {"min": float(low), "q25": float(q25), "median": float(median), "q75": float(q75),
            "max": float(high), "count": int(values.size)}


def ratio_quartiles(ratios):
    """Quartiles of (M, 2D) ratios over images for d/d mean_1 and over images and dimensions for
    the mean and for the log_std components."""
    latent = ratios.shape[-1] // 2
    return {"mean_1": quartiles(ratios[:, 0]), "mean": quartiles(ratios[:, :latent]),
            "log_std": quartiles(ratios[:, latent:])}


def unbiasedness_check(sets, family_wise_level=0.01):
    """z-scores of every estimator's mean against the exact gradient, judged with Bonferroni.

    sets: list of (estimates, exact) pairs, as from single_sample_estimates and
    exact_elbo_and_gradient; each component of each set is one test. z comes from the
    group means (independent; see the module docstring). An estimator passes if its
    largest |z| is below z_threshold, the two-sided normal quantile at family_wise_level /
    (estimators * components): if every estimator were unbiased, the chance that any one
    fails would be at most family_wise_level. Returns a JSON-ready dict.
    """
    names = list(sets[0][0])
    z = {name: np.concatenate([np.ravel(_component_stats(group_means(name, estimates[name]), exact)[2])
                               for estimates, exact in sets]) for name in names}
    num_components = len(z[names[0]])
    num_tests = num_components * len(names)
    threshold = NormalDist().inv_cdf(1 - family_wise_level / (2 * num_tests))
    return {"family_wise_level": family_wise_level, "components_per_estimator": int(num_components),
            "num_tests": int(num_tests), "z_threshold": float(threshold),
            "estimators": {name: {"max_abs_z": float(np.max(np.abs(z[name]))),
                                  "passes": bool(np.max(np.abs(z[name])) < threshold)} for name in names}}


def gradient_estimator_study(enc_params, dec_params, x, rng, num_estimates=10000, estimates_per_image=1000,
                             group_sizes=GROUP_SIZES, ks=(1, 10, 100), family_wise_level=0.01):
    """The whole comparison: image 0 of x (M, 784) in detail, every image's variance ratios.

    The focus image x[0] gets num_estimates draws, for its table and the histograms;
    every image (x[0] again, with fresh draws) gets estimates_per_image draws, for the
    ratios of variances per draw over images. 1,000 draws estimate the reparameterization
    variance to about 5% and a loo_10 one (100 groups) to about 15%, more for the heavy
    tails of the score-function terms; errors of that size move quartiles over 100 images
    little. The z-tests need many groups too: the terms are skewed, and with 200 draws per
    image (20 groups of 10) a 3-epoch model gave |z| = 4.1, 5.8 and 6.4 for the three
    baseline estimators at once (they share the draws) on one image's d/d log_std_1, where
    1,000 draws give |z| < 3.5 for every estimator. So keep estimates_per_image at 1,000
    or more, even in a quick run. At the defaults with M = 100 (10^5 + 10^4 (draw, image) pairs and 100
    quadratures) the study took 64 s of CPU on a busy 2-core machine.

    Returns {"summary": JSON-ready dict, "focus_estimates": {name: (S_name,) per-draw terms
    of d ELBO / d mean_1 of image 0}, "variance_ratios": {name: (M, 2D)}}. The summary
    holds "estimators", "labels", "group_sizes", "component_order", "focus" (the
    component, its exact value and gradient, num_estimates and estimator_table's rows),
    "images" (num_images, estimates_per_image, the ratio_quartiles of every estimator and
    focus_rank: the fraction of images whose d/d mean_1 ratio lies below image 0's ratio in
    the focus table), "unbiasedness" (unbiasedness_check over the focus draws and every
    image's; the focus draws only if num_estimates >= 2 K for every K) and
    "elbo_quadrature_mean". Draw the figure with
    fig_gradient_histograms(study["focus_estimates"], study["summary"]["focus"]["exact"]).
    """
    check_images(x, data_dim(dec_params))
    _check_group_sizes(group_sizes)
    if not (isinstance(estimates_per_image, (int, np.integer)) and estimates_per_image >= 2 * max(group_sizes)):
        raise ValueError(f"estimates_per_image must be an integer >= {2 * max(group_sizes)} (two groups of "
                         f"the largest K, to have a variance), got {estimates_per_image!r}")
    mean, log_std = encoder(enc_params, x)
    focus = single_sample_estimates(dec_params, x[:1], mean[:1], log_std[:1], rng, num_estimates, group_sizes)
    per_image = single_sample_estimates(dec_params, x, mean, log_std, rng, estimates_per_image, group_sizes)
    elbo_per_image, exact = exact_elbo_and_gradient(dec_params, x, mean, log_std)
    table = estimator_table(focus, exact[:1], (0, 0), ks)
    # The focus draws join the test only if every estimator has two groups of them to take a variance from.
    tested = [(per_image, exact)] + ([(focus, exact[:1])] if num_estimates >= 2 * max(group_sizes) else [])
    ratios = variance_ratios(per_image)
    focus_ratio = {row["estimator"]: row["variance_ratio_to_reparameterization"] for row in table
                   if row["draws"] == group_size(row["estimator"])}
    summary = {"estimators": list(focus), "labels": {name: estimator_label(name) for name in focus},
               "group_sizes": [int(k) for k in group_sizes],
               "group_size": {name: group_size(name) for name in focus},
               "component_order": [f"{p}_{d + 1}" for p in ("mean", "log_std")
                                   for d in range(exact.shape[1] // 2)],
               "focus": {"component": "d ELBO / d mean_1 of image 0", "num_estimates": int(num_estimates),
                         "exact": float(exact[0, 0]), "exact_gradient": exact[0].tolist(), "table": table},
               "images": {"num_images": int(len(x)), "estimates_per_image": int(estimates_per_image),
                          "variance_ratio": {name: ratio_quartiles(r) for name, r in ratios.items()},
                          "focus_rank": {name: float(np.mean(ratios[name][:, 0] < focus_ratio[name]))
                                         for name in focus_ratio if name != "reparameterization"}},
               "unbiasedness": unbiasedness_check(tested, family_wise_level),
               "elbo_quadrature_mean": float(np.mean(elbo_per_image))}
    return {"summary": summary, "focus_estimates": {name: g[:, 0, 0] for name, g in focus.items()},
            "variance_ratios": ratios}
