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
w = log p(x, z) - log q(z|x), the single-sample estimators are

- reparameterization: d w / d lam through z and through q's parameters (autograd).
- score function: w * d log q(z|x) / d lam with z held fixed, where the score is
  (z - mean) / sigma^2 = eps / sigma for the mean and ((z - mean) / sigma)^2 - 1 =
  eps^2 - 1 for log_std. This is the usual REINFORCE form. The exact derivative of
  E_q[f_lam(z)] with f_lam = log p - log q depending on lam has one more term,
  E_q[d f_lam / d lam] = E_q[-score] = 0, because the score has mean zero (the
  derivative of the integral of q, which is 1). Dropping a term with mean zero keeps the
  estimator unbiased. Keeping it would give (w - 1) * score, which is a baseline of 1
  and so a special case of the next estimator.
- score function with a baseline: (w - b) * score, where b is image i's mean log weight
  over the other S - 1 samples (leave one out). b does not depend on this sample's z,
  so E[b * score] = E[b] * E[score] = 0 and the estimator stays unbiased. A good b
  (about the ELBO, around -150 nats) removes the large constant part of w. Without it,
  that constant part times the score is pure noise.

All three estimators are computed from the same draws eps. Each estimator's S estimates
are independent of one another (the leave-one-out baselines add a covariance of
order 1/S^2 between them, which is negligible). Across estimators the estimates are
correlated (common random numbers), which sharpens the comparison and halves the cost.
The exact gradient comes from quadrature on a grid in eps space (exact_elbo_and_gradient).
"""
import autograd.numpy as anp
import numpy as np
from autograd import make_vjp
from matplotlib.figure import Figure

from .distributions import LOG_2PI
from .elbo import joint_log_density, log_q
from .images import check_images
from .integrate import latent_grid, logsumexp
from .model import data_dim, encoder, latent_dim

ESTIMATORS = ("score_function", "score_function_baseline", "reparameterization")
LABELS = {"score_function": "score function", "score_function_baseline": "score function + baseline",
          "reparameterization": "reparameterization"}


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


def single_sample_estimates(dec_params, x, mean, log_std, rng, num_estimates=10000,
                            chunk_rows=20000):
    """num_estimates independent single-sample gradient estimates from each estimator.

    x (M, 784); mean, log_std (M, D). Returns a dict with the names in ESTIMATORS,
    each (S, M, 2D) float64 with S = num_estimates. All eps are drawn up front, so the
    numbers do not depend on chunk_rows. Costs one forward and one backward pass of the
    decoder per (sample, image): about 3.5 s of CPU for S * M = 10^5.
    """
    _check_inputs(dec_params, x, mean, log_std)
    if not (isinstance(num_estimates, (int, np.integer)) and num_estimates >= 2):
        raise ValueError(f"num_estimates must be an integer >= 2 (the baseline leaves one "
                         f"out), got {num_estimates!r}")
    eps = rng.standard_normal((num_estimates,) + np.shape(mean), dtype=np.result_type(mean, np.float32))
    log_w, reparam = _over_chunks(
        lambda eps_chunk: log_weights_and_reparam_gradients(dec_params, x, mean, log_std, eps_chunk),
        eps, chunk_rows)
    log_w = log_w.astype(np.float64)
    score_values = score(np.asarray(mean, np.float64), np.asarray(log_std, np.float64),
                         eps.astype(np.float64))
    leave_one_out = (np.sum(log_w, axis=0) - log_w) / (num_estimates - 1)
    return {"score_function": log_w[..., None] * score_values,
            "score_function_baseline": (log_w - leave_one_out)[..., None] * score_values,
            "reparameterization": reparam.astype(np.float64)}


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


def _entropy(log_std):
    """H(q) of a diagonal Gaussian: sum(log_std) + D/2 (1 + log 2 pi). (..., D) -> (...)."""
    return anp.sum(log_std, axis=-1) + 0.5 * anp.shape(log_std)[-1] * (1.0 + LOG_2PI)


def quadrature_elbo(dec_params, x, mean, log_std, halfwidth=6.0, spacing=0.3, chunk_rows=20000):
    """Each image's ELBO E_q[log p(x, z)] + H(q) by quadrature: (M,), in mean's dtype.

    Differentiable in mean and log_std by autograd (the grid is fixed in eps space and
    moves with q), so finite differences or grad of it check exact_elbo_and_gradient.
    """
    eps_grid, weights = _quadrature_rule(halfwidth, spacing)
    log_joint = _log_joint_on_grid(dec_params, x, mean, log_std, eps_grid, chunk_rows)
    return anp.dot(weights, log_joint) + _entropy(log_std)


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
    return expected_log_joint + _entropy(log_std), np.concatenate([grad_mean, grad_log_std], axis=-1)


def _component_stats(estimates, exact):
    """Mean, variance and z-score against exact of every component. estimates (S, ...)."""
    num = len(estimates)
    mean = np.mean(estimates, axis=0)
    var = np.var(estimates, axis=0, ddof=1)
    return mean, var, (mean - exact) / np.sqrt(var / num)


def estimator_table(estimates, exact, component=(0, 0), ks=(1, 10, 100)):
    """Statistics of one gradient component for each estimator and samples per estimate K.

    estimates: dict name -> (S, M, 2D) single-sample estimates; exact (M, 2D).
    component: (image, index into [mean, log_std]). An estimate from K samples is the
    average of K consecutive single-sample ones, so its variance should be var_1 / K.
    Returns a list of JSON-ready rows. bias_in_se = (mean - exact) / se. The variance
    ratio compares with the reparameterization estimator at the same K.
    """
    exact_value = float(exact[component])
    rows = []
    for name, values in estimates.items():
        values = values[(slice(None),) + tuple(component)]
        single_var = np.var(values, ddof=1)
        for k in ks:
            blocks = len(values) // k
            if blocks < 2:
                continue
            averaged = values[:blocks * k].reshape(blocks, k).mean(axis=1)
            mean, var, z = _component_stats(averaged, exact_value)
            rows.append({"estimator": name, "K": int(k), "num_estimates": int(blocks),
                         "mean": float(mean), "std": float(np.sqrt(var)),
                         "se": float(np.sqrt(var / blocks)), "bias_in_se": float(z),
                         "variance": float(var), "exact": exact_value,
                         "variance_times_K_over_K1": float(var * k / single_var)})
    for row in rows:
        reparam = [r for r in rows if r["estimator"] == "reparameterization" and r["K"] == row["K"]]
        if reparam:
            row["variance_ratio_to_reparameterization"] = row["variance"] / reparam[0]["variance"]
    return rows


def aggregate_table(estimates, exact):
    """Every component at once: z-scores against exact and variance ratios to reparameterization.

    Returns a JSON-ready dict per estimator. It holds max_abs_z and sum_z2 (about
    chi-square with num_components degrees of freedom if the components were
    independent; they are correlated, so judge max_abs_z with a Bonferroni bound). It
    also holds the median and minimum over components of the variance divided by the
    reparameterization variance, separately for the mean and the log_std components.
    """
    reparam_var = np.var(estimates["reparameterization"], axis=0, ddof=1)
    latent_dim = exact.shape[-1] // 2
    table = {}
    for name, values in estimates.items():
        _, var, z = _component_stats(values, exact)
        ratio = var / reparam_var
        table[name] = {"num_components": int(z.size), "max_abs_z": float(np.max(np.abs(z))),
                       "sum_z2": float(np.sum(z**2)),
                       "median_variance_ratio_mean": float(np.median(ratio[:, :latent_dim])),
                       "median_variance_ratio_log_std": float(np.median(ratio[:, latent_dim:])),
                       "min_variance_ratio": float(np.min(ratio))}
    return table


def gradient_estimator_study(enc_params, dec_params, x, rng, num_estimates=10000, ks=(1, 10, 100)):
    """The whole comparison for the images x (M, 784).

    Costs about 3.5 s of CPU per 10^5 (estimate, image) pairs plus 0.1 s per image for the
    quadrature: 8 s for M = 20 and 10^4 estimates, 45 s for M = 100.

    Returns {"summary": JSON-ready dict, "focus_estimates": {name: (S,) array}}. The
    summary holds the exact focus gradient, the per-K table for d ELBO / d mean_1 of
    image 0, the aggregate over all components, and the quadrature ELBO. Draw the
    figure with fig_gradient_histograms(study["focus_estimates"], study["summary"]["exact"]).
    """
    check_images(x, data_dim(dec_params))
    mean, log_std = encoder(enc_params, x)
    estimates = single_sample_estimates(dec_params, x, mean, log_std, rng, num_estimates)
    elbo_per_image, exact = exact_elbo_and_gradient(dec_params, x, mean, log_std)
    summary = {"num_images": int(len(x)), "num_estimates": int(num_estimates),
               "focus": "d ELBO / d mean_1 of image 0",
               "exact": float(exact[0, 0]),
               "exact_gradient_image0": exact[0].tolist(),
               "component_order": [f"{p}_{d + 1}" for p in ("mean", "log_std")
                                   for d in range(exact.shape[1] // 2)],
               "elbo_quadrature_mean": float(np.mean(elbo_per_image)),
               "table": estimator_table(estimates, exact, (0, 0), ks),
               "aggregate": aggregate_table(estimates, exact)}
    return {"summary": summary, "focus_estimates": {name: g[:, 0, 0] for name, g in estimates.items()}}


def fig_gradient_histograms(focus_estimates, exact):
    """Histograms of single-sample estimates of one gradient component, one panel per estimator.

    focus_estimates: dict name -> (S,) estimates, as in gradient_estimator_study; exact:
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
        ax.set_title(f"{LABELS.get(name, name)}: mean {np.mean(values):.3g}, std {stds[name]:.3g}"
                     + (f", {100 * outside:.1f}% beyond the x-range" if outside > 0 else "")
                     + (" (a spike at this scale; inset zooms in)" if name in narrow else ""),
                     fontsize=9)
        if name in narrow:
            inset = ax.inset_axes([0.64, 0.22, 0.34, 0.68])
            inset.hist(values, bins=np.linspace(*zoom, 61), color="C2")
            inset.axvline(exact, color="C3", lw=1.2)
            inset.set_xlim(*zoom)
            inset.tick_params(labelsize=7)
            inset.set_yticks([])
    axes[0].legend(loc="upper left", fontsize=8)
    axes[-1].set_xlim(low, high)
    axes[-1].set_xlabel(f"single-sample estimate of d ELBO / d mean_1, image 0 "
                        f"({len(focus_estimates[names[0]])} draws each)")
    return fig
