"""Train the VAE with Adam on -ELBO, gradients by autograd (study parts 2.5-2.6).

    python -m vae_autograd.train --epochs 200

Epoch e draws its minibatch order and its Monte Carlo noise from a generator seeded
with (seed, e), so resuming from a checkpoint saved after epoch e gives exactly the
parameters of an uninterrupted run.
"""
import argparse
import ctypes
import json
import math
import sys
import time
from pathlib import Path

import numpy

from .adam import adam_update, init_adam_state
from .data import DataError, atomic_write, load_binarized_mnist, minibatches
from .elbo import elbo, log_importance_weights
from .fast_grad import flat_arrays, value_and_grad_per_array
from .model import init_vae_params

DEFAULT_CHECKPOINT = Path("data") / "vae.npz"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why and what to do."""


def keep_freed_memory():
    """Ask glibc to keep freed memory instead of handing it back to the OS.

    Every training step allocates and frees the same few-hundred-KB arrays (activations,
    autograd's gradient buffers). By default glibc serves such blocks with fresh mmaps and
    trims freed memory, so each step page-faults them in again: measured here, 4x slower.
    Called by the command-line entry points only; a no-op where glibc is absent.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def epoch_rng(seed, epoch):
    return numpy.random.default_rng([seed, epoch])


def train(params, train_x, epochs, batch_size=100, lr=1e-3, seed=0, adam_state=None,
          start_epoch=0, on_epoch_end=None):
    """Run Adam on -ELBO from epoch start_epoch up to epochs; params change in place.

    params: (enc_params, dec_params); train_x (N, 784). on_epoch_end(epoch, mean_loss,
    seconds, adam_state) is called after every epoch (for logging and checkpoints).
    Returns the list of per-epoch mean -ELBO values seen during training.
    """
    def loss(params, x, rng):
        return -elbo(params[0], params[1], x, rng)

    loss_and_grad = value_and_grad_per_array(loss)
    adam_state = adam_state or init_adam_state(flat_arrays(params))
    curve = []
    for epoch in range(start_epoch, epochs):
        start = time.perf_counter()
        rng = epoch_rng(seed, epoch)
        total = 0.0
        for x in minibatches(train_x, batch_size, rng):
            value, grads = loss_and_grad(params, x, rng)
            adam_update(flat_arrays(params), flat_arrays(grads), adam_state, lr)
            total += float(value) * len(x)
        curve.append(total / len(train_x))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, curve[-1], time.perf_counter() - start, adam_state)
    return curve


def evaluate_elbo(params, x, rng, num_samples=10, batch_size=1000):
    """Mean ELBO over the images x (N, 784) and its Monte Carlo standard error.

    Each image's ELBO is averaged over num_samples draws of z; the standard error is
    that of the Monte Carlo noise in the set mean: sqrt(sum_i var_i / S) / N.
    """
    log_w = log_importance_weights(*params, x, rng, num_samples, batch_size)
    per_image, var = log_w.mean(axis=0), log_w.var(axis=0, ddof=1)
    return float(per_image.mean()), float(numpy.sqrt(var.sum() / num_samples) / len(x))


# ---------------------------------------------------------------- checkpoints

def save_params(path, params, metadata, adam_state=None, epoch=0):
    """Write both networks, the Adam state, the epoch and metadata to one .npz, atomically."""
    arrays = {f"param_{i}": a for i, a in enumerate(flat_arrays(params))}
    if adam_state is not None:
        arrays.update({f"adam_m_{i}": a for i, a in enumerate(adam_state["m"])})
        arrays.update({f"adam_v_{i}": a for i, a in enumerate(adam_state["v"])})
        arrays["adam_step"] = numpy.array(adam_state["step"])
    arrays["epoch"] = numpy.array(epoch)
    arrays["metadata"] = numpy.array(json.dumps(metadata))
    atomic_write(path, lambda f: numpy.savez(f, **arrays))


def load_params(path, expect=None):
    """Read a checkpoint written by save_params; returns (params, metadata, adam_state, epoch).

    expect: dict of metadata the checkpoint must match (e.g. the model dimensions).
    Raises CheckpointError with the fix if the file is missing, unreadable or mismatched.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one first with "
                              f"`python -m vae_autograd.train --out {path}`")
    try:
        with numpy.load(path) as f:
            files = dict(f.items())
        metadata = json.loads(str(files["metadata"]))
        dims = (metadata["data_dim"], metadata["hidden_dim"], metadata["latent_dim"])
    except Exception as err:  # any unreadable file is the same problem to the user
        raise CheckpointError(f"{path} is not a vae_autograd checkpoint ({type(err).__name__}); "
                              "delete it or pass another path") from None
    for key, value in (expect or {}).items():
        if metadata.get(key) != value:
            raise CheckpointError(f"checkpoint {path} has {key}={metadata.get(key)!r}, but "
                                  f"{value!r} was requested; retrain, or pass a matching checkpoint")
    template = init_vae_params(numpy.random.default_rng(0), *dims)
    shapes = [a.shape for a in flat_arrays(template)]
    got = [files.get(f"param_{i}") for i in range(len(shapes))]
    if any(a is None or a.shape != s for a, s in zip(got, shapes)) or f"param_{len(shapes)}" in files:
        raise CheckpointError(f"checkpoint {path} does not hold the arrays of a {dims} VAE; "
                              "it is damaged or from another model: retrain")
    it = iter(got)
    params = tuple([(next(it), next(it)) for _ in net] for net in template)
    adam_state = None
    if "adam_step" in files:
        adam_state = {"m": [files[f"adam_m_{i}"] for i in range(len(shapes))],
                      "v": [files[f"adam_v_{i}"] for i in range(len(shapes))],
                      "step": int(files["adam_step"])}
    return params, metadata, adam_state, int(files["epoch"])


# ---------------------------------------------------------------- command line

def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m vae_autograd.train",
        description="Train the Kingma & Welling (2013) VAE on binarized MNIST.")
    parser.add_argument("--epochs", type=positive(int), default=200, help="total epochs (default 200)")
    parser.add_argument("--batch-size", type=positive(int), default=100)
    parser.add_argument("--lr", type=positive(float), default=1e-3, help="Adam step size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden-dim", type=positive(int), default=500)
    parser.add_argument("--latent-dim", type=positive(int), default=2)
    parser.add_argument("--data-dir", default=None,
                        help="folder with the MNIST .gz files (default $MNIST_DIR, else data/mnist)")
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT,
                        help=f"checkpoint path (default {DEFAULT_CHECKPOINT}); results go beside it as .json")
    parser.add_argument("--resume", action="store_true",
                        help="continue training from the checkpoint at --out up to --epochs")
    parser.add_argument("--train-size", type=positive(int), default=10000)
    parser.add_argument("--test-size", type=positive(int), default=10000)
    parser.add_argument("--eval-samples", type=positive(int), default=10,
                        help="samples of z per image for the final train/test ELBO")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return parser


def training_metadata(args):
    """What a checkpoint records of the run that made it, and must match to be reused."""
    return {"data_dim": 784, "hidden_dim": args.hidden_dim, "latent_dim": args.latent_dim,
            "seed": args.seed, "lr": args.lr, "batch_size": args.batch_size,
            "train_size": args.train_size}


def run_training(args, log=print, data=None):
    """Train (or resume) as the parsed args say; save the checkpoint and its .json results.

    data: load_binarized_mnist's four arrays for args' sizes, if the caller has them.
    """
    metadata = training_metadata(args)
    data = data or load_binarized_mnist(args.train_size, args.test_size, args.data_dir)
    train_x, _, test_x, _ = data
    results_path = args.out.with_suffix(".json")
    curve, start_epoch, adam_state = [], 0, None
    if args.resume:
        params, _, adam_state, start_epoch = load_params(args.out, expect=metadata)
        if results_path.is_file():
            curve = json.loads(results_path.read_text()).get("train_curve", [])[:start_epoch]
        log(f"resuming from {args.out} at epoch {start_epoch}")
        if start_epoch >= args.epochs:
            log(f"checkpoint already has {start_epoch} epochs (>= --epochs {args.epochs}); evaluating only")
    else:
        params = init_vae_params(numpy.random.default_rng(args.seed), 784, args.hidden_dim,
                                 args.latent_dim)
    started = time.perf_counter()

    def on_epoch_end(epoch, loss, seconds, state):
        save_params(args.out, params, metadata, state, epoch)
        if not args.quiet:
            done = epoch - start_epoch
            left = (time.perf_counter() - started) / done * (args.epochs - epoch)
            log(f"epoch {epoch:4d}/{args.epochs}  -ELBO {loss:8.3f}  {seconds:5.2f}s  "
                f"{left / 60:4.1f} min left")

    curve += train(params, train_x, args.epochs, args.batch_size, args.lr, args.seed,
                   adam_state, start_epoch, on_epoch_end)
    rng = numpy.random.default_rng([args.seed, 2**31])
    train_elbo, train_se = evaluate_elbo(params, train_x, rng, args.eval_samples)
    test_elbo, test_se = evaluate_elbo(params, test_x, rng, args.eval_samples)
    results = {"epochs": max(args.epochs, start_epoch), **metadata,
               "train_elbo": train_elbo, "train_elbo_se": train_se,
               "test_elbo": test_elbo, "test_elbo_se": test_se,
               "eval_samples": args.eval_samples, "test_size": args.test_size,
               "train_seconds": time.perf_counter() - started, "train_curve": curve}
    atomic_write(results_path, lambda f: f.write(json.dumps(results, indent=1).encode()))
    log(f"train ELBO {train_elbo:9.3f} +- {train_se:.3f}   (mean over {len(train_x)} images)")
    log(f"test  ELBO {test_elbo:9.3f} +- {test_se:.3f}   (mean over {len(test_x)} images)")
    log(f"checkpoint {args.out}, results {results_path}")
    return params, results


def main(argv=None):
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        run_training(args)
    except (DataError, CheckpointError) as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted; the last finished epoch is saved in {args.out} (continue with --resume)")


if __name__ == "__main__":
    main()
