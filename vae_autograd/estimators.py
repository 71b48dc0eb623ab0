"""Score-function (REINFORCE) versus reparameterization gradients of the ELBO (study part 7).

For a fixed minibatch x (M, 784) the variational parameters lam = (mean, log_std), each
(M, D) with D = 2, are the encoder's outputs for those images, then held fixed and
treated as free parameters. The target is the gradient of the mean ELBO

    L(lam) = (1/M) sum_i E_{q(z|x_i)}[log p(x_i, z) - log q(z|x_i)]

with respect to mean and log_std. Image i's parameters enter only its own term, so
every gradient here is reported per image: the gradient of image i's own ELBO, which
is M times the gradient of L (the factor 1/M changes no ratio and no z-score, and
leaving it out keeps the numbers independent of M). A gradient is an (M, 2D) array in
the encoder's output order [d/d mean, d/d log_std]; component (0, 0) is the study's
focus, d ELBO / d mean_1 of image 0.

With z = mean + exp(log_std) * eps, eps ~ N(0, I), and log weight
w = log p(x, z) - log q(z|x), the estimators are

- reparameterization: d w / d lam through z and through q's parameters (autograd).
- score function: w * d log q(z|x) / d lam with z held fixed, where the score is
  (z - mean) / sigma^2 = eps / sigma for the mean and ((z - mean) / sigma)^2 - 1 =
  eps^2 - 1 for log_std. This is the usual REINFORCE form. The exact derivative of
  E_q[f_lam(z)] with f_lam = log p - log q depending on lam has one more term,
  E_q[d f_lam / d lam] = E_q[-score] = 0, because the score has mean zero (the
  derivative of the integral of q, which is 1). Dropping a term with mean zero keeps the
  estimator unbiased.
- score function with a leave-one-out baseline within K draws (score_function_loo_K):
  the draws are taken in groups of K, as a training loop taking K samples per image
  would, and each draw's term is (w - b) * score, where b is the mean log weight of the
  other K - 1 draws of its group. b does not depend on this draw's eps, so
  E[b * score] = E[b] * E[score] = 0 and every term is unbiased. A good b (about the
  ELBO, around -150 nats) removes the large constant part of w; without it, that
  constant part times the score is pure noise. The estimate from one group is the mean
  of its K terms.

All estimators are computed from the same draws eps (common random numbers, which
sharpen the comparison and share the cost). The plain estimators' draws are independent
of one another. The K terms of one group are not: two of them have covariance
g^2 / (K - 1)^2, g the exact gradient, because each one's baseline holds the other's
log weight. So every statistic of a loo_K estimator is computed from its group means,
which are independent, and its variance is reported per draw, K times the variance of a
group mean: an n-draw estimate, for n a multiple of K, has variance (variance per
draw) / n, like the plain estimators, so ratios of variances per draw compare estimators
at equal cost. The exact gradient comes from quadrature on a grid in eps space
(exact_elbo_and_gradient).
"""
from statistics import NormalDist

import autograd.numpy as anp
import numpy as np
from autograd import make_vjp
from matplotlib.figure import Figure

from .distributions import diag_gaussian_entropy
from .elbo import joint_log_density, log_q
from .images import check_images
from .integrate import latent_grid, logsumexp
from .model import data_dim, encoder, latent_dim

GROUP_SIZES = (2, 5, 10)
LOO_PREFIX = "score_function_loo_"


def estimator_names(group_sizes=GROUP_SIZES):
    """The estimators compared, in the order tables and figures list them."""
    return (("score_function",) + tuple(f"{LOO_PREFIX}{k}" for k in group_sizes)
            + ("reparameterization",))


def group_size(name):
    """Draws per group: K for score_function_loo_K, 1 for the plain estimators."""
    return int(name[len(LOO_PREFIX):]) if name.startswith(LOO_PREFIX) else 1


def estimator_label(name):
    """A reader's name for an estimator, with the baseline's K."""
    if name.startswith(LOO_PREFIX):
        return f"score function, leave-one-out baseline within K = {group_size(name)}"
    return {"score_function": "score function", "reparameterization": "reparameterization"}.get(name, name)


def _check_inputs(dec_params, x, mean, log_std):
    check_images(x, data_dim(dec_params))
    expected = (len(x), latent_dim(dec_params))
    if np.shape(mean) != expected or np.shape(log_std) != expected:
        raise ValueError(f"mean and log_std must both be {expected} (one row per image), got "
                         f"{np.shape(mean)} and {np.shape(log_std)}; pass encoder(enc_params, x)")


def _over_chunks(fun, array, chunk_rows):
    """fun over slices of array's first axis, each about chunk_rows network rows, concatenated.

    array: (L, M, D) with M rows per slice element; fun returns a tuple of (l, ...) arrays.
    Chunking bounds memory: one (rows, 784) activation array of 10^6 rows is 3 GB.
    """
    step = max(1, chunk_rows // array.shape[1])
    parts = [fun(array[start:start + step]) for start in range(0, len(array), step)]
    return [anp.concatenate(part) for part in zip(*parts)]


def log_weights_and_reparam_gradients(dec_params, x, mean, log_std, eps):
    """Log weights w (S, M) at z = mean + exp(log_std) * eps and their gradients (S, M, 2D).

    eps: (S, M, D). Each gradient is d w / d lam through z and through log q's
    parameters. lam is broadcast to one copy per sample, and each w depends only on its
    own copy, so the gradient of the sum of all S * M log weights with respect to the
    copies is every sample's own gradient: one backward pass instead of S.
    """
    def log_weights(lam):
        mean_copies, log_std_copies = lam
        z = mean_copies + anp.exp(log_std_copies) * eps
        return joint_log_density(dec_params, x, z) - log_q(mean_copies, log_std_copies, z)

    lam = (np.broadcast_to(mean, eps.shape), np.broadcast_to(log_std, eps.shape))
    vjp, log_w = make_vjp(log_weights)(lam)
    grad_mean, grad_log_std = vjp(np.ones_like(log_w))
    return log_w, np.concatenate([grad_mean, grad_log_std], axis=-1)


def score(mean, log_std, eps):
    """d log q(z|x) / d lam at z = mean + exp(log_std) * eps, with z held fixed: (S, M, 2D).

    For the mean it is (z - mean) / sigma^2 = eps / sigma. For log_std it is
    ((z - mean) / sigma)^2 - 1 = eps^2 - 1.
    """
    return np.concatenate([eps * np.exp(-log_std), eps**2 - 1.0], axis=-1)


def _check_group_sizes(group_sizes):
    if not all(isinstance(k, (int, np.integer)) and k >= 2 for k in group_sizes) \
            or len(set(group_sizes)) != len(group_sizes):
        raise ValueError(f"group_sizes must be distinct integers >= 2 (a leave-one-out baseline needs "
                         f"another draw in the group), got {group_sizes!r}")


def single_sample_estimates(dec_params, x, mean, log_std, rng, num_estimates=10000,
                            group_sizes=GROUP_SIZES, chunk_rows=20000):
    """Per-draw gradient terms of every estimator in estimator_names(group_sizes).

    x (M, 784); mean, log_std (M, D). Returns a dict name -> float64 array. The plain
    estimators give (S, M, 2D) with S = num_estimates: independent single-sample
    estimates. score_function_loo_K gives (S // K * K, M, 2D): the terms of the draws
    that fill whole groups of K consecutive draws, group g being rows g*K .. g*K + K - 1
    (its estimate is their mean; see group_means). All eps are drawn up front, so the
    numbers do not depend on chunk_rows. Costs one forward and one backward pass of the
    decoder per (draw, image): about 3.5 s of CPU for S * M = 10^5.
    """
    _check_inputs(dec_params, x, mean, log_std)
    _check_group_sizes(group_sizes)
    if not (isinstance(num_estimates, (int, np.integer)) and num_estimates >= 2):
        raise ValueError(f"num_estimates must be an integer >= 2 (a variance needs two estimates), "
                         f"got {num_estimates!r}")
    eps = rng.standard_normal((num_estimates,) + np.shape(mean), dtype=np.result_type(mean, np.float32))
    log_w, reparam = _over_chunks(
        lambda eps_chunk: log_weights_and_reparam_gradients(dec_params, x, mean, log_std, eps_chunk),
        eps, chunk_rows)
    log_w = log_w.astype(np.float64)
    score_values = score(np.asarray(mean, np.float64), np.asarray(log_std, np.float64),
                         eps.astype(np.float64))
    estimates = {"score_function": log_w[..., None] * score_values}
    for k in group_sizes:
        used = num_estimates // k * k
        grouped = log_w[:used].reshape((used // k, k) + log_w.shape[1:])  # (groups, K, M)
        leave_one_out = (np.sum(grouped, axis=1, keepdims=True) - grouped) / (k - 1)
        estimates[f"{LOO_PREFIX}{k}"] = ((grouped - leave_one_out).reshape(log_w[:used].shape)[..., None]
                                         * score_values[:used])
    estimates["reparameterization"] = reparam.astype(np.float64)
    return estimates


def group_means(name, terms):
    """The estimator's independent estimates: (S, ...) terms -> (S // K, ...) means of groups of K.

    For the plain estimators (K = 1) the terms themselves.
    """
    k = group_size(name)
    return terms[:len(terms) // k * k].reshape((len(terms) // k, k) + terms.shape[1:]).mean(axis=1)


def _quadrature_rule(halfwidth, spacing):
    """eps_grid (G, D) over [-halfwidth, halfwidth]^2 and N(0, I) weights (G,) summing to 1.

    Normalizing the weights makes the rule exact for constants despite the cut-off
    tails. For a Gaussian times a smooth function, a Riemann sum with spacing h (in
    units of std) has an error of order exp(-2 pi^2 / h^2). At the defaults (+-6 std,
    h = 0.3, 41^2 points) it is about 5e-7 on a gradient of about 1, measured against a
    grid 4x finer and wider.
    """
    eps_grid, _ = latent_grid(-halfwidth, halfwidth, spacing)
    log_weights = -0.5 * np.sum(eps_grid**2, axis=1)
    return eps_grid, np.exp(log_weights - logsumexp(log_weights))


def _log_joint_on_grid(dec_params, x, mean, log_std, eps_grid, chunk_rows):
    """log p(x_i, mean_i + sigma_i * eps_g) at every grid point: (G, M), differentiable."""
    if np.shape(mean)[-1] != eps_grid.shape[1]:
        raise ValueError(f"quadrature needs a {eps_grid.shape[1]}-D latent space, got "
                         f"{np.shape(mean)[-1]}-D; use the Monte Carlo estimates alone")
    z_grid = mean + anp.exp(log_std) * eps_grid[:, None, :]  # (G, M, D)
    [log_joint] = _over_chunks(lambda z: (joint_log_density(dec_params, x, z),), z_grid, chunk_rows)
    return log_joint


def quadrature_elbo(dec_params, x, mean, log_std, halfwidth=6.0, spacing=0.3, chunk_rows=20000):
    """Each image's ELBO E_q[log p(x, z)] + H(q) by quadrature: (M,), in mean's dtype.

    Differentiable in mean and log_std by autograd (the grid is fixed in eps space and
    moves with q), so finite differences or grad of it check exact_elbo_and_gradient.
    """
    eps_grid, weights = _quadrature_rule(halfwidth, spacing)
    log_joint = _log_joint_on_grid(dec_params, x, mean, log_std, eps_grid, chunk_rows)
    return anp.dot(weights, log_joint) + diag_gaussian_entropy(log_std)


def exact_elbo_and_gradient(dec_params, x, mean, log_std, halfwidth=6.0, spacing=0.3,
                            chunk_rows=20000):
    """Each image's ELBO (M,) and its gradient (M, 2D) by quadrature, in float64.

    The gradient uses the score form, which needs only forward passes:
    d/d mean E_q[log p] = E_q[log p * eps / sigma],
    d/d log_std E_q[log p] = E_q[log p * (eps^2 - 1)],
    and the entropy adds 1 per log_std. Each image's E_q[log p] is subtracted from log p
    first. In the integral that changes nothing (the score has mean zero), but on the
    grid it removes the rounding error of multiplying weights by -150. The
    reparameterization form, grad of quadrature_elbo, is an independent check.
    """
    _check_inputs(dec_params, x, mean, log_std)
    mean, log_std = np.asarray(mean, np.float64), np.asarray(log_std, np.float64)
    eps_grid, weights = _quadrature_rule(halfwidth, spacing)
    log_joint = _log_joint_on_grid(dec_params, x, mean, log_std, eps_grid, chunk_rows)
    expected_log_joint = np.dot(weights, log_joint)
    centered = log_joint - expected_log_joint
    grad_mean = np.einsum("g,gm,gd->md", weights, centered, eps_grid) * np.exp(-log_std)
    grad_log_std = np.einsum("g,gm,gd->md", weights, centered, eps_grid**2 - 1.0) + 1.0
    return expected_log_joint + diag_gaussian_entropy(log_std), np.concatenate([grad_mean, grad_log_std], axis=-1)


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


def _number(value):
    """A ratio for a sentence: three significant digits, no exponent below 10^5."""
    return f"{value:,.3g}" if value < 1e5 else f"{value:.2e}"


def _join(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe_estimators(summary):
    """Sentences for the report, each claim computed from summary (gradient_estimator_study's).

    Names every estimator; says which are unbiased only as far as the z-scores pass the
    stated threshold; gives the variance ratios' quartiles over the images and where the
    focus image's ratio lies among them. Returns a list of paragraphs (str).
    """
    names, labels, focus = summary["estimators"], summary["labels"], summary["focus"]
    images, check = summary["images"], summary["unbiasedness"]
    smallest_rows = {row["estimator"]: row for row in reversed(focus["table"])}  # each one's smallest n
    loo = [name for name in names if group_size(name) > 1]
    paragraphs = [
        f"{len(names)} estimators of the ELBO's gradient are compared: the score function "
        f"(REINFORCE), the score function with a leave-one-out baseline within K = "
        f"{_join([str(group_size(n)) for n in loo])} draws (the draws are taken in groups of K and "
        f"each draw's baseline is the mean log weight of the other K - 1 draws of its group, as a "
        f"training loop drawing K samples per image could do), and the reparameterization estimator. "
        f"Variances are per draw (K times the variance of a K-draw estimate), so ratios compare "
        f"estimators at an equal number of decoder passes."]

    # Judged here from the z-scores and the threshold, so a summary edited by hand cannot contradict itself.
    passing = [n for n in names if check["estimators"][n]["max_abs_z"] < check["z_threshold"]]
    failing = [n for n in names if n not in passing]
    focus_z = _join([f"{abs(smallest_rows[n]['bias_in_se']):.1f}" for n in names if n in smallest_rows])
    with_focus = check["components_per_estimator"] > images["num_images"] * len(summary["component_order"])
    scope = (f"{check['components_per_estimator']} gradient components per estimator ("
             + (f"the focus image's {focus['num_estimates']} draws and " if with_focus else "")
             + f"each of {images['num_images']} test images' {images['estimates_per_image']})")
    rule = (f"the Bonferroni threshold {check['z_threshold']:.2f} (family-wise level "
            f"{check['family_wise_level']:g} over all {check['num_tests']} tests)")
    if not failing:
        paragraphs.append(
            f"No estimator shows a detectable bias: on {focus['component']} (exact value "
            f"{focus['exact']:.3f}, by quadrature) their means lie within {focus_z} standard errors of "
            f"the exact gradient, in the order above; over {scope} the largest |z| of any estimator is "
            f"{max(check['estimators'][n]['max_abs_z'] for n in names):.2f}, below {rule}.")
    else:
        paragraphs.append(
            f"Over {scope}, "
            + "; ".join(f"the {labels[n]} estimator's mean differs from the exact gradient by up to "
                        f"{check['estimators'][n]['max_abs_z']:.1f} standard errors" for n in failing)
            + f", beyond {rule}: these numbers do not support calling "
            + ("it" if len(failing) == 1 else "them") + " unbiased."
            + (f" The {_join([labels[n] for n in passing])} estimator{'s' if len(passing) > 1 else ''} "
               f"pass{'' if len(passing) > 1 else 'es'} (largest |z| "
               f"{max(check['estimators'][n]['max_abs_z'] for n in passing):.2f})." if passing else ""))

    def spread(name, part):
        q = images["variance_ratio"][name][part]
        return (f"{_number(q['median'])} (quartiles {_number(q['q25'])} to {_number(q['q75'])}, "
                f"smallest {_number(q['min'])})")

    def short(name):  # the label again, shorter, for lists of all estimators in one sentence
        return f"with the baseline within K = {group_size(name)}" if group_size(name) > 1 else f"for the {labels[name]}"

    ratio_parts = [f"{short(n)}, {spread(n, 'mean')} for the means and {spread(n, 'log_std')} for the log_stds"
                   for n in names if n != "reparameterization"]
    paragraphs.append(
        f"Over {images['num_images']} test images ({images['estimates_per_image']} draws each), the "
        f"variance per draw divided by the reparameterization estimator's (median over images and latent "
        f"dimensions) is, " + "; ".join(ratio_parts) + ".")

    focus_parts = []
    for n in names:
        if n == "reparameterization" or n not in smallest_rows or n not in images["focus_rank"]:
            continue
        q = images["variance_ratio"][n]["mean_1"]
        focus_parts.append(f"{_number(smallest_rows[n]['variance_ratio_to_reparameterization'])} "
                           f"{short(n)} (median over "
                           f"images {_number(q['median'])}; higher than {round(images['focus_rank'][n] * q['count'])}"
                           f" of the {q['count']} images' ratios)")
    if focus_parts:
        paragraphs.append(f"The image in the histograms is image 0, from its {focus['num_estimates']} draws; its "
                          f"ratios for d ELBO / d mean_1 are " + "; ".join(focus_parts) + ".")

    medians = [images["variance_ratio"][n]["mean"]["median"] for n in loo]
    findings = []
    if len(loo) > 1:
        falling = all(a > b for a, b in zip(medians, medians[1:]))
        findings.append(f"the baseline's median ratio for the means {'falls' if falling else 'does not fall steadily'}"
                        f" as K grows ({', '.join(_number(m) for m in medians)} for K = "
                        f"{', '.join(str(group_size(n)) for n in loo)})")
    smallest = {n: min(images["variance_ratio"][n][p]["min"] for p in ("mean", "log_std")) for n in loo}
    below = [n for n in loo if smallest[n] < 1]
    if below:
        findings.append(f"on some components the baseline within K = {_join([str(group_size(n)) for n in below])} "
                        f"gives a lower variance than reparameterization (smallest ratios "
                        f"{_join([_number(smallest[n]) for n in below])})")
    else:
        findings.append("no baseline estimator has a lower variance than reparameterization on any component")
    paragraphs.append("Across the images, " + "; ".join(findings) + ".")
    return paragraphs


def fig_gradient_histograms(focus_estimates, exact):
    """Histograms of single-draw estimates of one gradient component, one panel per estimator.

    focus_estimates: dict name -> (S,) per-draw terms, as in gradient_estimator_study (for
    a baseline estimator, each draw's (w - b) * score, itself unbiased; its title names
    the K of its groups); exact:
    the true value, drawn as a red vertical line. All panels share the x-range and the
    bins, from the 0.5-99.5 percentiles of the widest estimator, so the widths compare
    at a glance. At that scale a narrow estimator is a single spike, so an inset redraws
    every narrow one over a common range of its own (the 0.5-99.5 percentiles of the
    widest narrow one).
    """
    names = list(focus_estimates)
    stds = {name: np.std(focus_estimates[name], ddof=1) for name in names}
    widest = max(names, key=stds.get)
    low, high = np.percentile(focus_estimates[widest], [0.5, 99.5])
    low, high = min(low, exact), max(high, exact)
    narrow = [name for name in names if stds[name] < 0.05 * (high - low)]
    if narrow:
        zoom = np.percentile(focus_estimates[max(narrow, key=stds.get)], [0.5, 99.5])
        zoom = (min(zoom[0], exact), max(zoom[1], exact))
    fig = Figure(figsize=(7, 2.2 * len(names) + 0.5), layout="constrained")
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        values = focus_estimates[name]
        ax.hist(values, bins=np.linspace(low, high, 101), color="C0")
        ax.axvline(exact, color="C3", lw=1.2, label=f"exact {exact:.3g}")
        ax.set_ylabel("count")
        outside = np.mean((values < low) | (values > high))
        ax.set_title(f"{estimator_label(name)}: mean {np.mean(values):.3g}, std {stds[name]:.3g}"
                     + (f", {100 * outside:.1f}% beyond the x-range" if outside > 0 else "")
                     + (" (a spike at this scale: inset)" if name in narrow else ""),
                     fontsize=8)
        if name in narrow:
            inset = ax.inset_axes([0.64, 0.22, 0.34, 0.68])
            inset.hist(values, bins=np.linspace(*zoom, 61), color="C2")
            inset.axvline(exact, color="C3", lw=1.2)
            inset.set_xlim(*zoom)
            inset.tick_params(labelsize=7)
            inset.set_yticks([])
    axes[0].legend(loc="upper left", fontsize=8)
    axes[-1].set_xlim(low, high)
    axes[-1].set_xlabel(f"single-draw estimate of d ELBO / d mean_1, image 0 "
                        f"({len(focus_estimates[names[0]])} draws each)")
    return fig
