"""Part 8 in words: the gap tables and the sentences computed from them."""
import math

from ..core.text import at_most, percent, table_percent
from .format import join, nats_apart, plural, printed, table_row, with_se


def iwae_proposal_lines(iwae, intro_end):
    """Part 8's IWAE table, q(z|x) against q* as the proposal, or nothing without one."""
    if not iwae:
        return []
    ks = list(iwae["optimal"])
    return ["", f"IWAE bounds on the first {iwae['num_images']} test images (log p(x) = "
            f"{iwae['log_px']:.3f}){intro_end}:", "",
            "| proposal | " + " | ".join(f"K = {k}" for k in ks) + " |",
            "| --- |" + " --- |" * len(ks),
            "| q(z\\|x) | " + " | ".join(f"{iwae['encoder'][k][0]:.3f}" for k in ks) + " |",
            "| q* | " + " | ".join(f"{iwae['optimal'][k][0]:.3f}" for k in ks) + " |"]


def gap_section(gaps):
    """Part 8: where the ELBO loses its nats, per set, with q* as a proposal, and along training."""
    lines = ["## Where the ELBO loses its nats (part 8)", "",
             "Per image, with exact ELBOs of Gaussians (quadrature, no sampling): q = the encoder's q(z|x), "
             "q_refined = the local optimum reached from it, q* = the best diagonal Gaussian for the image. "
             "Means ± standard errors over images, in nats.", "",
             "| set | images | log p(x) | ELBO(q) | ELBO(q_refined) | ELBO(q*) | approximation gap | "
             "amortization gap | wrong basin |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for split in ("test", "train"):
        row = gaps[split]
        lines.append(table_row(split, f"{row['num_images']:,}", with_se(row, "log_px", 2),
                               with_se(row, "elbo_amortized", 2), with_se(row, "elbo_refined", 2),
                               with_se(row, "elbo_optimal", 2),
                               with_se(row, "approximation_gap", 3), with_se(row, "amortization_gap", 2),
                               table_percent(row['wrong_basin_fraction'])))
    lines += iwae_proposal_lines(gaps["test"].get("iwae"), "")
    lines += ["", "Along training (the same random images of each set at every epoch; ± as above):", "",
              "| epoch | set | images | log p(x) | ELBO(q) | approximation gap | amortization gap | wrong basin |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in sorted(gaps["over_training"], key=lambda r: (r["epoch"], r["split"])):
        lines.append(table_row(row["epoch"], row["split"], f"{row['num_images']:,}", with_se(row, "log_px", 2),
                               with_se(row, "elbo_amortized", 2),
                               with_se(row, "approximation_gap", 3), with_se(row, "amortization_gap", 2),
                               table_percent(row['wrong_basin_fraction'])))
    lines.append("")
    for sentence in describe_inference_gaps(gaps).values():
        lines += [sentence, ""]
    return lines


def first_epoch_apart(rows, key, num_se=3.0, higher="test"):
    """The first epoch at which the higher set's ("test" or "train") mean of key exceeds the other's
    by more than num_se combined standard errors, or None. rows: summaries with "epoch" and "split"."""
    lower = "train" if higher == "test" else "test"
    by_epoch = {}
    for row in rows:
        by_epoch.setdefault(row["epoch"], {})[row["split"]] = row
    for epoch in sorted(by_epoch):
        pair = by_epoch[epoch]
        if "test" in pair and "train" in pair:
            difference = pair[higher][key] - pair[lower][key]
            if difference > num_se * math.hypot(pair["test"][key + "_se"], pair["train"][key + "_se"]):
                return epoch
    return None


def describe_sets_over_training(rows, num_se=3.0):
    """The test and training sets compared along training, each claim in the direction the numbers
    take: where either set's amortization gap or log p(x) first lies num_se standard errors beyond the
    other's (first_epoch_apart), or that they never do."""
    words, parts = {"test": ("test", "training"), "train": ("training", "test")}, []
    errors = f"{num_se:g} standard errors"
    for key, name in (("amortization_gap", "amortization gap"), ("log_px", "log p(x)")):
        apart = {higher: first_epoch_apart(rows, key, num_se, higher) for higher in ("test", "train")}
        said = [f"the {words[higher][0]} {name} first exceeds the {words[higher][1]} one by more than {errors} "
                f"at epoch {epoch}" for higher, epoch in apart.items() if epoch is not None]
        if said:
            parts.append(" and ".join(said))
        elif key == "amortization_gap":
            parts.append(f"the test and training amortization gaps stay within {errors} of each other")
        else:
            parts.append(f"on these subsets, test and training log p(x) stay within {errors} of each other "
                         "(part 3 compares the whole sets)")
    return "; ".join(parts)


def describe_refinement(test, train, settings):
    """The sentences on refining q by Newton steps: its gain, and the images it leaves in a wrong
    basin, named only where there are any (a share too small for one decimal is not called 0.0%)."""
    unconverged = (test["refinement_unconverged_fraction"], train["refinement_unconverged_fraction"])
    text = (f"Refining the encoder's q by Newton steps on each image's ELBO until a step would gain less than "
            f"{settings['converged_nats']:g} nats gains {test['refinement_gain']:.2f} nats on test and "
            f"{train['refinement_gain']:.2f} on train"
            + (f" ({percent(unconverged[0])} of test and {percent(unconverged[1])} of training images were still "
               f"rising after {settings['max_rounds']} rounds)" if max(unconverged) > 0 else ""))
    below = f"more than {settings['wrong_basin_nats']:g} nats below q*"
    # A fit still rising after max_rounds also ends below q*: only without any is each such image a local optimum.
    optimum = "in another local optimum" if max(unconverged) == 0 else "in another local optimum or still rising"
    wrong_test, wrong_train = test["wrong_basin_fraction"], train["wrong_basin_fraction"]
    if wrong_test > 0:
        text += (f", but in {percent(wrong_test)} of test images ("
                 + (f"{percent(wrong_train)} of training images" if wrong_train > 0 else "none of the training images")
                 + f") it stops {below}, {optimum} (a wrong basin; on average "
                 f"{test['refined_below_optimal_in_wrong_basins']:.1f} nats below on test); these images hold "
                 f"{percent(test['wrong_basin_share_of_gap'])} of the test gap.")
    elif wrong_train > 0:
        text += (f", but in {percent(wrong_train)} of training images (none of the test images) it stops {below}, "
                 f"{optimum} (a wrong basin).")
    else:
        text += f"; on no test or training image does it stop {below}, {optimum} (a wrong basin)."
    after, best = f"{test['gap_after_refinement']:.3f}", f"{test['approximation_gap']:.3f}"
    if after != best:
        return (text + " Taking the refined q as if it were the best diagonal Gaussian would put the approximation "
                f"gap at {after} nats instead of {best}.")
    return (text + f" The refined q leaves the best diagonal Gaussian's approximation gap, {best} nats on test "
            "(to 3 decimals).")


def describe_inference_gaps(gaps, converged_nats=0.02, num_se=3.0, iwae_tolerance=0.1):
    """Sentences for the report from part 8's results: only what the numbers show.

    Returns {name: sentence} in the report's order: "gap_split", "refinement", and
    "convergence", "iwae" where the run made those checks, then "along_training". The
    settings they quote (tolerances, starts, grids) are those the run recorded in gaps["settings"];
    the report's own thresholds, each printed where it is applied: q* counts as converged when other starts
    and more iterations move its mean ELBO by less than converged_nats, and the sets along training as apart
    beyond num_se combined standard errors; an IWAE bound above log p(x) by at most iwae_tolerance is put down to
    Monte Carlo error (as part 3's describe_iwae), beyond it to an error.
    """
    test, train, rows, settings = gaps["test"], gaps["train"], gaps["over_training"], gaps["settings"]
    sentences = {
        "gap_split": (
        f"Of the test set's gap log p(x) - ELBO(q) = {test['total_gap']:.2f} nats per image (with the exact "
        "Gaussian ELBO; part 3's gap uses a Monte Carlo ELBO), "
        f"{test['approximation_gap']:.3f} ± {test['approximation_gap_se']:.3f} is the approximation gap (what "
        f"the best diagonal Gaussian for each image still misses) and {test['amortization_gap']:.2f} ± "
        f"{test['amortization_gap_se']:.2f} the amortization gap (what the shared encoder misses); on the "
        f"{train['num_images']} training images {train['approximation_gap']:.3f} and "
        f"{train['amortization_gap']:.2f}."),
        "refinement": describe_refinement(test, train, settings)}
    check = test.get("convergence")
    if check:
        bound = settings["mode_grid_bound"]
        # Decided on the two numbers as the sentence prints them (1e-2, not 0.01996 under 0.02 printed as 2.0e-02).
        another, more = (float(f"{check[key]:.1e}") for key in ("another_start", "more_iterations"))
        converged = another < converged_nats and abs(more) < converged_nats
        sentences["convergence"] = (
            f"q* is the best of q_refined and the fits started at the posterior's {settings['num_modes']} highest "
            f"local maxima on a {settings['mode_grid_spacing']:g} grid over [-{bound:g}, {bound:g}]^2 (those within "
            f"{settings['mode_within_nats']:g} nats of the highest). On the first "
            f"{check['num_images']} test images, fits from other starts (each mode's best point with twice its "
            f"spread, and the whole posterior's mean and spread) would raise the mean ELBO(q*) by "
            f"{check['another_start']:.1e} nats (at most {at_most(check['another_start_max_per_image'])} on one "
            "image), "
            f"and more iterations move it by {check['more_iterations']:+.1e} "
            + (f"(both under {converged_nats:g} nats: q* is converged)." if converged
               else f"(not both under {converged_nats:g} nats: q* is not converged)."))
    iwae = test.get("iwae")
    if iwae:
        k = max(iwae["optimal"], key=int)
        above = max(iwae[q][k][0] - iwae["log_px"] for q in ("optimal", "encoder"))
        optimal = nats_apart(iwae["optimal"][k][0] - iwae["log_px"], 3)
        # A bound above log p(x): within iwae_tolerance, the Monte Carlo error of an estimate (as part 3's
        # describe_iwae allows); beyond it, an error of the bounds or of the quadrature.
        note = ("." if printed(above, 3) <= 0 else
                " (a Monte Carlo estimate of a lower bound may lie above it by its error)." if above <= iwae_tolerance
                else f", more than {iwae_tolerance:g} nats above it, which a lower bound cannot do in expectation: the "
                "bounds or the quadrature are in error.")
        sentences["iwae"] = (
            f"As an importance-sampling proposal on the first {plural(iwae['num_images'], 'test image')}, q* puts "
            f"the IWAE bound with K = {k} {optimal} log p(x), and the encoder's q "
            f"{nats_apart(iwae['encoder'][k][0] - iwae['log_px'])} it" + note)
    epochs = sorted({r["epoch"] for r in rows})
    first_wrong = next((r["epoch"] for r in sorted(rows, key=lambda r: r["epoch"])
                        if r["split"] == "test" and r["wrong_basin_fraction"] > 0), None)
    counts = gaps["over_training_images"]
    sizes = (f"{plural(counts['test'], 'image')} per set" if counts.get("test") == counts.get("train") else
             ", ".join(plural(n, f"{name} image") for name, n in counts.items()))
    sentences["along_training"] = (
        f"Along training (epochs {join([str(e) for e in epochs])}; {sizes}): "
        f"{describe_sets_over_training(rows, num_se)}; "
        + (f"the first test images in a wrong basin are seen at epoch {first_wrong}." if first_wrong else
           "no test image is in a wrong basin."))
    return sentences
