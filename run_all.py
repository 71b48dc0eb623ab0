"""Reproduce the whole study: train (or reuse a matching checkpoint), compute every number,
draw every figure, and write results.json and report.md into the output folder.

    python run_all.py            # the 200-epoch model of the README
    python run_all.py --quick    # a smoke run of the whole pipeline in under a minute
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from vae_autograd.data import DataError, atomic_write, load_binarized_mnist
from vae_autograd.estimators import fig_gradient_histograms, gradient_estimator_study
from vae_autograd.integrate import fig_log_px_vs_elbo, log_marginal_likelihood, marginal_likelihood_study
from vae_autograd.posterior_figures import (
    fig_svi_posterior,
    fig_svi_prediction,
    fig_top_half_posterior,
    fig_true_vs_approx_posterior,
)
from vae_autograd.report import write_report
from vae_autograd.svi import svi_study
from vae_autograd.train import (
    CheckpointError,
    keep_freed_memory,
    load_params,
    positive,
    run_training,
    training_metadata,
)
from vae_autograd.visualize import (
    embedding_bounds,
    fig_interpolations,
    fig_latent_embedding,
    fig_latent_lattice,
    fig_prior_samples,
    fig_reconstructions,
)

# How much of each part runs: the full study, and --quick (checks the pipeline, not the science).
SIZES = {
    "full": dict(epochs=None, train_size=10000, test_size=10000, train_integrated=10000,
                 elbo_samples=20, iwae_ks=(1, 10, 100, 1000), iwae_images=500, svi_images=4,
                 svi_steps=1000, estimator_images=20, estimates=10000),
    "quick": dict(epochs=3, train_size=2000, test_size=500, train_integrated=500,
                  elbo_samples=5, iwae_ks=(1, 10, 100), iwae_images=50, svi_images=2,
                  svi_steps=300, estimator_images=5, estimates=2000),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=positive(int), default=200)
    parser.add_argument("--params", type=Path, default=None,
                        help="checkpoint to reuse or write (default data/vae.npz; --quick: in --out-dir)")
    parser.add_argument("--retrain", action="store_true", help="train even if a matching checkpoint exists")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where figures, results.json and report.md go (default figures/; "
                             "--quick: figures-quick/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files")
    parser.add_argument("--quick", action="store_true",
                        help="few epochs on subsets of the data: checks the pipeline, not the science")
    args = parser.parse_args(argv)
    if args.out_dir is None:
        args.out_dir = Path("figures-quick" if args.quick else "figures")
    if args.params is None:
        args.params = args.out_dir / "vae-quick.npz" if args.quick else Path("data") / "vae.npz"
    return args


def trained_model(args, sizes, data, log):
    """Reuse args.params if it holds the requested model, fully trained; else train it on data."""
    targs = argparse.Namespace(
        epochs=sizes["epochs"] or args.epochs, batch_size=100, lr=1e-3, seed=args.seed,
        hidden_dim=500, latent_dim=2, data_dir=args.data_dir, out=args.params, resume=False,
        train_size=sizes["train_size"], test_size=sizes["test_size"], eval_samples=10, quiet=False)
    results_path = args.params.with_suffix(".json")
    if args.params.is_file() and results_path.is_file() and not args.retrain:
        try:
            params, _, _, epoch = load_params(args.params, expect=training_metadata(targs))
            results = json.loads(results_path.read_text())
            if epoch == targs.epochs and results.get("epochs") == epoch \
                    and results.get("test_size") == targs.test_size:
                log(f"reusing {args.params} ({epoch} epochs; --retrain to train again)")
                return params, results
            log(f"{args.params} has {epoch} epochs, {targs.epochs} requested: training anew")
        except CheckpointError as err:
            log(f"not reusing it: {err}")
    log(f"training {targs.epochs} epochs -> {args.params}")
    return run_training(targs, log=lambda line: log("  " + line), data=data)


def run_study(args, log):
    sizes = SIZES["quick" if args.quick else "full"]
    data = load_binarized_mnist(sizes["train_size"], sizes["test_size"], args.data_dir)
    train_x, train_labels, test_x, test_labels = data
    params, training = trained_model(args, sizes, data, log)
    enc, dec = params

    def rng(step):  # an independent, reproducible stream for each step of the study
        return np.random.default_rng([args.seed, 1000 + step])

    figures, results = {}, {"seed": args.seed, "quick": args.quick,
                            "training": {k: v for k, v in training.items() if k != "train_curve"}}

    log("part 3: log p(x) by quadrature against the ELBO, test set")
    study = marginal_likelihood_study(enc, dec, test_x, rng(1), sizes["elbo_samples"],
                                      sizes["iwae_ks"], sizes["iwae_images"])
    per_image = study.pop("per_image")
    halved = log_marginal_likelihood(dec, test_x, refine=16)
    study["halved_spacing_change"] = float(halved.mean() - per_image["log_px"].mean())
    results["integration_test"] = study
    figures["log_px_vs_elbo"] = fig_log_px_vs_elbo(per_image["log_px"], per_image["elbo"])
    log(f"  test: log p(x) {study['log_px']:.3f}, ELBO {study['elbo']:.3f}, gap {study['gap']:.3f}; "
        f"halving the spacing moves log p(x) by {study['halved_spacing_change']:.1e}")
    log("part 3: the same on the training set")
    train_study = marginal_likelihood_study(enc, dec, train_x[:sizes["train_integrated"]], rng(2),
                                            sizes["elbo_samples"], (), 0)
    train_study.pop("per_image")
    results["integration_train"] = train_study

    log("part 4: samples from the prior and reconstructions")
    figures["prior_samples"] = fig_prior_samples(dec, rng(3))
    figures["reconstructions"] = fig_reconstructions(enc, dec, test_x[:10], rng(4))

    log("part 5: the latent space")
    figures["latent_embedding"] = fig_latent_embedding(enc, train_x, train_labels)
    figures["latent_lattice"] = fig_latent_lattice(dec, 20, "gaussian")
    figures["latent_lattice_linear"] = fig_latent_lattice(dec, 20, "linear",
                                                          embedding_bounds(enc, train_x))
    figures["interpolations"] = fig_interpolations(enc, dec, test_x, test_labels, rng(5))

    log("part 6: true posteriors, the top half of a digit, SVI")
    shown = test_x[:4]
    figures["true_vs_approx_posterior"] = fig_true_vs_approx_posterior(enc, dec, shown)
    figures["top_half_posterior"] = fig_top_half_posterior(dec, shown)
    svi = svi_study(dec, test_x[:sizes["svi_images"]], rng(6), num_steps=sizes["svi_steps"])
    results["svi"] = svi["summary"]
    figures["svi_posterior"] = fig_svi_posterior(test_x[:sizes["svi_images"]], svi)
    figures["svi_prediction"] = fig_svi_prediction(dec, test_x[:sizes["svi_images"]], svi, rng(7))

    log("part 7: score-function against reparameterization gradients")
    estimators = gradient_estimator_study(enc, dec, test_x[:sizes["estimator_images"]], rng(8),
                                          sizes["estimates"])
    results["gradient_estimators"] = estimators["summary"]
    figures["gradient_histograms"] = fig_gradient_histograms(estimators["focus_estimates"],
                                                             estimators["summary"]["exact"])
    return figures, results


def main(argv=None):
    args = parse_args(argv)
    keep_freed_memory()
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    try:
        figures, results = run_study(args, log)
    except (DataError, CheckpointError) as err:
        sys.exit(f"error: {err}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        atomic_write(args.out_dir / f"{name}.png", lambda f, fig=fig: fig.savefig(f, format="png", dpi=110))
    atomic_write(args.out_dir / "results.json",
                 lambda f: f.write(json.dumps(results, indent=1).encode()))
    write_report(args.out_dir / "report.md", results, list(figures))
    log(f"wrote {len(figures)} figures, results.json and report.md to {args.out_dir}/")


if __name__ == "__main__":
    main()
