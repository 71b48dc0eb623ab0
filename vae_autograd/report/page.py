"""report.md: the whole study on one page, written from the numbers run_all.py computed.

CAPTIONS names every figure of the study, in the report's order: run_all.py draws exactly
these, and the tests check them by this list.
"""
import math

from ..core.text import table_percent
from ..io.files import atomic_write
from .estimators import describe_estimators, estimator_section
from .format import count, plural, table_row, with_se
from .gaps import describe_inference_gaps, gap_section, iwae_proposal_lines
from .latent_classes import describe_interpolations, describe_latent_classes, describe_reconstructions
from .marginal_likelihood import describe_marginal_likelihood
from .posteriors import describe_factorization, describe_svi, describe_top_half, describe_true_vs_approx

CAPTIONS = {
    "log_px_vs_elbo": "**3.2 log p(x) against the ELBO.** Left: per test image, the Monte Carlo ELBO "
    "against the exact log p(x) from quadrature, with the line ELBO = log p(x); the title gives the share "
    "of images above the line and whether Monte Carlo error explains it (the numbers are in the first "
    "section). Right: log p(x) minus the ELBO per image, which is KL(q(z|x) || p(z|x)) >= 0 plus the "
    "ELBO's Monte Carlo error, on log-spaced bins of a log axis; the images at or below 0.01 nats are "
    "counted in its title.",
    "prior_samples": "**4.1 Ancestral samples.** Ten z drawn from the prior N(0, I), decoded: the top "
    "row shows the Bernoulli means of p(x|z), the bottom row one binary sample x ~ p(x|z) each. The "
    "samples add independent pixel noise to the means, since the decoder models pixels as "
    "independent given z.",
    "reconstructions": "**4.2 Reconstructions.** {Images} test images (left), the Bernoulli means of p(x|z) "
    "for one z ~ q(z|x) (middle) and a binary sample from it (right).",
    "latent_embedding": "**5.1 Latent embedding.** The mean of q(z|x) for every training "
    "image, coloured by class (drawn in a shuffled order, so no class hides the others); no label was used "
    "in training.",
    "latent_confusion": "**5.1b Classes in the latent plane.** Each test image labelled by a vote of "
    "the nearest training embeddings (means of q(z|x)); row t, column p: the percentage of the test "
    "images of digit t labelled p.",
    "latent_lattice": "**5.2 The learned manifold (paper Fig. 4b).** Bernoulli means of p(x|z) on a "
    "20 x 20 lattice whose coordinates are the Gaussian inverse CDF of evenly spaced points in "
    "(0, 1), so it covers the prior's mass evenly; z1 grows to the right and z2 upwards.",
    "latent_lattice_linear": "**5.2, linear lattice.** The same on an evenly spaced lattice between "
    "the 1st and 99th percentiles of the training embeddings on each axis: the range the data span, though "
    "not every point of it holds data.",
    "interpolations": "**5.3 Interpolations.** {Pairs} {pairs_of} test images{different}; "
    "between them, the Bernoulli means along z_alpha = alpha z_a + (1 - alpha) z_b for {steps} evenly "
    "spaced alpha from 1 to 0.",
    "true_vs_approx_posterior": "**6.1 True posterior and q.** Contours of the exact p(z|x) (grid "
    "quadrature; solid) and of the encoder's q(z|x) (dashed) for the first {train} training images "
    "(top row) and the first {test} test images (bottom row), at the highest-density regions holding "
    "50/90/99% of the mass.",
    "top_half_posterior": "**6.2 Posterior given the top half.** For the first test images, one panel each "
    "(panel 1 at the left): p(z | x_top), with the bottom {bottom_rows} rows unobserved (they sum out of the "
    "likelihood pixel by pixel), against p(z|x) for the whole "
    "image; each title gives the std of p(z | x_top), its number of modes and the share of its mass "
    "at the window's edge.",
    "svi_posterior": "**6.3 SVI.** For the first test images, one panel each (panel 1 at the left), as in 6.2: "
    "a diagonal Gaussian q(z) fitted by stochastic variational inference (Adam on the reparameterized ELBO) to "
    "p(z | x_top), drawn over its exact contours; ± in the titles is the Monte Carlo standard error of the "
    "SVI ELBO.",
    "svi_prediction": "**6.3 Predicting the bottom half.** Each row: the original digit; the "
    "observed top half joined to the Bernoulli means of the bottom half for a few z ~ q; the "
    "posterior predictive mean of the bottom half averaged over many z ~ q, which approximates "
    "the mean of p(x_bottom | x_top); and that mean itself, averaged under the exact p(z | x_top) "
    "by quadrature.",
    "gradient_histograms": "**7 Gradient estimators.** Histograms of single-draw estimates of "
    "d ELBO / d mean_1 for test image 0, by the score-function (REINFORCE) estimator, the same with a "
    "leave-one-out baseline within K draws (each draw's baseline is the mean log weight of the other "
    "K - 1 draws of its group) for each K, and the reparameterization estimator, on one x-range (an "
    "inset zooms in where a histogram is a spike at that scale, its title giving the share of draws beyond "
    "its range); the red line is the exact gradient "
    "from quadrature. For a baseline estimator the terms of one group are correlated, so the std in its "
    "title (of single terms) is not the per-draw std that the tables' variances use. How typical test image 0 "
    "is: see Gradient estimators.",
    "inference_gaps": "**8 The two gaps per image.** Left: the approximation gap log p(x) - ELBO(q*); right: "
    "the amortization gap ELBO(q*) - ELBO(q(z|x)) of all images (orange) and, drawn over them, of those whose "
    "refinement from q(z|x) stops in a wrong basin (red), in log-spaced bins on a log axis (the images at or "
    "below 0.01 nats, which it cannot show, are counted in its title); for the test set (top) and "
    "the training set (bottom), each title giving its number of images.",
    "gaps_over_training": "**8 Along training.** Left: log p(x) and the encoder's ELBO of the kept checkpoints "
    "(test: solid lines and filled markers; train: dashed lines and open markers) over the training curve (the "
    "mean minibatch ELBO of each epoch); right: what q(z|x), q_refined and q* leave of log p(x), with standard "
    "errors over the images, the three set slightly apart in epoch so that none hides another. Epochs, and "
    "the gaps on the right, are on log scales.",
    "worst_amortization": "**8 Largest amortization gaps.** The true p(z|x) of test images with the largest "
    "amortization gaps, with q(z|x), q_refined and q*: from the left, the largest overall (half the panels), "
    "then the largest among the images whose refinement stops in a wrong basin, as far as there are any; each "
    "title says whether its refinement stops in a wrong basin; each panel holds the three Gaussians to 4 "
    "standard deviations, its digit "
    "above it.",
}


def write_report(path, results):
    """Write report.md at path from results (as in results.json), beside the figures of CAPTIONS."""
    atomic_write(path, lambda f: f.write(report_text(results).encode()))


def report_text(results):
    training, test, train = (results["training"], results["integration_test"],
                             results["integration_train"])
    lines = [
        "# VAE on binarized MNIST: the study",
        "",
        f"{describe_model(training)}; {training['epochs']} epochs of Adam {trained_on(training)}"
        + (" (**--quick run: a pipeline check, not the science**)" if results["quick"] else "")
        + f", seed {results['seed']}. Every number `run_all.py` computed that this page quotes is read "
        "from `results.json`.",
        "",
        "## Numbers (nats per image)",
        "",
        f"ELBO: the Monte Carlo ELBO, {test['elbo_samples']} samples of z per image; MC SE: its Monte Carlo "
        "standard error; the gap log p(x) - ELBO estimates the mean KL(q(z|x) || p(z|x)).",
        "",
        "| set | images | log p(x), quadrature | ELBO | MC SE | gap = log p(x) - ELBO |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, study in (("test", test), ("train", train)):
        lines.append(table_row(name, f"{study['num_images']:,}", f"{study['log_px']:.3f}", f"{study['elbo']:.3f}",
                               f"{study['elbo_se']:.3f}", f"{study['gap']:.3f}"))
    lines += [
        "",
        f"The ELBO of training ({training['eval_samples']} samples per image) was "
        f"{training['train_elbo']:.3f} on the training set and {training['test_elbo']:.3f} on the test set; "
        f"the table's ELBO averages {test['elbo_samples']} samples per image.",
        "",
    ]
    if test["iwae"] and test["log_px_on_iwae_images"] is not None:  # a run may make no IWAE bounds
        lines += [
            f"Importance-weighted bounds on the first {plural(test['iwae_images'], 'test image')}, where "
            f"log p(x) = {test['log_px_on_iwae_images']:.3f}:",
            "",
            "| K | " + " | ".join(str(k) for k in test["iwae"]) + " |",
            "| --- |" + " --- |" * len(test["iwae"]),
            "| IWAE bound | " + " | ".join(f"{v:.3f}" for v in test["iwae"].values()) + " |",
            "",
        ]
    lines += [f"- {sentence}" for sentence in describe_marginal_likelihood(test, train)] + [""]
    lines += svi_section(results["svi"]) + estimator_section(results["gradient_estimators"])
    lines += gap_section(results["inference_gaps"])
    lines += ["## Figures", ""]
    captions = computed_captions(results)
    for name in CAPTIONS:
        lines += [f"![{name}]({name}.png)", "", captions[name], ""]
    lines += questions_section(results["posteriors"]["bottom_dependence"], math.isqrt(training["data_dim"]),
                               test["coarse_grid"]["median_q_std"])
    return "\n".join(lines) + "\n"


def describe_model(training):
    """The model as results.json's training metadata records it: Kingma & Welling's Appendix C
    model (one hidden layer of 500 tanh units) only if it is that one."""
    hidden, activation = training["hidden"], training["activation"]
    if hidden == [500] and activation == "tanh":
        model = ("Kingma & Welling (2013), Appendix C model (one hidden layer of 500 tanh units in the encoder and "
                 "in the decoder)")
    else:
        model = (f"an encoder with hidden layer{'s' if len(hidden) > 1 else ''} of {', '.join(map(str, hidden))} "
                 f"{activation} units and a decoder mirroring {'them' if len(hidden) > 1 else 'it'} (not Kingma & "
                 "Welling's Appendix C model, one hidden layer of 500 tanh units)")
    return f"{model}, {training['latent_dim']}-D latent space"


def trained_on(training):
    """'on the first 10,000 training images', naming the held-out validation images if there were any."""
    held_out = training["validation_size"]
    text = f"on the first {training['train_size'] - held_out:,} training images"
    if held_out:
        text += (f", keeping the epoch whose ELBO on the next {held_out:,} (held out, never trained on) was "
                 "the highest")
    return text


def computed_captions(results):
    """CAPTIONS, each followed by the sentences this run's numbers support, and only those."""
    classes, shown, paths = results["latent_classes"], results["reconstructions"], results["interpolations"]
    posteriors, k = results["posteriors"], classes["k"]
    computed = {
        "reconstructions": describe_reconstructions(shown["labels"], shown["knn_classes"], k),
        "latent_embedding": describe_latent_classes(classes),
        "interpolations": describe_interpolations(paths["labels_a"], paths["labels_b"], paths["path_classes"],
                                                  paths["faithful"], k),
        "true_vs_approx_posterior": describe_true_vs_approx(posteriors["true_vs_approx"]),
        "top_half_posterior": describe_top_half(posteriors["top_half"]),
        "svi_posterior": describe_svi(results["svi"]),
        "inference_gaps": describe_gap_histograms(results["inference_gaps"]),
    }
    pairs, panels = len(paths["labels_a"]), posteriors["true_vs_approx"]
    side = math.isqrt(results["training"]["data_dim"])
    counts = {  # the counts a caption names, read off the lists results.json holds
        "reconstructions": {"Images": count(len(shown["labels"])).capitalize()},
        "interpolations": {"Pairs": count(pairs).capitalize(), "pairs_of": "pair of" if pairs == 1 else "pairs of",
                           "steps": count(len(paths["path_classes"][0])),
                           "different": " of different classes" if all(
                               a != b for a, b in zip(paths["labels_a"], paths["labels_b"])) else ""},
        "true_vs_approx_posterior": {part: count(len(panels[part]["kl"])) for part in ("train", "test")},
        # The top half is the first half of the pixels (study.posterior.top_half): of a square image, its top rows.
        "top_half_posterior": {"bottom_rows": side - side // 2},
    }
    captions = {}
    for name, text in CAPTIONS.items():
        text = text.format(**counts[name]) if name in counts else text
        captions[name] = text + (" " + computed[name] if computed.get(name) else "")
    return captions


def describe_gap_histograms(gaps):
    """The red histograms that the part 8 caption names but a set without wrong basins does not have, or ''."""
    none = [name for split, name in (("test", "test"), ("train", "training"))
            if gaps[split]["wrong_basin_fraction"] == 0]
    bars = "its histogram has" if len(none) == 1 else "their histograms have"
    return f"No image of the {' or the '.join(none)} set is in a wrong basin: {bars} no red bars." if none else ""


def svi_section(svi):
    lines = ["## SVI for the top half of a digit", "",
             "Panels as in the SVI figures, left to right; MC SE: the Monte Carlo standard error of the SVI "
             "ELBO (the mean of its draws of z).", "",
             "| panel | SVI ELBO | MC SE | log p(x_top), quadrature | KL(q \\|\\| p(z\\|x_top)), quadrature | "
             "log p(x_top) - ELBO | converged |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for n, (elbo, se, log_p, kl, kl_elbo, ok) in enumerate(zip(
            svi["svi_elbo"], svi["svi_elbo_se"], svi["log_p_x_top"], svi["kl"], svi["kl_from_elbo"],
            svi["converged"])):
        lines.append(f"| {n + 1} | {elbo:.3f} | {se:.3f} | {log_p:.3f} | {kl:.3f} | {kl_elbo:.3f} | "
                     f"{'yes' if ok else 'no'} |")
    return lines + [""]


README_START, README_END = "<!-- results:start -->\n", "<!-- results:end -->"


def readme_with_results(readme, results):
    """The README text readme with its results block (between README_START and README_END)
    replaced by readme_results(results); a ValueError if it has no such block."""
    return readme_with_block(readme, README_START, README_END, readme_results(results))


def readme_with_block(readme, start_mark, end_mark, text):
    """The README text readme with what lies between start_mark and end_mark replaced by text; a
    ValueError if it does not hold one such block."""
    if readme.count(start_mark) != 1 or readme.count(end_mark) != 1 \
            or readme.index(start_mark) > readme.index(end_mark):
        raise ValueError(f"the README must hold one {start_mark.strip()} ... {end_mark} block")
    start, end = readme.index(start_mark) + len(start_mark), readme.index(end_mark)
    return readme[:start] + text + readme[end:]


def readme_results(results):
    """The README's results block, every number from results (as in results.json).

    tests/test_readme.py checks that the README holds exactly this text for the committed
    figures/results.json, so the README cannot drift from the numbers.
    """
    training, test, train = results["training"], results["integration_test"], results["integration_train"]
    gaps, svi, estimators = results["inference_gaps"], results["svi"], results["gradient_estimators"]
    lines = [
        f"Training: {training['epochs']} epochs of Adam (lr {training['lr']:g}, minibatches of "
        f"{training['batch_size']}) {trained_on(training)}, seed {results['seed']}. "
        f"The exact log-likelihood by quadrature over the latent plane against the Monte Carlo ELBO "
        f"({test['elbo_samples']} samples of z per image; MC SE: its Monte Carlo standard error), part 3.2:", "",
        "| set | images | log p(x) | ELBO | MC SE | gap = log p(x) - ELBO |",
        "| --- | --- | --- | --- | --- | --- |"]
    for name, study in (("train", train), ("test", test)):
        lines.append(table_row(name, f"{study['num_images']:,}", f"{study['log_px']:.3f}", f"{study['elbo']:.3f}",
                               f"{study['elbo_se']:.3f}", f"{study['gap']:.3f}"))
    lines += ["", "Where the gap goes (part 8; with exact Gaussian ELBOs, no sampling, so the two gaps add up to "
              "log p(x) - ELBO(q) exactly; ± is the standard error over the images):", "",
              "| set | images | approximation gap | amortization gap | refinement gain | wrong basin |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name in ("train", "test"):
        row = gaps[name]
        lines.append(table_row(name, f"{row['num_images']:,}", with_se(row, "approximation_gap", 3),
                               with_se(row, "amortization_gap", 2), with_se(row, "refinement_gain", 2),
                               table_percent(row['wrong_basin_fraction'])))
    sentences = describe_inference_gaps(gaps)
    for name in ("gap_split", "refinement"):
        lines += ["", sentences[name]]
    lines += iwae_proposal_lines(gaps["test"].get("iwae"), ", with the encoder's q(z|x) and with q* as the proposal")
    lines += ["", f"SVI on the top halves of {len(svi['kl'])} test digits reaches KL(q || p(z|x_top)) of "
              f"{min(svi['kl']):.3f}-{max(svi['kl']):.3f} nats (quadrature)."]
    paragraphs = describe_estimators(estimators)
    for name in ("compared", "bias", "variance"):
        lines += ["", paragraphs[name]]
    return "\n".join(lines) + "\n"


def questions_section(bottom_dependence, side, median_q_std):
    return [
        "## The study's true/false questions", "",
        "(a) Does p(x_bottom | z) factorize over the bottom pixels? **True**: given z the decoder "
        "makes every pixel an independent Bernoulli.",
        "",
        "(b) Does p(x_bottom | x_top)? **False**: " + describe_factorization(bottom_dependence, side) + ".",
        "",
        "(c) If the ELBO increases while training theta and phi jointly, must KL(q(z|x) || p(z|x)) "
        "have decreased? **False**: ELBO = log p_theta(x) - KL, so the ELBO can rise through "
        "log p_theta(x) while the KL to the (moving) true posterior grows.",
        "",
        "(d) Can a Gaussian density be negative? **False**: it is an exponential times a "
        "positive constant.",
        "",
        "(e) Can it exceed 1? **True**: it is a density, not a probability; N(0, sigma^2) at its "
        "mean is 1 / (sigma sqrt(2 pi)), above 1 for sigma < 0.399"
        + (f", as for this encoder's q(z|x), whose median standard deviation on the test images is "
           f"{median_q_std:.3f}." if median_q_std < 0.399 else "."),
        "",
    ]
