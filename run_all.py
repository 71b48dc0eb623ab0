"""Reproduce the whole study: train (or reuse a matching checkpoint), compute every number,
draw every figure, and write results.json and report.md into the output folder.

    python run_all.py            # the 200-epoch model of the README
    python run_all.py --quick    # a smoke run of the whole pipeline in under a minute
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

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
from vae_autograd.io.files import OutputError, atomic_write, check_writable_file, check_writable_folder, replace_folder
from vae_autograd.io.mnist import DataError, load_binarized_mnist
from vae_autograd.io.process import interrupt_on_sigterm, keep_freed_memory
from vae_autograd.report.page import CAPTIONS, write_report
from vae_autograd.study.decodings import embedding_bounds, interpolate_latents, reconstructions
from vae_autograd.study.estimator_study import gradient_estimator_study
from vae_autograd.study.inference_gaps import gap_summary, inference_gap_study
from vae_autograd.study.latent_classes import choose_faithful_pairs, knn_classify, latent_class_study, path_classes
from vae_autograd.study.marginal_likelihood import marginal_likelihood_study
from vae_autograd.study.posterior import posterior_study
from vae_autograd.study.svi import svi_study
from vae_autograd.train.checkpoints import CheckpointError, load_params, metadata_mismatch
from vae_autograd.train.command import run_training
from vae_autograd.train.loop import TrainingDiverged
from vae_autograd.train.options import TrainConfig, add_options, option_type

# How much of each part runs: the full study, and --quick (checks the pipeline, not the science).
SIZES = {
    "full": dict(epochs=TrainConfig.epochs, train_size=10000, test_size=10000, train_integrated=10000,
                 elbo_samples=20, iwae_ks=(1, 10, 100, 1000), iwae_images=500, svi_images=4,
                 svi_steps=1000, estimator_images=100, estimates=10000, estimates_per_image=1000,
                 gap_epochs=(1, 10, 50, 100), gap_train_images=2000, gap_iwae_images=500, gap_epoch_images=2000,
                 gap_check_images=1000),
    "quick": dict(epochs=3, train_size=2000, test_size=500, train_integrated=500,
                  elbo_samples=5, iwae_ks=(1, 10, 100), iwae_images=50, svi_images=2,
                  svi_steps=300, estimator_images=20, estimates=2000, estimates_per_image=1000, gap_epochs=(1, 2),
                  gap_train_images=200, gap_iwae_images=20, gap_epoch_images=50, gap_check_images=50),
}


def parse_args(argv=None):
    """The parsed options, with args.config: the TrainConfig of the model to train or reuse."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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


def check_output_paths(params, out_dir):
    """Raise OutputError or CheckpointError before any work if the outputs cannot be written.

    out_dir is replaced as a whole at the end, so it may hold only what a run writes, and
    never the checkpoint.
    """
    check_writable_file(params, "--params")
    check_writable_file(params.with_suffix(".json"), "--params (its results file)")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out-dir {out_dir} is a file; pass a folder")
    check_writable_folder(out_dir.parent, "--out-dir")
    if out_dir.resolve() in params.resolve().parents:
        raise OutputError(f"--params {params} is inside --out-dir {out_dir}, which is replaced as a whole; "
                          "keep the checkpoint elsewhere")
    if out_dir.is_dir():
        foreign = sorted(p.name for p in out_dir.iterdir()
                         if not (p.is_file() and (p.suffix == ".png" or p.name in ("results.json", "report.md")
                                                  or p.suffix == ".part")))
        if foreign:
            raise OutputError(f"--out-dir {out_dir} holds {foreign[0]}, which a run does not write, and is "
                              "replaced as a whole; pass a new folder or one holding a previous run only")


def reusable_model(config, retrain):
    """(params, training results) from config.out if it holds the requested model, fully
    trained and evaluated; None if it must be trained or evaluated.

    Raises CheckpointError if config.out holds another model and retrain is off: a
    checkpoint the user named is never replaced unless asked to.
    """
    if retrain or not config.out.exists():
        return None
    params, metadata, _, epoch, _ = load_params(config.out)
    mismatch = metadata_mismatch(metadata, config.metadata()) or (
        epoch != config.epochs and f"has {epoch} epochs, but {config.epochs} were requested")
    if mismatch:
        raise CheckpointError(f"--params {config.out} does not match the requested model: it {mismatch}; "
                              "pass --retrain to replace it, or another --params")
    try:
        results = json.loads(config.results_path.read_text())
    except (OSError, ValueError):
        return None
    if results.get("epochs") == epoch and results.get("test_size") == config.test_size \
            and results.get("eval_samples") == config.eval_samples:
        return params, results
    return None


def trained_model(config, retrain, data, log):
    """Reuse config.out if it holds the requested model; else train it (or only evaluate it)."""
    reused = reusable_model(config, retrain)
    if reused is not None:
        log(f"reusing {config.out} ({config.epochs} epochs; --retrain to train again)")
        return reused
    if config.out.exists() and not retrain:  # the right model, without its results file
        log(f"evaluating {config.out}")
        config = dataclasses.replace(config, resume=True)
    else:
        log(f"training {config.epochs} epochs -> {config.out}")
    return run_training(config, log=lambda line: log("  " + line), data=data)


def kept_models(config, retrain, data, log):
    """{epoch: params} of the checkpoints config.keep_epochs kept beside config.out.

    Missing ones are trained anew (a run of e epochs gives exactly the epoch-e parameters
    of the longer run); one that holds another model is refused unless retrain.
    """
    models, missing = {}, []
    for epoch in config.keep_epochs:
        path = config.kept_path(epoch)
        if not path.exists():
            missing.append(epoch)
            continue
        params, metadata, _, kept_epoch, _ = load_params(path)
        mismatch = metadata_mismatch(metadata, config.metadata()) or (
            kept_epoch != epoch and f"has {kept_epoch} epochs, not {epoch}")
        if mismatch:
            raise CheckpointError(f"{path} does not match the requested model: it {mismatch}; "
                                  "pass --retrain to replace it")
        models[epoch] = params
    if missing:
        last = max(missing)
        log(f"training {last} epochs to keep the checkpoints of epochs {missing}")
        rerun = dataclasses.replace(config, epochs=last, out=config.kept_path(last), force=retrain, resume=False,
                                    keep_epochs=tuple(e for e in missing if e != last), quiet=True)
        run_training(rerun, log=lambda line: log("  " + line), data=data)
        for epoch in rerun.keep_epochs:  # the rerun names its kept checkpoints after its own --out
            os.replace(rerun.kept_path(epoch), config.kept_path(epoch))
        models.update({e: load_params(config.kept_path(e))[0] for e in missing})
    return dict(sorted(models.items()))


def gaps_by_split(enc, dec, images, log_px=None, **options):
    """inference_gap_study of the splits in images ({split: (N_s, 784)}) in one call, since
    their windows share lattice points (per-image numbers equal those of separate calls to 1e-11).

    options (rng, iwae_images, convergence_images) apply to the first images of the first
    split. Returns the study's summary and {split: its per_image arrays}.
    """
    study = inference_gap_study(enc, dec, np.concatenate(list(images.values())), log_px=log_px, **options)
    ends = np.cumsum([len(x) for x in images.values()])
    return study["summary"], {split: {k: v[end - len(x):end] for k, v in study["per_image"].items()}
                              for (split, x), end in zip(images.items(), ends)}


def gap_studies(params, epochs, kept, train_x, test_x, log_px, iwae_encoder, sizes, rng, log):
    """Part 8 on the test set and the training images, and on subsets along training.

    params: the model after epochs; kept: {epoch: params} before. log_px: {"test": (N,),
    "train": (M,)} and iwae_encoder (the IWAE bounds of the first test images with q(z|x))
    from part 3. Returns (summary, per_image by split).
    """
    enc, dec = params
    started = time.perf_counter()
    images = {"test": test_x, "train": train_x[:sizes["gap_train_images"]]}
    # The convergence checks and the IWAE bounds run on the first test images.
    whole, per_image = gaps_by_split(enc, dec, images, np.concatenate([log_px[s][:len(x)] for s, x in images.items()]),
                                     rng=rng(20), iwae_images=sizes["gap_iwae_images"], iwae_encoder=iwae_encoder,
                                     convergence_images=sizes["gap_check_images"])
    summary = {split: gap_summary(per_image[split]) for split in images}
    summary["test"].update(convergence=whole["convergence"], iwae=whole["iwae"])
    for split in images:
        log(f"  {split}: approximation gap {summary[split]['approximation_gap']:.3f}, amortization gap "
            f"{summary[split]['amortization_gap']:.3f}, wrong basins {summary[split]['wrong_basin_fraction']:.1%}")
    log(f"  both sets in {time.perf_counter() - started:.0f} s")
    # Along training: the same random subsets at every kept epoch, and at the last from above.
    subsets = {split: np.sort(rng(22 + step).choice(len(x), min(sizes["gap_epoch_images"], len(x)), replace=False))
               for step, (split, x) in enumerate(images.items())}
    rows = []
    for epoch, (kept_enc, kept_dec) in kept.items():
        _, kept_per_image = gaps_by_split(kept_enc, kept_dec, {s: x[subsets[s]] for s, x in images.items()},
                                          convergence_images=0, iwae_images=0)
        rows += [{"epoch": epoch, "split": split, **gap_summary(kept_per_image[split])} for split in images]
        log(f"  epoch {epoch}: amortization gap test {rows[-2]['amortization_gap']:.2f}, "
            f"train {rows[-1]['amortization_gap']:.2f}")
    for split in images:
        rows.append({"epoch": epochs, "split": split,
                     **gap_summary({k: v[subsets[split]] for k, v in per_image[split].items()})})
    summary["over_training"] = rows
    summary["over_training_images"] = {split: len(s) for split, s in subsets.items()}
    return summary, per_image


def run_study(args, log):
    sizes = SIZES["quick" if args.quick else "full"]
    reusable_model(args.config, args.retrain)  # a mismatched checkpoint fails before the data are read
    data = load_binarized_mnist(sizes["train_size"], sizes["test_size"], args.data_dir)
    train_x, train_labels, test_x, test_labels = data
    params, training = trained_model(args.config, args.retrain, data, log)
    kept = kept_models(args.config, args.retrain, data, log)
    enc, dec = params

    def rng(step):  # an independent, reproducible stream for each step of the study
        return np.random.default_rng([args.seed, 1000 + step])

    figures, results = {}, {"seed": args.seed, "quick": args.quick,
                            "training": {k: v for k, v in training.items() if k != "train_curve"}}

    log("part 3: log p(x) by quadrature against the ELBO, test set")
    study = marginal_likelihood_study(enc, dec, test_x, rng(1), sizes["elbo_samples"],
                                      sizes["iwae_ks"], sizes["iwae_images"])
    test_summary = results["integration_test"] = study["summary"]
    figures["log_px_vs_elbo"] = fig_log_px_vs_elbo(study["log_px"], study["elbo"], study["elbo_se"],
                                                   sizes["elbo_samples"])
    log(f"  test: log p(x) {test_summary['log_px']:.3f}, ELBO {test_summary['elbo']:.3f}, "
        f"gap {test_summary['gap']:.3f}; halving the spacing moves log p(x) by "
        f"{test_summary['halved_spacing_change']:.1e}; the 81 x 81 grid is off by "
        f"{test_summary['coarse_grid']['mean_abs_error']:.3f} on average")
    log("part 3: the same on the training set")
    train_study = marginal_likelihood_study(enc, dec, train_x[:sizes["train_integrated"]], rng(2),
                                            sizes["elbo_samples"], (), 0)
    results["integration_train"] = train_study["summary"]
    log_px = {"test": study["log_px"], "train": train_study["log_px"]}

    log("parts 4-5: the digit classes in the latent plane")
    classes = latent_class_study(enc, train_x, train_labels, test_x, test_labels)
    summary = classes["summary"]
    results["latent_classes"] = summary
    pairs = ", ".join(f"{p['pair'][0]}/{p['pair'][1]} {p['share']:.0%}" for p in summary["confused_pairs"][:3])
    log(f"  {summary['k']}-NN test accuracy {summary['test_accuracy']:.1%}; most confused: {pairs or 'none'}")

    log("part 4: samples from the prior and reconstructions")
    figures["prior_samples"] = fig_prior_samples(dec, rng(3))
    figures["reconstructions"] = fig_reconstructions(enc, dec, test_x[:10], rng(4))
    z_shown = reconstructions(enc, dec, test_x[:10], rng(4))[0]  # the z the figure decodes (same stream)
    results["reconstructions"] = {
        "labels": test_labels[:10].tolist(),
        "knn_classes": knn_classify(classes["train_z"], train_labels, z_shown, summary["k"]).tolist()}

    log("part 5: the latent space")
    figures["latent_embedding"] = fig_latent_embedding(enc, train_x, train_labels)
    figures["latent_confusion"] = fig_confusion(summary)
    figures["latent_lattice"] = fig_latent_lattice(dec, 20, "gaussian")
    figures["latent_lattice_linear"] = fig_latent_lattice(dec, 20, "linear",
                                                          embedding_bounds(enc, train_x))
    a, b, faithful = choose_faithful_pairs(test_labels, classes["test_predicted"], rng(5), num_pairs=3,
                                           agreement=classes["test_agreement"])
    figures["interpolations"] = fig_interpolations(enc, dec, test_x, test_labels, pairs=(a, b))
    along = path_classes(classes["train_z"], train_labels, interpolate_latents(enc, test_x[a], test_x[b], 10),
                         summary["k"])
    results["interpolations"] = {"a": a.tolist(), "b": b.tolist(), "labels_a": test_labels[a].tolist(),
                                 "labels_b": test_labels[b].tolist(), "faithful": faithful,
                                 "path_classes": along.tolist()}

    log("part 6: true posteriors, the top half of a digit, SVI")
    posteriors = posterior_study(enc, dec, train_x[:4], test_x[:4])
    results["posteriors"] = posteriors["summary"]
    figures["true_vs_approx_posterior"] = fig_true_vs_approx_posterior(posteriors)
    figures["top_half_posterior"] = fig_top_half_posterior(posteriors)
    closeness = posteriors["summary"]["true_vs_approx"]
    log(f"  KL(q || p) on the shown training images {np.round(closeness['train']['kl'], 2).tolist()}, "
        f"test images {np.round(closeness['test']['kl'], 2).tolist()}; modes given the top half "
        f"{posteriors['summary']['top_half']['num_modes']}")
    svi = svi_study(dec, test_x[:sizes["svi_images"]], rng(6), num_steps=sizes["svi_steps"])
    results["svi"] = svi["summary"]
    figures["svi_posterior"] = fig_svi_posterior(test_x[:sizes["svi_images"]], svi)
    figures["svi_prediction"] = fig_svi_prediction(dec, test_x[:sizes["svi_images"]], svi, rng(7))
    log(f"  SVI: KL(q || p(z|x_top)) {np.round(svi['summary']['kl'], 3).tolist()}, agreeing with "
        f"log p - ELBO: {svi['summary']['kl_agree']}")

    log("part 7: score-function against reparameterization gradients")
    estimators = gradient_estimator_study(enc, dec, test_x[:sizes["estimator_images"]], rng(8),
                                          sizes["estimates"], sizes["estimates_per_image"])
    results["gradient_estimators"] = estimators["summary"]
    figures["gradient_histograms"] = fig_gradient_histograms(estimators["focus_estimates"],
                                                             estimators["summary"]["focus"]["exact"])

    log("part 8: approximation and amortization gaps, and along training")
    gaps, gap_images = gap_studies(params, training["epochs"], kept, train_x, test_x, log_px, study["iwae"], sizes,
                                   rng, log)
    results["inference_gaps"] = gaps
    figures["inference_gaps"] = fig_gap_histograms(gap_images)
    figures["gaps_over_training"] = fig_gaps_over_training(gaps["over_training"], training["train_curve"])
    figures["worst_amortization"] = fig_worst_amortization(dec, test_x, gap_images["test"])
    return figures, results


def write_outputs(folder, figures, results_text, results):
    """Write the figures, results.json and report.md of one run into folder."""
    if set(figures) != set(CAPTIONS):
        raise ValueError(f"the study drew {sorted(figures)}, but the report captions {sorted(CAPTIONS)}")
    for name, fig in figures.items():
        atomic_write(folder / f"{name}.png", lambda f, fig=fig: fig.savefig(f, format="png", dpi=110))
    atomic_write(folder / "results.json", lambda f: f.write(results_text.encode()))
    write_report(folder / "report.md", results)


def main(argv=None):
    args = parse_args(argv)
    interrupt_on_sigterm()
    keep_freed_memory()
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    try:
        check_output_paths(args.params, args.out_dir)
        figures, results = run_study(args, log)
        try:
            results_text = json.dumps(results, indent=1, allow_nan=False)
        except ValueError:
            sys.exit(f"error: the study produced non-finite numbers, so nothing was written to {args.out_dir}; "
                     f"check the model in {args.params} or train it anew with --retrain")
        replace_folder(args.out_dir, lambda folder: write_outputs(folder, figures, results_text, results))
    except (DataError, CheckpointError, OutputError, TrainingDiverged) as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        print(f"interrupted; {args.out_dir} holds no partial run", file=sys.stderr)
        sys.exit(130)
    log(f"wrote {len(figures)} figures, results.json and report.md to {args.out_dir}/")


if __name__ == "__main__":
    main()
