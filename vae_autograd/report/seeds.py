"""The page of the seed sweeps (sweeps/report.md), from their JSONs alone (seeds.outputs.sweep_summary
writes them): each setting's mean ± standard deviation over seeds beside Davidson et al.'s published row,
IWAE with K = 1000 against the exact log p(x) of the same images, the gaps, and sentences that say only
what those numbers show."""
import statistics

from ..core.text import percent
from .format import join, nats_apart, plural, printed, table_row

# The figure's panels: (row metric, title, y label, key of the published row drawn beside it or None); a title's
# {iwae_k} is the sweeps' K (iwae_k_text), read off their JSONs by figure_panels.
FIGURE_PANELS = (
    ("test_log_px", "exact test log p(x)", "nats per image", "log_px"),
    ("iwae_minus_log_px", "IWAE ({iwae_k}) minus exact log p(x)", "nats per image", None),
    ("test_elbo", "test ELBO", "nats per image", "elbo"),
    ("test_approximation_gap", "approximation gap (test)", "nats per image", None),
    ("test_amortization_gap", "amortization gap (test)", "nats per image", None),
    ("test_wrong_basin_fraction", "wrong-basin fraction (test)", "share of images", None),
)
CAPTION = ("**Per seed.** Each dot one seed's model (its value on the test set), the bar the mean ± standard "
           "deviation over seeds; where Davidson et al. (2018) report the number (their LL beside the exact "
           "log p(x), their ELBO beside the test ELBO), their mean ± standard deviation is the grey band (a setting "
           "analysed on the first test images only, the images column of the page's first table, is not comparable "
           "with it in the log p(x) panel).")


def iwae_k_text(sweeps):
    """'K = 1000' when the sweeps' IWAE bounds share one K (analysed["iwae_k"] of their JSONs), else
    "each setting's K"."""
    ks = {sweep["analysed"]["iwae_k"] for sweep in sweeps}
    return f"K = {ks.pop()}" if len(ks) == 1 else "each setting's K"


def figure_panels(sweeps):
    """FIGURE_PANELS with their titles for these sweeps (the IWAE panel names their K)."""
    return [(metric, title.format(iwae_k=iwae_k_text(sweeps)), ylabel, reference)
            for metric, title, ylabel, reference in FIGURE_PANELS]


def spread(sweep, metric, digits=2):
    """'mean ± sd' over the sweep's seeds ('mean' for one seed, '-' where it has none)."""
    mean, sd = sweep["mean"][metric], sweep["sd"][metric]
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def share_spread(sweep, metric):
    mean, sd = sweep["mean"][metric], sweep["sd"][metric]
    return "-" if mean is None else percent(mean) if sd is None else f"{percent(mean)} ± {percent(sd)}"


def sweep_page(sweeps, figure_name):
    """The whole page (markdown) of the sweeps (their JSONs, in the order shown), with the figure figure_name."""
    published = sweeps[0]["published"] if sweeps else None
    lines = ["# Seeds", ""]
    for sweep in sweeps:
        seeds = sweep["seeds"]
        lines += [f"- **{sweep['setting']}**, {sweep['description']}: {training_summary(sweep['options'])}; seeds "
                  f"{seed_list(seeds)} ({len(seeds)} model{'s' if len(seeds) > 1 else ''})."]
    if not sweeps:
        return "\n".join(lines + ["No sweep has been run yet.", ""])
    one_k = len({sweep["analysed"]["iwae_k"] for sweep in sweeps}) == 1
    k_text = iwae_k_text(sweeps) if one_k else "each setting's K (in its IWAE cell)"
    lines += ["", "Mean ± standard deviation over seeds (ddof = 1), in nats per image: the exact log p(x) of the "
              f"first test images (the images column: how many, then how many of them the IWAE bound with {k_text} "
              "and the encoder's q(z|x) covers; IWAE - log p(x) is the mean difference on those same images), the "
              "ELBOs of the training's evaluation (the whole test set, the training images), beside the published "
              f"row of {published['source']}: their LL, an importance-sampling estimate of the mean log p(x) of the "
              "whole test set, stands in the exact log p(x) column (comparable with a setting's only where the images "
              "column shows the whole test set), their ELBO in the test ELBO column:", "",
              table_row("setting", "seeds", "images", "exact log p(x)", f"IWAE, {k_text}" if one_k else "IWAE",
                        "IWAE - log p(x)", "test ELBO", "training ELBO"),
              table_row(*["---"] * 8)]
    for sweep in sweeps:
        images = f"{sweep['analysed']['test_images']:,} / {sweep['analysed']['iwae_images']:,}"
        iwae = spread(sweep, "iwae") + ("" if one_k else f" (K = {sweep['analysed']['iwae_k']})")
        lines.append(table_row(sweep["setting"], len(sweep["seeds"]), images, spread(sweep, "test_log_px"),
                               iwae, spread(sweep, "iwae_minus_log_px"), spread(sweep, "test_elbo"),
                               spread(sweep, "train_elbo")))
    lines.append(table_row("Davidson et al. (2018)", "", "10,000",
                           f"{published['log_px']:.2f} ± {published['log_px_sd']:.2f}", "", "",
                           f"{published['elbo']:.2f} ± {published['elbo_sd']:.2f}", ""))
    lines += ["", "Where the ELBO loses its nats (exact Gaussian ELBOs, no sampling; the training images are the "
              "first of those each model was evaluated on):", "",
              table_row("setting", "set", "images", "exact log p(x)", "approximation gap", "amortization gap",
                        "wrong basin"),
              table_row(*["---"] * 7)]
    for sweep in sweeps:
        for split, images in (("test", "test_images"), ("train", "gap_train_images")):
            lines.append(table_row(sweep["setting"], split, f"{sweep['analysed'][images]:,}",
                                   spread(sweep, f"{split}_log_px"), spread(sweep, f"{split}_approximation_gap", 3),
                                   spread(sweep, f"{split}_amortization_gap"),
                                   share_spread(sweep, f"{split}_wrong_basin_fraction")))
    lines.append("")
    lines += [sentence for sentence in gap_changes(sweeps) for sentence in (sentence, "")]
    for sweep in sweeps:
        lines += [sentence for sentence in describe_sweep(sweep, published) for sentence in (sentence, "")]
    lines += [f"![Per seed]({figure_name})", "", CAPTION, ""]
    return "\n".join(lines)


def gap_changes(sweeps):
    """A sentence per split on how the test and training gaps change from the first sweep (the assignment's
    setting, in SETTINGS' order) to each other, from their means over seeds; none for fewer than two sweeps."""
    if len(sweeps) < 2:
        return []
    first = sweeps[0]
    sentences = []
    for split, name in (("test", "test set"), ("train", "training images")):
        parts = [f"in the {sweep['setting']} setting {spread(sweep, f'{split}_amortization_gap')} and "
                 f"{spread(sweep, f'{split}_approximation_gap', 3)}" for sweep in sweeps[1:]]
        sentences.append(f"On the {name}, the amortization and approximation gaps are "
                         f"{spread(first, f'{split}_amortization_gap')} and "
                         f"{spread(first, f'{split}_approximation_gap', 3)} nats in the {first['setting']} setting; "
                         f"{join(parts)}.")
    return sentences


def beside_published(sweep, ours, published, theirs):
    """'1.23 nats below their ELBO (within the sum of the two standard deviations, 1.57)': the sweep's mean
    of metric ours against the published row's theirs ("log_px", named LL, or "elbo"). The distance and the sum
    are compared as printed (2 decimals), so that two numbers shown alike are never called one larger."""
    gap = printed(sweep["mean"][ours]) - published[theirs]  # the mean as the table shows it
    width = (sweep["sd"][ours] or 0.0) + published[f"{theirs}_sd"]
    # One seed has no standard deviation: the width is then the published one alone.
    widths = "the sum of the two standard deviations" if sweep["sd"][ours] is not None else "their standard deviation"
    shown_gap, shown_width = printed(abs(gap)), printed(width)
    compared = ("more than" if shown_gap > shown_width else "within" if shown_gap < shown_width
                else "as much as, to 2 decimals,")
    return (f"{nats_apart(gap)} their {'LL' if theirs == 'log_px' else 'ELBO'} "
            f"({compared} {widths}, {width:.2f})")


def training_summary(options):
    """How a sweep's models were trained, in words, from its options (sweeps/<setting>.json)."""
    hidden = options.get("hidden") or [options.get("hidden_dim")]
    activation = options.get("activation", "tanh")
    trained = options["train_size"] - options["validation_size"]
    images = (f"the first {trained:,} training images thresholded at 0.5" if options["binarization"] == "threshold"
              else f"the first {trained:,} training images, each minibatch binarized afresh (dynamic binarization)")
    if options["validation_size"]:
        epochs = (f"up to {options['epochs']} epochs, the next {options['validation_size']:,} held out to keep the "
                  f"epoch of the best validation ELBO (patience {options['patience']})")
    else:
        epochs = f"{options['epochs']} epochs"
    layers = "-".join(str(width) for width in [784, *hidden])
    return (f"{layers}-{activation} encoder and its mirror as decoder, {options['latent_dim']}-D latent, trained on "
            f"{images} for {epochs}, Adam (lr {options['lr']:g}, minibatches of {options['batch_size']})")


def duration(seconds):
    """'45 s' below 100 s, else '3.2 minutes'."""
    return f"{seconds:.0f} s" if seconds < 100 else f"{seconds / 60:.1f} minutes"


def consecutive(seeds):
    """Whether seeds run one by one from the first to the last (0, 1, 2, ...)."""
    return seeds == list(range(seeds[0], seeds[-1] + 1))


def seed_list(seeds):
    """'0-4' for three or more consecutive seeds, else '0, 2 and 5'."""
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 2 and consecutive(seeds) else join([str(s) for s in seeds])


def seeds_option(seeds):
    """The --seeds option that runs these seeds: '0-4' for consecutive ones, else '0,2,5'."""
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 and consecutive(seeds) else ",".join(str(s) for s in seeds)


def describe_sweep(sweep, published):
    """The sentences of one setting's sweep, each computed from its numbers."""
    setting, rows, mean = sweep["setting"], sweep["rows"], sweep["mean"]
    n = len(rows)
    sentences = []
    below = sum(row["iwae_minus_log_px"] < 0 for row in rows)
    difference = mean["iwae_minus_log_px"]
    apart = nats_apart(difference)
    sentences.append(
        f"{setting}: on the first {sweep['analysed']['iwae_images']:,} test images, IWAE with "
        f"K = {sweep['analysed']['iwae_k']} lies {apart} the exact log p(x) of those images on average over "
        f"the {n} seed{'s' if n > 1 else ''} (below in {below} of {n})"
        + ("." if apart.startswith("level") else "; as an estimate of log p(x) it is off by that much."))
    if sweep["options"]["binarization"] == "dynamic":
        parts = []
        # Davidson et al.'s numbers are the whole test set's: the log p(x) and IWAE of a subset are not set beside them.
        whole = sweep["analysed"]["test_images"] == sweep["options"]["test_size"]
        iwae_whole = sweep["analysed"]["iwae_images"] == sweep["options"]["test_size"]
        compared = ((("test_log_px", "log_px", "the exact test log p(x)"),) if whole else ()) \
            + ((("iwae", "log_px", "the IWAE estimate"),) if iwae_whole else ()) \
            + (("test_elbo", "elbo", "the test ELBO"),)
        for ours, theirs, what in compared:
            parts.append(f"{what} {beside_published(sweep, ours, published, theirs)}")
        iwae_apart = "" if iwae_whole or not whole else (
            f" (its IWAE, of the first {sweep['analysed']['iwae_images']:,} test images only, is not set beside their "
            "LL, which is the whole test set's)")
        sentences.append(f"{setting}, on data like Davidson et al.'s (dynamic binarization): {join(parts)}"
                         f"{iwae_apart}.")
        if not whole:
            # The exact ELBO of q(z|x) on the subset: log p(x) minus both gaps, each a mean over the same images.
            subset_elbo = mean["test_log_px"] - mean["test_approximation_gap"] - mean["test_amortization_gap"]
            offset = printed(subset_elbo) - printed(mean["test_elbo"])  # as the sentence shows them
            sentences.append(
                f"{setting}: its exact log p(x) and IWAE are those of the first {sweep['analysed']['test_images']:,} "
                f"test images only, whose exact ELBO of q(z|x) (log p(x) minus both gaps), {subset_elbo:.2f}, lies "
                f"{nats_apart(offset)} the whole test set's ELBO ({mean['test_elbo']:.2f}); "
                "so they are not set beside the published LL, which is the whole test set's.")
        drawn, thresholded = mean["test_log_px"], mean["test_threshold_log_px"]
        images = "test images" if whole else f"first {sweep['analysed']['test_images']:,} test images"
        apart = nats_apart(printed(thresholded) - printed(drawn))  # the two means as the sentence shows them
        sentences.append(f"{setting}: the {images} thresholded at 0.5 have an exact log p(x) of "
                         f"{spread(sweep, 'test_threshold_log_px')}, {apart} "
                         "that of the same images as drawn from its fixed seed "
                         f"({spread(sweep, 'test_log_px')}).")
        sentences.append(f"{setting}: the ELBO of the whole test set thresholded at 0.5, "
                         f"{spread(sweep, 'test_threshold_elbo')}, lies "
                         f"{beside_published(sweep, 'test_threshold_elbo', published, 'elbo')}.")
    else:
        sentences.append(f"{setting}: trained on images thresholded at 0.5, not dynamically binarized as Davidson "
                         "et al.'s, so their row is a reference, not a replication.")
    if sweep["options"]["validation_size"]:
        kept = [row["best_epoch"] for row in rows]
        stopped = sum(bool(row["stopped_early"]) for row in rows)
        sentence = (f"{setting}: the epochs kept (best validation ELBO) range from {min(kept)} to {max(kept)} of "
                    f"the {sweep['options']['epochs']} allowed; {stopped} of {n} seeds stopped early "
                    f"(patience {sweep['options']['patience']})")
        if not stopped:  # every run ended with a better validation ELBO within its last patience epochs
            sentence += (f": every run reached its best validation ELBO within its last "
                         f"{sweep['options']['patience']} epochs, so none was stopped by its patience and each ended "
                         f"at the {sweep['options']['epochs']}-epoch limit: these models are not shown to be converged")
        sentences.append(sentence + ".")
    seconds = {step: statistics.median(row["seconds"][step] for row in rows) for step in ("train", "analysis")}
    sentences.append(f"{setting}: a seed's training took {duration(seconds['train'])} and its analysis "
                     f"{duration(seconds['analysis'])} (medians over seeds; a resumed training's last session only).")
    return sentences


# The README's headline numbers (report.page.readme_results) and where a sweep row holds each: (row metric,
# what it is, digits); {iwae_k} is the sweep's K, read off its JSON by readme_seed_block.
README_HEADLINES = (
    ("test_log_px", "exact test log p(x)", 2), ("train_log_px", "exact training log p(x)", 2),
    ("test_elbo", "test ELBO", 2), ("train_elbo", "training ELBO", 2),
    ("test_approximation_gap", "approximation gap (test)", 3),
    ("train_approximation_gap", "approximation gap (train)", 3),
    ("test_amortization_gap", "amortization gap (test)", 2), ("train_amortization_gap", "amortization gap (train)", 2),
    ("test_wrong_basin_fraction", "wrong-basin fraction (test)", None),
    ("train_wrong_basin_fraction", "wrong-basin fraction (train)", None),
    ("iwae_minus_log_px", "IWAE ({iwae_k}) minus exact log p(x)", 2))
README_SEEDS_START, README_SEEDS_END = "<!-- seeds:start -->\n", "<!-- seeds:end -->"


def readme_seed_block(sweep):
    """The README's block of the headline numbers over the seeds of the assignment setting's sweep (its
    JSON, sweeps/assignment.json), or a line saying there is none (sweep None)."""
    if sweep is None:
        return "No sweep of the assignment setting is in `sweeps/` yet.\n"
    rows = sweep["rows"]

    def value(digits, number):
        return percent(number) if digits is None else f"{number:.{digits}f}"

    lines = [f"The same numbers over the {plural(len(rows), 'seed')} {seed_list(sweep['seeds'])} of the assignment "
             "setting "
             f"(`python -m vae_autograd.seeds --setting assignment --seeds {seeds_option(sweep['seeds'])}`, "
             "`sweeps/assignment.json`): the mean "
             "± standard deviation over seeds (ddof = 1) and the range. Each seed is analysed as above, but its ELBOs "
             f"are the training's evaluation ({sweep['options']['eval_samples']} draws of z per image) and its IWAE "
             f"uses the first {sweep['analysed']['iwae_images']:,} test images.", "",
             table_row("number", "mean ± sd", "lowest", "highest"), table_row(*["---"] * 4)]
    for metric, name, digits in README_HEADLINES:
        values = [row[metric] for row in rows]
        mean_sd = share_spread(sweep, metric) if digits is None else spread(sweep, metric, digits)
        lines.append(table_row(name.format(iwae_k=iwae_k_text([sweep])), mean_sd, value(digits, min(values)),
                               value(digits, max(values))))
    return "\n".join(lines) + "\n"
