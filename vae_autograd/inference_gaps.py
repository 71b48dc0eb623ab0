"""Where the ELBO loses its nats: approximation and amortization gaps (study part 8).

Following Cremer, Li & Duvenaud (2018), three Gaussians are compared per image
(gaussian_fit.best_gaussians finds the last two):
    q          the encoder's q(z|x) (amortized inference);
    q_refined  the ELBO's local optimum reached from q (test-time refinement);
    q*         the global optimum over diagonal Gaussians for this one image.
With log p(x) from the 2-D quadrature (integrate.log_marginal_likelihood):
    approximation gap = log p(x) - ELBO(q*)       (the Gaussian family's limit)
    amortization gap  = ELBO(q*) - ELBO(q)        (the encoder's limit)
    refinement gain   = ELBO(q_refined) - ELBO(q)
and the two gaps add up to log p(x) - ELBO(q). An image is in a wrong basin when
ELBO(q_refined) < ELBO(q*) - 0.1: the encoder pointed where local search cannot leave.
All three ELBOs are exact up to quadrature error (no Monte Carlo), so the gaps of single
images are meaningful, and their means carry only the sampling error of the images.
"""
import math

import numpy as np
from matplotlib.figure import Figure

from .gaussian_fit import (
    CONVERGED_NATS,
    MAX_ROUNDS,
    MODE_GRID_BOUND,
    MODE_GRID_SPACING,
    MODE_WITHIN_NATS,
    NUM_MODES,
    best_gaussians,
    decoder_target,
    fit_on_windows,
    global_fit,
    posterior_starts,
)
from .images import check_images
from .integrate import iwae_bound, latent_grid, log_marginal_likelihood
from .model import data_dim, encoder
from .posterior import covering_grids, grid_moments, log_joint_on_windows
from .posterior_figures import contour_density, show_digit

WRONG_BASIN_NATS = 0.1  # q_refined this far below q* counts as a wrong basin


# ---------------------------------------------------------------- the decomposition

def mean_and_se(values):
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def inference_gap_study(enc_params, dec_params, x, rng=None, num_steps=100,
                        iwae_ks=(1, 10, 100, 1000), iwae_images=500, convergence_images=1000, log_px=None,
                        iwae_encoder=None):
    """Part 8: split log p(x) - ELBO(q) of every image x (N, 784) into its two gaps.

    log_px (N,): integrate.log_marginal_likelihood of x if already computed (part 3), and
    iwae_encoder: {K: bounds (M,)} with the encoder's q(z|x) as the proposal on the first
    M >= iwae_images images, if already computed (part 3; its Ks replace iwae_ks).
    The convergence checks run on the first convergence_images images.

    All images are fitted together, each with its own Gaussians. Returns {"summary":
    JSON-ready means and standard errors (over images), the wrong-basin fraction and its
    share of the gap, the convergence checks and (with rng) the IWAE table with q(z|x)
    and q* as proposals on the first iwae_images; "per_image": (N,) arrays log_px,
    elbo_amortized / _refined / _optimal, refined_converged (bool), and the Gaussians
    mean_* / log_std_* (N, 2)}.
    """
    x = check_images(x, data_dim(dec_params)).astype(np.float32)
    log_px = log_marginal_likelihood(dec_params, x) if log_px is None else np.asarray(log_px, np.float64)
    tabulate, log_joint_grid = decoder_target(dec_params, x)
    enc_mean, enc_log_std = (np.asarray(a, np.float64) for a in encoder(enc_params, x))
    fits = best_gaussians(tabulate, log_joint_grid, enc_mean, enc_log_std, num_steps)
    per_image = {"log_px": log_px, "elbo_amortized": fits["elbo_start"], "elbo_refined": fits["elbo_refined"],
                 "elbo_optimal": fits["elbo_optimal"], "mean_amortized": enc_mean, "log_std_amortized": enc_log_std,
                 **{k + "_" + kind: fits[k + "_" + kind] for k in ("mean", "log_std")
                    for kind in ("refined", "optimal")}, "refined_converged": fits["refined_converged"]}
    summary = gap_summary(per_image)
    if convergence_images:
        subset = {k: v[:convergence_images] for k, v in per_image.items()}
        # The check images are the first rows of x: the same tabulate, and its decoded points, serve them.
        check_grid = decoder_target(dec_params, x[:convergence_images])[1]
        summary["convergence"] = convergence_checks((tabulate, check_grid), subset, num_steps)
    if iwae_images and rng is not None:
        subset = slice(0, iwae_images)
        optimal = (fits["mean_optimal"][subset], fits["log_std_optimal"][subset])
        if iwae_encoder is None:
            iwae_encoder = {k: iwae_bound(enc_params, dec_params, x[subset], rng, k) for k in iwae_ks}
        summary["iwae"] = {
            "num_images": len(x[subset]),
            "log_px": float(log_px[subset].mean()),
            "encoder": {int(k): list(mean_and_se(bounds[subset])) for k, bounds in iwae_encoder.items()},
            "optimal": {int(k): list(mean_and_se(iwae_bound(enc_params, dec_params, x[subset], rng, k,
                                                            proposal=optimal)))
                        for k in iwae_encoder}}
    return {"summary": summary, "per_image": per_image}


def convergence_checks(target, per_image, num_steps):
    """How much better than q* other starts and more iterations do, for the images of per_image.

    target: (tabulate, log_joint_grid) of those images. The other starts are each
    posterior mode's best lattice point with twice the local spread, and the whole
    posterior's mean and spread on the coarse grid of posterior_modes; their best, if
    above q*, is what q* missed ("another_start", >= 0: the mean gain, and its largest on
    one image). More iterations is one more round of num_steps from q* on fresh windows
    (their mean change, either sign).
    """
    tabulate, log_joint_grid = target
    num_images = len(per_image["log_px"])
    images = np.arange(num_images)
    image_of_row, _, local_log_std, best_point = posterior_starts(tabulate, log_joint_grid, within_nats=np.inf)
    whole_mean, whole_std = coarse_posterior_moments(log_joint_grid)
    starts = (np.concatenate([image_of_row, images]), np.concatenate([best_point, whole_mean]),
              np.concatenate([local_log_std + np.log(2.0), np.log(whole_std)]))
    optimal = per_image["elbo_optimal"]
    other, _, _ = global_fit(tabulate, num_images, starts, num_steps,
                             extra=(images, per_image["mean_optimal"], per_image["log_std_optimal"], optimal))
    _, _, longer, _, _ = fit_on_windows(tabulate, images, per_image["mean_optimal"], per_image["log_std_optimal"],
                                   num_steps, max_rounds=1)
    return {"num_images": num_images,
            "another_start": float(np.mean(other - optimal)),
            "another_start_max_per_image": float(np.max(other - optimal)),
            "more_iterations": float(np.mean(longer - optimal)),
            "more_iterations_max_per_image": float(np.max(np.abs(longer - optimal)))}


def coarse_posterior_moments(log_joint_grid, bound=MODE_GRID_BOUND, spacing=MODE_GRID_SPACING):
    """Mean and std (N, 2) of each image's posterior on the coarse grid of posterior_modes.

    std is kept at least the grid spacing: a posterior narrower than the grid looks like a point.
    """
    z_grid, _ = latent_grid(-bound, bound, spacing)
    mean, std = grid_moments(z_grid, log_joint_grid(z_grid))
    return mean, np.maximum(std, spacing)


def in_wrong_basin(per_image):
    """(N,) bool: q_refined more than WRONG_BASIN_NATS below q*."""
    return per_image["elbo_optimal"] - per_image["elbo_refined"] > WRONG_BASIN_NATS


def gap_summary(per_image):
    """Means and standard errors over images of the ELBOs, gaps and wrong basins (JSON-ready)."""
    log_px, amortized = per_image["log_px"], per_image["elbo_amortized"]
    refined, optimal = per_image["elbo_refined"], per_image["elbo_optimal"]
    wrong_basin = in_wrong_basin(per_image)
    total_gap, approximation_gap, amortization_gap = log_px - amortized, log_px - optimal, optimal - amortized
    columns = {"log_px": log_px, "elbo_amortized": amortized, "elbo_refined": refined, "elbo_optimal": optimal,
               "approximation_gap": approximation_gap, "amortization_gap": amortization_gap,
               "total_gap": total_gap, "gap_after_refinement": log_px - refined,
               "refinement_gain": refined - amortized, "wrong_basin_fraction": wrong_basin}
    summary = {"num_images": len(log_px)}
    for name, values in columns.items():
        summary[name], summary[name + "_se"] = mean_and_se(values)
    summary["wrong_basin_share_of_gap"] = float(total_gap[wrong_basin].sum() / total_gap.sum())
    summary["wrong_basin_share_of_amortization_gap"] = float(
        amortization_gap[wrong_basin].sum() / amortization_gap.sum())
    summary["refined_below_optimal_in_wrong_basins"] = (
        float((optimal - refined)[wrong_basin].mean()) if wrong_basin.any() else 0.0)
    summary["min_approximation_gap"] = float(approximation_gap.min())
    summary["refinement_unconverged_fraction"] = float(1.0 - np.mean(per_image["refined_converged"]))
    return summary


# ---------------------------------------------------------------- in words

def first_epoch_apart(rows, key, num_se=3.0):
    """The first epoch at which the test mean of key exceeds the train mean by more than num_se
    combined standard errors, or None. rows: summaries with "epoch" and "split"."""
    by_epoch = {}
    for row in rows:
        by_epoch.setdefault(row["epoch"], {})[row["split"]] = row
    for epoch in sorted(by_epoch):
        pair = by_epoch[epoch]
        if "test" in pair and "train" in pair:
            difference = pair["test"][key] - pair["train"][key]
            if difference > num_se * math.hypot(pair["test"][key + "_se"], pair["train"][key + "_se"]):
                return epoch
    return None


def describe_inference_gaps(gaps):
    """Sentences for the report from inference_gaps' results: only what the numbers show."""
    test, train, rows = gaps["test"], gaps["train"], gaps["over_training"]
    sentences = [
        f"Of the test set's gap log p(x) - ELBO(q) = {test['total_gap']:.2f} nats per image, "
        f"{test['approximation_gap']:.3f} ± {test['approximation_gap_se']:.3f} is the approximation gap (what "
        f"the best diagonal Gaussian for each image still misses) and {test['amortization_gap']:.2f} ± "
        f"{test['amortization_gap_se']:.2f} the amortization gap (what the shared encoder misses); on the "
        f"{train['num_images']} training images {train['approximation_gap']:.3f} and "
        f"{train['amortization_gap']:.2f}.",
        f"Refining the encoder's q by Adam on each image's ELBO until a further fit gains less than "
        f"{CONVERGED_NATS} nats gains {test['refinement_gain']:.2f} nats on test and "
        f"{train['refinement_gain']:.2f} on train"
        + (f" ({test['refinement_unconverged_fraction']:.1%} of test and "
           f"{train['refinement_unconverged_fraction']:.1%} of training images were still rising after "
           f"{MAX_ROUNDS} rounds)"
           if max(test["refinement_unconverged_fraction"], train["refinement_unconverged_fraction"]) > 0 else "")
        + f", but in {test['wrong_basin_fraction']:.1%} "
        f"of test images ({train['wrong_basin_fraction']:.1%} of training images) it stops more than "
        f"{WRONG_BASIN_NATS} nats below q*, in another local optimum (a wrong basin; on average "
        f"{test['refined_below_optimal_in_wrong_basins']:.1f} nats below on test); these images hold "
        f"{test['wrong_basin_share_of_gap']:.0%} of the test gap. Taking the refined q as if it were the best "
        f"Gaussian would put the approximation gap at {test['gap_after_refinement']:.2f} nats instead of "
        f"{test['approximation_gap']:.3f}.",
    ]
    check = test.get("convergence")
    if check:
        converged = check["another_start"] < 0.02 and abs(check["more_iterations"]) < 0.02
        sentences.append(
            f"q* is the best of q_refined and the fits started at the posterior's {NUM_MODES} highest local maxima "
            f"on a {MODE_GRID_SPACING} grid over [-{MODE_GRID_BOUND:g}, {MODE_GRID_BOUND:g}]^2 (those within "
            f"{MODE_WITHIN_NATS:g} nats of the highest). On the first "
            f"{check['num_images']} test images, fits from other starts (each mode's best point with twice its "
            f"spread, and the whole posterior's mean and spread) would raise the mean ELBO(q*) by "
            f"{check['another_start']:.1e} nats (at most {check['another_start_max_per_image']:.1e} on one image), "
            f"and more iterations move it by {check['more_iterations']:+.1e} "
            + ("(both under 0.02 nats: q* is converged)." if converged
               else "(more than 0.02 nats: q* is not converged)."))
    iwae = test.get("iwae")
    if iwae:
        k = max(iwae["optimal"], key=int)
        sentences.append(
            f"As an importance-sampling proposal on the first {iwae['num_images']} test images, q* brings the "
            f"IWAE bound with K = {k} to {iwae['log_px'] - iwae['optimal'][k][0]:.3f} nats of log p(x), "
            f"where the encoder's q stays {iwae['log_px'] - iwae['encoder'][k][0]:.2f} nats short.")
    overfit = first_epoch_apart(rows, "amortization_gap")
    decoder_apart = first_epoch_apart([{**r, "neg_log_px": -r["log_px"], "neg_log_px_se": r["log_px_se"]}
                                       for r in rows], "neg_log_px")
    epochs = sorted({r["epoch"] for r in rows})
    first_wrong = next((r["epoch"] for r in sorted(rows, key=lambda r: r["epoch"])
                        if r["split"] == "test" and r["wrong_basin_fraction"] > 0), None)
    sentences.append(
        f"Along training (epochs {', '.join(map(str, epochs))}, {gaps['over_training_images']['test']} images "
        "per set): "
        + (f"the test amortization gap first exceeds the training one by more than 3 standard errors at "
           f"epoch {overfit}" if overfit else "the test and training amortization gaps stay within 3 standard "
           "errors")
        + "; "
        + (f"test log p(x) first falls below training log p(x) by more than 3 standard errors at epoch "
           f"{decoder_apart}"
           if decoder_apart else "test and training log p(x) stay within 3 standard errors of each other (they are "
           "means over different images, so only a large decoder overfit would show)")
        + "; "
        + (f"the first test images in a wrong basin are seen at epoch {first_wrong}." if first_wrong else
           "no test image is in a wrong basin."))
    return sentences


# ---------------------------------------------------------------- figures

def fig_gap_histograms(per_image_by_split):
    """Histograms of both gaps per image, one row per split: {split: per_image} -> Figure."""
    fig = Figure(figsize=(9, 3.2 * len(per_image_by_split)), layout="constrained")
    axes = fig.subplots(len(per_image_by_split), 2, squeeze=False)
    for (split, per_image), (approx_ax, amort_ax) in zip(per_image_by_split.items(), axes):
        approx = per_image["log_px"] - per_image["elbo_optimal"]
        amort = per_image["elbo_optimal"] - per_image["elbo_amortized"]
        wrong = in_wrong_basin(per_image)
        approx_ax.hist(approx, bins=60, color="C0")
        approx_ax.set(xlabel="approximation gap log p(x) - ELBO(q*) (nats)", ylabel=f"{split} images",
                      title=f"{split}: mean {approx.mean():.3f} nats")
        bins = np.histogram_bin_edges(amort, bins=60)
        amort_ax.hist([amort[~wrong], amort[wrong]], bins=bins, stacked=True, color=["C1", "C3"],
                      label=["refinement reaches q*", f"wrong basin ({wrong.mean():.1%})"])
        amort_ax.set(xlabel="amortization gap ELBO(q*) - ELBO(q) (nats)", yscale="log",
                     title=f"{split}: mean {amort.mean():.2f} nats")
        amort_ax.legend(fontsize=8)
    return fig


def fig_gaps_over_training(rows, train_curve=None):
    """log p(x) and ELBO(q(z|x)) against epoch, and what each Gaussian leaves of log p(x).

    rows: list of summary dicts (gap_summary) with "epoch" and "split" added. Right: per
    image means of log p(x) - ELBO for q(z|x), q_refined and q* (the approximation gap),
    solid test, dashed train, with standard errors over images. train_curve (E,): the
    mean minibatch -ELBO of each training epoch, drawn on the left as the training curve.
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    value_ax, gap_ax = fig.subplots(1, 2)
    if train_curve is not None:
        value_ax.plot(np.arange(1, len(train_curve) + 1), -np.asarray(train_curve), color="0.6", lw=1,
                      label="training curve: minibatch ELBO, 1 sample")
    for split, style in (("test", "-"), ("train", "--")):
        mine = sorted((r for r in rows if r["split"] == split), key=lambda r: r["epoch"])
        if not mine:
            continue
        epochs = [r["epoch"] for r in mine]
        for color, key, label in ((0, "log_px", "log p(x)"), (1, "elbo_amortized", "ELBO(q(z|x))")):
            value_ax.errorbar(epochs, [r[key] for r in mine], [r[key + "_se"] for r in mine], color=f"C{color}",
                              ls=style, marker="o", ms=3, label=f"{label}, {split}")
        for color, key, label in ((1, "total_gap", "q(z|x)"), (2, "gap_after_refinement", "q refined"),
                                  (3, "approximation_gap", "q*")):
            gap_ax.errorbar(epochs, [r[key] for r in mine], [r[key + "_se"] for r in mine], color=f"C{color}",
                            ls=style, marker="o", ms=3, label=f"{label}, {split}")
    value_ax.set(xscale="log", xlabel="epoch", ylabel="nats per image", title="log p(x) and the encoder's ELBO")
    gap_ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel="log p(x) - ELBO (nats per image)",
               title="what each Gaussian leaves (solid: test, dashed: train)")
    value_ax.legend(fontsize=7)
    gap_ax.legend(fontsize=7)
    return fig


def fig_worst_amortization(dec_params, x, per_image, num_shown=4, num_points=101):
    """True p(z|x) with q(z|x), q_refined and q* for the images with the largest amortization gaps.

    x (N, 784) and per_image from inference_gap_study; half the panels show the largest
    gaps overall, half the largest among wrong-basin images (or the next largest overall,
    if there are fewer).
    """
    amort = per_image["elbo_optimal"] - per_image["elbo_amortized"]
    wrong = np.flatnonzero(in_wrong_basin(per_image))
    by_gap = np.argsort(-amort)
    shown = list(by_gap[:num_shown - num_shown // 2])
    shown += [n for n in wrong[np.argsort(-amort[wrong])] if n not in shown][:num_shown - len(shown)]
    shown += [n for n in by_gap if n not in shown][:num_shown - len(shown)]  # if wrong basins are few
    shown = np.array(shown)
    kinds = [("amortized", "q(z|x)", "C1", "--"), ("refined", "q refined", "C2", ":"), ("optimal", "q*", "C3", "-.")]
    means = np.stack([per_image["mean_" + k][shown] for k, *_ in kinds], axis=1)
    stds = np.exp(np.stack([per_image["log_std_" + k][shown] for k, *_ in kinds], axis=1))
    # The window covers the posterior's mode (at q*) and all three Gaussians.
    z_grids, dz = covering_grids(means, stds, num_points, 3.0)
    log_joint = log_joint_on_windows(dec_params, x[shown], z_grids)
    fig = Figure(figsize=(3.2 * len(shown), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(shown)))
    for ax, n, grid, values, k in zip(axes, shown, z_grids, log_joint, range(len(shown))):
        contour_density(ax, grid, values, "k", "-")
        for (*_, color, style), m, s in zip(kinds, means[k], stds[k]):
            log_q = np.sum(-0.5 * ((grid - m) / s)**2 - np.log(s), axis=1)
            contour_density(ax, grid, log_q, color, style)
        show_digit(ax.inset_axes([0.0, 0.78, 0.22, 0.22]), x[n])
        ax.set_aspect("equal")
        below = per_image["elbo_optimal"][n] - per_image["elbo_refined"][n]
        ax.set_title(f"image {n}: amortization gap {amort[n]:.1f}\napprox. gap "
                     f"{per_image['log_px'][n] - per_image['elbo_optimal'][n]:.2f}, refinement gains "
                     f"{per_image['elbo_refined'][n] - per_image['elbo_amortized'][n]:.1f}\n"
                     + (f"wrong basin ({below:.1f} below q*)" if n in wrong else "refinement reaches q*"), fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("true p(z|x) (black) with q(z|x) (orange dashed), q refined (green dotted), q* (red dash-dot);"
                 "\ncontours hold 50 / 90 / 99% of each density", fontsize=9)
    return fig
