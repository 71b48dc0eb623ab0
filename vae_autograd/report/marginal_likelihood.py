"""Part 3 in words: the ELBO against log p(x), the quadrature's checks, the prescribed grid, IWAE."""
import math

from ..core.text import at_most, percent, probability
from .format import fixed, printed


def describe_gaps(summary, set_name):
    """One sentence: how many images of the set lie above log p(x), and what that means."""
    n, k, z = summary["num_images"], summary["num_above"], summary["min_gap_in_se"]
    if k == 0:
        return (f"The ELBO of every {set_name} image lies below log p(x); the smallest gap is "
                f"{z:.1f} Monte Carlo standard errors.")
    head = (f"The ELBO of {k} of the {n} {set_name} images ({percent(summary['fraction_above'])}) lies "
            f"above log p(x), the lowest gap being {z:.1f} Monte Carlo standard errors")
    reference = (f"the smallest of {n} draws of Student's t with {summary['elbo_samples'] - 1} degrees of "
                 f"freedom (gap / standard error of a {summary['elbo_samples']}-sample ELBO, for a true gap "
                 f"of 0) is {summary['expected_min_z']:.1f} on average and lies at or below {z:.1f} with "
                 f"probability {probability(summary['min_gap_probability'])}")
    if summary["consistent_with_mc_error"]:
        return (f"{head}: no more than Monte Carlo error, since {reference}; the true gap, "
                "KL(q(z|x) || p(z|x)), is never negative.")
    return (f"{head}, which Monte Carlo error does not explain: {reference}. The ELBO or the "
            f"quadrature of those images is in error.")


def describe_quadrature(summaries):
    """One sentence on the adaptive quadrature's checks; summaries: {set name: summary}."""
    changed = {name: s for name, s in summaries.items() if s.get("halved_spacing_change") is not None}
    parts = []
    if changed:
        moves = " and ".join(f"{s['halved_spacing_change']:.1e} (the first {s['halved_spacing_images']:,} "
                             f"{'test' if name == 'test' else 'training'} images)" for name, s in changed.items())
        worst = max(s["halved_spacing_max_change"] for s in changed.values())
        parts.append(f"integrating again on twice the sub-points per axis (every image refined, so the spacing of "
                     f"each is halved or finer) moved the mean log p(x) by {moves} nats, and no image's by more than "
                     f"{at_most(worst)}")
    edge = max(s["max_edge_mass"] for s in summaries.values())
    bound = max(s["quadrature_bound"] for s in summaries.values())
    parts.append(f"at most {at_most(edge)} of any posterior lies in the outermost ring of cells of "
                 f"[-{bound:g}, {bound:g}]^2")
    return ("Checks of the adaptive quadrature (`study.quadrature.log_marginal_likelihood`): "
            + "; ".join(parts) + ".")


def describe_agreement(difference, tolerance=1e-6):
    """'they agree within 1e-6 (difference 3.2e-09)', or that they do not, from the difference."""
    if abs(difference) <= tolerance:
        return f"they agree within {tolerance:g} (difference {difference:.1e})"
    return f"they differ by {difference:.1e}, more than {tolerance:g}: the grid sum is in error"


def describe_coarse_grid(summaries, tolerance=0.01):
    """Sentences on the study's prescribed grid; summaries: {set name: summary}.

    An error counts as small when its mean absolute value is below tolerance nats. The
    error is put down to posteriors leaving the square only when the images inside it
    are accurate, and to narrow posteriors only when those are off by more than the wide.
    """
    grids = {name: s["coarse_grid"] for name, s in summaries.items()}
    first = next(iter(grids.values()))
    k, spacing, bound = first["points_per_axis"], first["spacing"], first["bound"]
    prior_sum, prior_mass = first["prior_log_riemann_sum"], first["prior_log_mass_in_cells"]
    errors = "; ".join(f"{name}: {g['mean_abs_error']:.3g} nats on average (mean signed {g['mean_error']:+.3g}), "
                       f"at most {at_most(g['max_abs_error'], 3)}" for name, g in grids.items())
    text = (f"The study's prescribed check, the {k} x {k} grid of spacing {spacing:g} on "
            f"[-{bound:g}, {bound:g}]^2: the standard normal prior's Riemann sum on it is {prior_sum:.6e} in log, "
            f"where the log of the prior's mass in the grid's cells, [-{bound + spacing / 2:g}, "
            f"{bound + spacing / 2:g}]^2, is {prior_mass:.6e} (from the normal CDF): "
            f"{describe_agreement(prior_sum - prior_mass)}. Its log p(x) differs from the adaptive quadrature's "
            f"({errors}).")
    threshold = first["edge_threshold"]
    if all(g["images_at_edge"] == 0 for g in grids.values()):
        text += f" No posterior leaves the square: none has more than {threshold:g} of its grid mass on its edge."
    else:
        counts = " and ".join(f"{g['images_at_edge']} {name} images" for name, g in grids.items())
        text += (f" The posteriors of {counts} leave the square (more than {threshold:g} of their grid mass "
                 "on its edge), where the grid cannot see them.")
    for name, g in grids.items():
        if g["mean_abs_error_inside"] is None:
            continue
        inside = (f"the {name} images inside the square" if g["images_at_edge"] else f"the {name} images")
        if g["mean_abs_error_inside"] < tolerance:
            text += (f" For {inside} the grid is off by {g['mean_abs_error_inside']:.2g} nats on average "
                     f"(at most {at_most(g['max_abs_error_inside'])})"
                     + (": its error is the mass outside the square." if g["images_at_edge"] else "."))
            continue
        text += (f" For {inside} it is off by {g['mean_abs_error_inside']:.2g} nats on average (at most "
                 f"{at_most(g['max_abs_error_inside'])})")
        narrow, wide = g["mean_abs_error_narrow"], g["mean_abs_error_wide"]
        if narrow is not None and (wide is None or narrow > wide):
            text += (f", more where the posterior is narrow against the spacing: {narrow:.2g} on average for "
                     f"the {percent(g['narrow_fraction'])} of them whose q(z|x) has a standard deviation below "
                     f"{spacing / 2:g} in at least one dimension"
                     + (f", {wide:.2g} for the others." if wide is not None else "."))
        else:
            text += "."
    return text


def describe_iwae(summary, tolerance=0.1):
    """One to three sentences on how far the IWAE bounds stay from log p(x); None without them.

    The bound with the largest K counts as reaching log p(x) when within tolerance nats. Each clause on
    how the bounds change with K is said only as far as the numbers show it: "closed" only for steps in K
    that raised the bound (at the printed precision), "the ELBO" only for K = 1, and the contrast with a
    proposal close to p(z|x) only where the smallest K's bound is more than tolerance short.
    """
    iwae = {int(k): v for k, v in summary["iwae"].items()}  # JSON turns the keys into strings
    if len(iwae) < 2 or summary["log_px_on_iwae_images"] is None:
        return None
    ks = sorted(iwae)
    first, last = ks[0], ks[-1]
    distance = {k: summary["log_px_on_iwae_images"] - iwae[k] for k in ks}
    steps = list(zip(ks, ks[1:]))
    closed = [iwae[b] - iwae[a] for a, b in steps]  # nats of the distance each step in K closed
    tenfold = all(b == 10 * a for a, b in steps)
    distances = ", ".join(fixed(distance[k]) for k in ks) + " at K = " + ", ".join(str(k) for k in ks)
    # "below it" only where every distance prints as no less than 0; else the signed differences, named.
    listed = (f"{distances} below it" if all(printed(distance[k]) >= 0 for k in ks)
              else f"log p(x) minus the bound: {distances}")
    images = "test image" if summary["iwae_images"] == 1 else f"{summary['iwae_images']:,} test images"
    head = f"On the first {images} the IWAE bound with K = {last}"
    if distance[last] < -tolerance:
        return (f"{head} lies {-distance[last]:.2f} nats above log p(x) ({listed}), which a lower bound "
                "cannot do in expectation: the bounds or the quadrature are in error.")
    if distance[last] <= tolerance:
        return (f"{head} reaches log p(x) within {tolerance:g} nats ({listed}), an independent check of the "
                "quadrature.")
    text = f"{head} stays {distance[last]:.2f} nats below log p(x) ({distances})."
    shown = [printed(nats) for nats in closed]
    each = "Each tenfold K" if tenfold else "The steps from K = " + ", ".join(f"{a} to {b}" for a, b in steps)
    if all(nats > 0 for nats in shown):
        text += f" {each} closed {', '.join(fixed(nats) for nats in closed)} nats of it."
    else:
        signed = ", ".join(("+" if nats > 0 else "") + fixed(nats) for nats in shown)
        falls = printed(distance[last]) > printed(distance[first])  # as the distances above are printed
        text += (f" {each} moved the bound by {signed} nats: it does not rise with K at every step"
                 + (", and falls from the first K to the last." if falls else "."))
    if distance[first] > tolerance:
        smallest = f"the ELBO of q(z|x) (K = {first})" if first == 1 else f"the bound with K = {first}"
        text += (" The weights p(x, z) / q(z|x) of a proposal close to p(z|x) would be nearly equal and the "
                 f"bound tight at small K; here {smallest} lies {distance[first]:.2f} nats below log p(x).")
    if tenfold and shown[-1] > 0:
        text += (" If no later tenfold K closed more than the last, reaching log p(x) would take K of "
                 f"10^{math.log10(last) + distance[last] / closed[-1]:.1f} or more.")
    return text


def describe_sets_apart(summary_test, summary_train, standard_errors=3.0):
    """One sentence: whether the test and training sets' mean log p(x) differ by more than
    standard_errors combined standard errors (over images), which only the decoder can make."""
    difference = summary_train["log_px"] - summary_test["log_px"]
    combined = math.hypot(summary_train["log_px_se"], summary_test["log_px_se"])
    sizes = f"{summary_test['num_images']} test and {summary_train['num_images']} training images"
    head = (f"On the {sizes}, the mean log p(x) is {summary_test['log_px']:.2f} ± {summary_test['log_px_se']:.2f} "
            f"(test) and {summary_train['log_px']:.2f} ± {summary_train['log_px_se']:.2f} (training), ± here "
            f"the standard error over images: ")
    if difference > standard_errors * combined:
        return (head + f"the training images are {difference:.2f} nats more likely, {difference / combined:.1f} "
                "combined standard errors, more than the choice of images explains: the decoder fits its own "
                "training images better (it overfits).")
    if difference < -standard_errors * combined:  # not what overfitting does: say so, never call it overfitting
        return (head + f"the test images are {-difference:.2f} nats more likely, {-difference / combined:.1f} "
                "combined standard errors, more than the choice of images explains: the decoder fits these "
                "test images better than its own training images.")
    return (head + f"they differ by {difference:+.2f} nats, {difference / combined:.1f} combined standard "
            f"errors, within the {standard_errors:g} that the choice of images can explain.")


def describe_marginal_likelihood(summary_test, summary_train):
    """Sentences for the report from the part-3 summaries of the test and training sets.

    Each number comes from the summaries, and each claim is chosen by them: an ELBO above
    log p(x) is called Monte Carlo error only when gap_statistics finds it consistent, the
    coarse grid is called coarse only when its error is large.
    """
    summaries = {"test": summary_test, "train": summary_train}
    sentences = [describe_gaps(summary_test, "test"), describe_gaps(summary_train, "training"),
                 describe_sets_apart(summary_test, summary_train),
                 describe_quadrature(summaries), describe_coarse_grid(summaries)]
    iwae = describe_iwae(summary_test)
    return sentences + ([iwae] if iwae else [])
