"""Reproduce the whole study: train (or reuse a matching checkpoint), compute every number,
draw every figure, and write results.json and report.md into the output folder.

    python run_all.py            # the 200-epoch model of the README
    python run_all.py --quick    # a smoke run of the whole pipeline in under a minute
"""
from vae_autograd.io.process import exit_on_interrupt_while_starting, ignore_interrupts

exit_on_interrupt_while_starting()  # before the imports below, which take a second or two

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from vae_autograd.core.text import percent
from vae_autograd.figures import save_png
from vae_autograd.figures.digits import (
    fig_confusion,
    fig_interpolations,
    fig_latent_embedding,
    fig_latent_lattice,
    fig_prior_samples,
    fig_reconstructions,
)
from vae_autograd.figures.estimators import fig_gradient_histograms
from vae_autograd.figures.gaps import fig_gap_histograms, fig_gaps_over_training, fig_worst_amortization
from vae_autograd.figures.marginal_likelihood import fig_log_px_vs_elbo
from vae_autograd.figures.posteriors import (
    fig_svi_posterior,
    fig_svi_prediction,
    fig_top_half_posterior,
    fig_true_vs_approx_posterior,
)
from vae_autograd.io.files import (
    OutputError,
    atomic_write,
    check_name_fits,
    check_not_an_input,
    check_writable_file,
    check_writable_folder,
    recover_interrupted_swap,
    replace_folder,
    sole_writer,
)
from vae_autograd.io.mnist import DataError, load_binarized_mnist, mnist_paths
from vae_autograd.io.process import PartClock, interrupt_on_sigterm, keep_freed_memory
from vae_autograd.report.conform import check_results
from vae_autograd.report.page import CAPTIONS, write_report
from vae_autograd.study.decodings import (
    decoded_means,
    embedding_bounds,
    interpolate_latents,
    latent_lattice,
    latent_means,
    prior_samples,
    reconstructions,
)
from vae_autograd.study.estimator_study import gradient_estimator_study
from vae_autograd.study.gap_study import gap_studies
from vae_autograd.study.inference_gaps import worst_amortized
from vae_autograd.study.latent_classes import choose_faithful_pairs, knn_classify, latent_class_study, path_classes
from vae_autograd.study.marginal_likelihood import marginal_likelihood_study, quadrature_of_sets
from vae_autograd.study.posterior import posterior_study
from vae_autograd.study.svi import bottom_half_predictions, svi_study
from vae_autograd.train.checkpoints import CheckpointError
from vae_autograd.train.loop import TrainingDiverged
from vae_autograd.train.options import ConfigError, OneLineParser, TrainConfig, add_options, option_type
from vae_autograd.train.reuse import kept_models, reusable_model, trained_model

# How much of each part runs: the full study, and --quick (checks the pipeline, not the science).
SIZES = {
    "full": dict(epochs=TrainConfig.epochs, train_size=10000, test_size=10000, train_integrated=10000,
                 elbo_samples=20, iwae_ks=(1, 10, 100, 1000), iwae_images=500, svi_images=4,
                 svi_steps=1000, estimator_images=100, estimates=10000, estimates_per_image=1000,
                 gap_epochs=(1, 10, 50, 100), gap_train_images=10000, gap_iwae_images=500, gap_epoch_images=2000,
                 gap_check_images=1000, quadrature_checked=50),
    "quick": dict(epochs=3, train_size=2000, test_size=500, train_integrated=500,
                  elbo_samples=5, iwae_ks=(1, 10, 100), iwae_images=50, svi_images=2,
                  svi_steps=300, estimator_images=20, estimates=2000, estimates_per_image=1000, gap_epochs=(1, 2),
                  gap_train_images=200, gap_iwae_images=20, gap_epoch_images=50, gap_check_images=50,
                  quadrature_checked=10),
}


# A run marks the folder it writes as its own: only a folder so marked (or an empty one) is replaced.
MARK = ".written-by-run_all"


def parse_args(argv=None):
    """The parsed options, with args.config: the TrainConfig of the model to train or reuse."""
    parser = OneLineParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=option_type("epochs"), default=None,
                        help=f"epochs of the model to train or reuse (default {SIZES['full']['epochs']}; "
                             f"--quick: {SIZES['quick']['epochs']})")
    parser.add_argument("--params", type=option_type("out"), default=None,
                        help="checkpoint to reuse or write (default data/vae.npz; --quick: data/vae-quick.npz)")
    parser.add_argument("--retrain", action="store_true",
                        help="train anew, replacing the checkpoint at --params")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where figures, results.json and report.md go, replaced as a whole "
                             "(default figures/; --quick: figures-quick/)")
    add_options(parser, ["seed", "data_dir"])
    parser.add_argument("--quick", action="store_true",
                        help="few epochs on subsets of the data: checks the pipeline, not the science")
    args = parser.parse_args(argv)
    if args.out_dir is None:
        args.out_dir = Path("figures-quick" if args.quick else "figures")
    if args.params is None:
        args.params = Path("data") / ("vae-quick.npz" if args.quick else "vae.npz")
    sizes = SIZES["quick" if args.quick else "full"]
    epochs = args.epochs or sizes["epochs"]
    args.config = TrainConfig(epochs=epochs, seed=args.seed, data_dir=args.data_dir, out=args.params,
                              train_size=sizes["train_size"], test_size=sizes["test_size"], force=args.retrain,
                              keep_epochs=tuple(e for e in sizes["gap_epochs"] if e < epochs))
    return args


def check_output_paths(params, out_dir, data_dir=None):
    """Raise OutputError or CheckpointError before any work if the outputs cannot be written.

    out_dir is replaced as a whole at the end, so it may hold only what a run writes, and
    never the checkpoint or the MNIST files.
    """
    check_writable_file(params, "--params")
    check_writable_file(params.with_suffix(".json"), "--params (its results file)")
    for path, option in ((params, "--params"), (params.with_suffix(".json"), "--params"), (out_dir, "--out-dir")):
        check_not_an_input(path, mnist_paths(data_dir), option)
    if out_dir.is_symlink():  # replacing it would replace the link, not the folder it names
        raise OutputError(f"--out-dir {out_dir} is a symbolic link; pass the folder it points to ({out_dir.resolve()})")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out-dir {out_dir} is a file; pass a folder")
    check_writable_folder(out_dir.parent, "--out-dir")
    check_name_fits(out_dir, "--out-dir")
    if out_dir.resolve() in params.resolve().parents:
        raise OutputError(f"--params {params} is inside --out-dir {out_dir}, which is replaced as a whole; "
                          "keep the checkpoint elsewhere")
    if out_dir.is_dir():
        foreign = sorted(p.name for p in out_dir.iterdir()
                         if not (p.is_file() and (p.suffix == ".png" or p.name in ("results.json", "report.md", MARK)
                                                  or p.suffix == ".part")))
        if foreign:
            raise OutputError(f"--out-dir {out_dir} holds {foreign[0]}, which a run does not write, and is "
                              "replaced as a whole; pass a new folder or one holding a previous run only")
        if any(out_dir.iterdir()) and not (out_dir / MARK).is_file():
            raise OutputError(f"--out-dir {out_dir} was not written by run_all.py (it has no {MARK}), and is "
                              "replaced as a whole; pass a new folder or an empty one")


# Each step of the study draws from its own stream, so adding or resizing one changes no other.
STREAMS = {"elbo_test": 1, "elbo_train": 2, "prior_samples": 3, "reconstructions": 4, "interpolation_pairs": 5,
           "svi": 6, "svi_prediction": 7, "gradient_estimators": 8, "gap_iwae": 20, "gap_subset_test": 22,
           "gap_subset_train": 23}


def random_streams(seed):
    """{step name: numpy Generator}, one independent, reproducible stream per step of the study."""
    return {name: np.random.default_rng([seed, 1000 + number]) for name, number in STREAMS.items()}


def marginal_likelihood_part(enc, dec, train_x, test_x, sizes, streams, log):
    """Part 3: log p(x) by quadrature against the ELBO on the test and training images."""
    log("part 3: log p(x) by quadrature against the ELBO, test and training sets")
    train_x = train_x[:sizes["train_integrated"]]
    quadrature = quadrature_of_sets(dec, {"test": test_x, "train": train_x}, sizes["quadrature_checked"])
    test = marginal_likelihood_study(enc, dec, test_x, streams["elbo_test"], sizes["elbo_samples"],
                                     sizes["iwae_ks"], sizes["iwae_images"], quadrature=quadrature["test"])
    train = marginal_likelihood_study(enc, dec, train_x, streams["elbo_train"], sizes["elbo_samples"], (), 0,
                                      quadrature=quadrature["train"])
    for name, summary in (("test", test["summary"]), ("train", train["summary"])):
        log(f"  {name}: log p(x) {summary['log_px']:.3f}, ELBO {summary['elbo']:.3f}, gap {summary['gap']:.3f}; "
            f"twice the sub-points move log p(x) by {summary['halved_spacing_change']:.1e}; the 81 x 81 grid "
            f"is off by {summary['coarse_grid']['mean_abs_error']:.3f} on average")
    summary = test["summary"]
    figures = {"log_px_vs_elbo": fig_log_px_vs_elbo(test["log_px"], test["elbo"], summary)}
    results = {"integration_test": summary, "integration_train": train["summary"]}
    return figures, results, {"test": test["log_px"], "train": train["log_px"]}, test["iwae"]


def latent_space_part(enc, dec, data, streams, log):
    """Parts 4-5: samples, reconstructions, the embedding and its classes, lattices, interpolations."""
    train_x, train_labels, test_x, test_labels = data
    log("parts 4-5: the digit classes in the latent plane")
    classes = latent_class_study(enc, train_x, train_labels, test_x, test_labels)
    summary, k = classes["summary"], classes["summary"]["k"]
    pairs = ", ".join(f"{p['pair'][0]}/{p['pair'][1]} {percent(p['share'])}" for p in summary["confused_pairs"][:3])
    log(f"  {k}-NN test accuracy {summary['test_accuracy']:.1%}; most confused: {pairs or 'none'}")

    log("part 4: samples from the prior and reconstructions")
    _, prior_means, prior_binary = prior_samples(dec, streams["prior_samples"])
    shown_z, shown_means, shown_binary = reconstructions(enc, dec, test_x[:10], streams["reconstructions"])
    log("part 5: the latent space")
    a, b, faithful = choose_faithful_pairs(test_labels, classes["test_predicted"], streams["interpolation_pairs"],
                                           num_pairs=3, agreement=classes["test_agreement"])
    z_path = interpolate_latents(enc, test_x[a], test_x[b], 10)
    figures = {
        "prior_samples": fig_prior_samples(prior_means, prior_binary),
        "reconstructions": fig_reconstructions(test_x[:10], shown_means, shown_binary),
        "latent_embedding": fig_latent_embedding(latent_means(enc, train_x), train_labels),
        "latent_confusion": fig_confusion(summary),
        "latent_lattice": fig_latent_lattice(*latent_lattice(dec, 20, "gaussian"), "gaussian"),
        "latent_lattice_linear": fig_latent_lattice(*latent_lattice(dec, 20, "linear", embedding_bounds(enc, train_x)),
                                                    "linear"),
        "interpolations": fig_interpolations(test_x[a], test_x[b], decoded_means(dec, z_path), test_labels[a],
                                             test_labels[b]),
    }
    results = {
        "latent_classes": summary,
        "reconstructions": {"labels": test_labels[:10].tolist(),
                            "knn_classes": knn_classify(classes["train_z"], train_labels, shown_z, k).tolist()},
        "interpolations": {"a": a.tolist(), "b": b.tolist(), "labels_a": test_labels[a].tolist(),
                           "labels_b": test_labels[b].tolist(), "faithful": faithful,
                           "path_classes": path_classes(classes["train_z"], train_labels, z_path, k).tolist()}}
    return figures, results


def posterior_part(enc, dec, train_x, test_x, sizes, streams, log):
    """Part 6: true posteriors against q(z|x), the top half of a digit, SVI and the predicted bottom half."""
    log("part 6: true posteriors, the top half of a digit, SVI")
    posteriors = posterior_study(enc, dec, train_x[:4], test_x[:4])
    closeness = posteriors["summary"]["true_vs_approx"]
    log(f"  KL(q || p) on the shown training images {np.round(closeness['train']['kl'], 2).tolist()}, "
        f"test images {np.round(closeness['test']['kl'], 2).tolist()}; modes given the top half "
        f"{posteriors['summary']['top_half']['num_modes']}")
    svi_x = test_x[:sizes["svi_images"]]
    svi = svi_study(dec, svi_x, streams["svi"], num_steps=sizes["svi_steps"])
    predictions = bottom_half_predictions(dec, svi, streams["svi_prediction"])
    log(f"  SVI: KL(q || p(z|x_top)) {np.round(svi['summary']['kl'], 3).tolist()}, agreeing with "
        f"log p - ELBO: {svi['summary']['kl_agree']}")
    figures = {"true_vs_approx_posterior": fig_true_vs_approx_posterior(posteriors),
               "top_half_posterior": fig_top_half_posterior(posteriors),
               "svi_posterior": fig_svi_posterior(svi_x, svi),
               "svi_prediction": fig_svi_prediction(svi_x, predictions)}
    return figures, {"posteriors": posteriors["summary"], "svi": svi["summary"]}


def estimator_part(enc, dec, test_x, sizes, streams, log):
    """Part 7: score-function against reparameterization gradients."""
    log("part 7: score-function against reparameterization gradients")
    estimators = gradient_estimator_study(enc, dec, test_x[:sizes["estimator_images"]], streams["gradient_estimators"],
                                          sizes["estimates"], sizes["estimates_per_image"])
    figure = fig_gradient_histograms(estimators["focus_estimates"], estimators["summary"]["focus"]["exact"])
    return {"gradient_histograms": figure}, {"gradient_estimators": estimators["summary"]}


def gap_part(params, training, kept, train_x, test_x, log_px, iwae_encoder, sizes, streams, log):
    """Part 8: approximation and amortization gaps on the test and training images, and along training."""
    log("part 8: approximation and amortization gaps, and along training")
    images = {"test": test_x, "train": train_x[:sizes["gap_train_images"]]}
    gaps, per_image = gap_studies(params, training["epochs"], kept, images, log_px, iwae_encoder, streams["gap_iwae"],
                                  {"test": streams["gap_subset_test"], "train": streams["gap_subset_train"]},
                                  sizes["gap_iwae_images"], sizes["gap_check_images"], sizes["gap_epoch_images"], log)
    figures = {"inference_gaps": fig_gap_histograms(per_image),
               "gaps_over_training": fig_gaps_over_training(gaps["over_training"], training["train_curve"]),
               "worst_amortization": fig_worst_amortization(test_x, per_image["test"],
                                                            worst_amortized(params[1], test_x, per_image["test"]))}
    return figures, {"inference_gaps": gaps}


def run_study(args, log, clock):
    """Every part of the study on the model of args.config: ({name: Figure}, results as in results.json).
    clock (io.process.PartClock) times each part and measures its peak memory."""
    sizes = SIZES["quick" if args.quick else "full"]
    with clock.part("data and model (training)"):
        reused = reusable_model(args.config, args.retrain)  # a mismatched checkpoint fails before the data are read
        data = load_binarized_mnist(sizes["train_size"], sizes["test_size"], args.data_dir)
        train_x, _, test_x, _ = data
        params, training = trained_model(args.config, args.retrain, reused, data, log)
    with clock.part("kept checkpoints (training)"):
        kept = kept_models(args.config, data, log)  # a model trained above wrote them as it went
    enc, dec = params
    streams = random_streams(args.seed)
    results = {"seed": args.seed, "quick": args.quick,
               "training": {k: v for k, v in training.items() if k not in ("train_curve", "params_digest")}}
    with clock.part("part 3"):
        figures, part_results, log_px, iwae_encoder = marginal_likelihood_part(enc, dec, train_x, test_x, sizes,
                                                                               streams, log)
    results.update(part_results)
    parts = {"parts 4-5": lambda: latent_space_part(enc, dec, data, streams, log),
             "part 6": lambda: posterior_part(enc, dec, train_x, test_x, sizes, streams, log),
             "part 7": lambda: estimator_part(enc, dec, test_x, sizes, streams, log),
             "part 8": lambda: gap_part(params, training, kept, train_x, test_x, log_px, iwae_encoder, sizes,
                                        streams, log)}
    for name, part in parts.items():
        with clock.part(name):
            part_figures, part_results = part()
        figures.update(part_figures)
        results.update(part_results)
    return figures, results


def write_outputs(folder, figures, results_text):
    """Write the figures, results.json and report.md of one run into folder.

    The report is written from results.json as read back, exactly as `python -m vae_autograd.report` would.
    """
    results = json.loads(results_text)
    if set(figures) != set(CAPTIONS):
        raise ValueError(f"the study drew {sorted(figures)}, but the report captions {sorted(CAPTIONS)}")
    for name, fig in figures.items():
        atomic_write(folder / f"{name}.png", lambda f, fig=fig: save_png(fig, f))
    atomic_write(folder / "results.json", lambda f: f.write(results_text.encode()))
    atomic_write(folder / MARK, lambda f: f.write(b"written by run_all.py, which replaces this folder as a whole\n"))
    write_report(folder / "report.md", results)


def main(argv=None):
    args = parse_args(argv)
    clock = PartClock()

    def log(message):
        print(f"[{time.perf_counter() - clock.started:6.1f}s] {message}", flush=True)

    try:
        interrupt_on_sigterm()  # from here an interrupt is a KeyboardInterrupt, handled below
        keep_freed_memory()
        check_output_paths(args.params, args.out_dir, args.data_dir)
        # One run at a time writes these checkpoints and this folder: a second one is refused by name.
        with sole_writer(args.config.written_paths(), "--params"), sole_writer([args.out_dir], "--out-dir"):
            recover_interrupted_swap(args.out_dir)
            figures, results = run_study(args, log, clock)
            try:
                results_text = json.dumps(results, indent=1, allow_nan=False)
            except ValueError:
                sys.exit(f"error: the study produced non-finite numbers, so nothing was written to {args.out_dir}; "
                         f"check the model in {args.params} or train it anew with --retrain")
            # The report reads results.json by its schema (report/schema.py): a study that wrote
            # other keys is a bug, and nothing is written rather than a report that misreads it.
            check_results(json.loads(results_text))
            with clock.part("figures and report"):
                replace_folder(args.out_dir, lambda folder: write_outputs(folder, figures, results_text))
    except (DataError, CheckpointError, ConfigError, OutputError, TrainingDiverged) as err:
        sys.exit(f"error: {err}")
    except OSError as err:  # a write that failed half way: disk full, quota, a folder gone read-only
        sys.exit(f"error: could not write ({err.strerror or err}); {args.out_dir} holds the previous run as it was, "
                 f"and {args.params} its last saved epoch; free some space and run again")
    except MemoryError:
        sys.exit(f"error: out of memory; {args.out_dir} holds the previous run as it was, and {args.params} its last "
                 "saved epoch; free some memory and run again")
    except KeyboardInterrupt:
        print(f"interrupted; {args.out_dir} holds no partial run", file=sys.stderr)
        sys.exit(130)
    log(f"wrote {len(figures)} figures, results.json and report.md to {args.out_dir}/")
    for line in clock.table():
        log(line)


if __name__ == "__main__":
    try:
        main()
    finally:
        ignore_interrupts()
