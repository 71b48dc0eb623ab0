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
import signal
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .adam import adam_update, init_adam_state
from .data import (
    NUM_TEST,
    NUM_TRAIN,
    DataError,
    OutputError,
    atomic_write,
    check_writable_file,
    load_binarized_mnist,
    minibatches,
)
from .elbo import elbo_unchecked, log_importance_weights
from .fast_grad import flat_arrays, value_and_grad_per_array
from .images import check_images
from .model import data_dim, init_vae_params


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why and what to do."""


class ConfigError(ValueError):
    """A training option with a value that cannot work; the message names it and the rule."""


class TrainingDiverged(Exception):
    """The loss or the parameters stopped being finite; nothing non-finite was saved."""


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
    return np.random.default_rng([seed, epoch])


def train(params, train_x, epochs, batch_size=100, lr=1e-3, seed=0, adam_state=None,
          start_epoch=0, on_epoch_end=None):
    """Run Adam on -ELBO from epoch start_epoch up to epochs; params change in place.

    params: (enc_params, dec_params); train_x (N, 784). on_epoch_end(epoch, mean_loss,
    seconds, adam_state) is called after every epoch (for logging and checkpoints).
    Returns the list of per-epoch mean -ELBO values seen during training. Raises
    TrainingDiverged at the end of the first epoch whose loss or parameters are not
    finite, before on_epoch_end could save them.
    """
    check_images(train_x, data_dim(params[1]), "train_x")  # once: the loss below runs unchecked

    def loss(params, x, rng):
        return -elbo_unchecked(params[0], params[1], x, rng)

    loss_and_grad = value_and_grad_per_array(loss)
    adam_state = adam_state or init_adam_state(flat_arrays(params))
    curve = []
    # Overflow on the way to a divergence is reported below in one line, not as a screen
    # of NumPy warnings.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(start_epoch, epochs):
            start = time.perf_counter()
            rng = epoch_rng(seed, epoch)
            total = 0.0
            for x in minibatches(train_x, batch_size, rng):
                value, grads = loss_and_grad(params, x, rng)
                adam_update(flat_arrays(params), flat_arrays(grads), adam_state, lr)
                total += float(value) * len(x)
            curve.append(total / len(train_x))
            # A non-finite loss makes a non-finite sum, and a non-finite gradient non-finite
            # parameters: checking both once per epoch (before on_epoch_end saves) costs nothing.
            if not math.isfinite(curve[-1]) or not all_finite(params):
                raise TrainingDiverged(f"training diverged in epoch {epoch + 1} (mean -ELBO {curve[-1]}); "
                                       f"try a smaller --lr than {lr}")
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, curve[-1], time.perf_counter() - start, adam_state)
    return curve


def all_finite(params):
    return all(np.isfinite(a).all() for a in flat_arrays(params))


def evaluate_elbo(params, x, rng, num_samples=10, batch_size=1000):
    """Mean ELBO over the images x (N, 784) and its Monte Carlo standard error.

    Each image's ELBO is averaged over num_samples draws of z; the standard error is
    that of the Monte Carlo noise in the set mean: sqrt(sum_i var_i / S) / N.
    """
    log_w = log_importance_weights(*params, x, rng, num_samples, batch_size)
    per_image, var = log_w.mean(axis=0), log_w.var(axis=0, ddof=1)
    return float(per_image.mean()), float(np.sqrt(var.sum() / num_samples) / len(x))


# ---------------------------------------------------------------- checkpoints

def save_params(path, params, metadata, adam_state=None, epoch=0, curve=()):
    """Write both networks, the Adam state, the epoch, the per-epoch mean -ELBO so far (curve)
    and metadata to one .npz, atomically. The curve travels with the parameters, so a
    resumed run reports the curve of exactly the epochs that made them."""
    arrays = {f"param_{i}": a for i, a in enumerate(flat_arrays(params))}
    if adam_state is not None:
        arrays.update({f"adam_m_{i}": a for i, a in enumerate(adam_state["m"])})
        arrays.update({f"adam_v_{i}": a for i, a in enumerate(adam_state["v"])})
        arrays["adam_step"] = np.array(adam_state["step"])
    arrays["epoch"] = np.array(epoch)
    arrays["train_curve"] = np.array(curve, dtype=np.float64)
    arrays["metadata"] = np.array(json.dumps(metadata))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def metadata_mismatch(metadata, expect):
    """How metadata differs from the expected entries ("has k=a, but b was requested"), or None."""
    for key, value in expect.items():
        if metadata.get(key) != value:
            return f"has {key}={metadata.get(key)!r}, but {value!r} was requested"
    return None


def load_params(path, expect=None):
    """Read a checkpoint written by save_params; returns (params, metadata, adam_state, epoch, curve).

    expect: dict of metadata the checkpoint must match (e.g. the model dimensions).
    Raises CheckpointError with the fix if the file is missing, unreadable, mismatched or
    holds non-finite parameters.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one first with "
                              f"`python -m vae_autograd.train --out {path}`")
    try:
        with np.load(path) as f:
            files = dict(f.items())
        metadata = json.loads(str(files["metadata"]))
        dims = (metadata["data_dim"], metadata["hidden_dim"], metadata["latent_dim"])
    except Exception as err:  # any unreadable file is the same problem to the user
        raise CheckpointError(f"{path} is not a vae_autograd checkpoint ({type(err).__name__}); "
                              "delete it or pass another path") from None
    mismatch = metadata_mismatch(metadata, expect or {})
    if mismatch:
        raise CheckpointError(f"checkpoint {path} {mismatch}; retrain, or pass a matching checkpoint")
    template = init_vae_params(np.random.default_rng(0), *dims)
    shapes = [a.shape for a in flat_arrays(template)]
    got = [files.get(f"param_{i}") for i in range(len(shapes))]
    if any(a is None or a.shape != s for a, s in zip(got, shapes)) or f"param_{len(shapes)}" in files:
        raise CheckpointError(f"checkpoint {path} does not hold the arrays of a {dims} VAE; "
                              "it is damaged or from another model: retrain")
    it = iter(got)
    params = tuple([(next(it), next(it)) for _ in net] for net in template)
    if not all_finite(params):
        raise CheckpointError(f"checkpoint {path} holds non-finite parameters (its training diverged); "
                              "retrain it with a smaller --lr")
    adam_state = None
    if "adam_step" in files:
        adam_state = {"m": [files[f"adam_m_{i}"] for i in range(len(shapes))],
                      "v": [files[f"adam_v_{i}"] for i in range(len(shapes))],
                      "step": int(files["adam_step"])}
    curve = [float(v) for v in files.get("train_curve", ())]
    return params, metadata, adam_state, int(files["epoch"]), curve


# ---------------------------------------------------------------- options

def option(default, help, valid=None, rule="", kind=None, parse=None):
    """A TrainConfig field: its default, its --help text and the rule its values obey.

    valid(value) -> bool is the rule, stated to the user as rule; kind is the type of its
    values (default: the type of the default); parse turns command-line text into one
    (default: kind).
    """
    kind = kind or type(default)
    return field(default=default, metadata={"help": help, "valid": valid, "rule": rule,
                                            "kind": kind, "parse": parse or kind})


def parse_epochs(text):
    """'1,10,50' -> (1, 10, 50); '' -> ()."""
    return tuple(int(part) for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run, its default and its rule, in one place.

    The command line of vae_autograd.train is derived from these fields and run_all.py
    builds one; constructing a TrainConfig with a value that breaks its rule raises
    ConfigError, so both entry points validate the same way.
    """
    epochs: int = option(200, "total epochs (with --resume, the total to reach)",
                         lambda n: n > 0, "must be a positive int")
    batch_size: int = option(100, "minibatch size", lambda n: n > 0, "must be a positive int")
    lr: float = option(1e-3, "Adam step size", lambda x: x > 0 and math.isfinite(x), "must be a positive float")
    seed: int = option(0, "seeds the initialization, minibatch order and Monte Carlo noise",
                       lambda n: n >= 0, "must be a non-negative int")
    hidden_dim: int = option(500, "hidden units of encoder and decoder", lambda n: n > 0, "must be a positive int")
    latent_dim: int = option(2, "latent dimensions", lambda n: n > 0, "must be a positive int")
    train_size: int = option(10000, "the first images of the MNIST training split",
                             lambda n: 1 <= n <= NUM_TRAIN, f"must be an int in 1..{NUM_TRAIN}")
    test_size: int = option(10000, "the first images of the MNIST test split",
                            lambda n: 1 <= n <= NUM_TEST, f"must be an int in 1..{NUM_TEST}")
    eval_samples: int = option(10, "samples of z per image for the final train/test ELBO",
                               lambda n: n >= 2, "must be an int >= 2 (a standard error needs two samples)")
    # Path("") is the working directory: an empty value would download MNIST there.
    data_dir: str | None = option(None, "folder with the MNIST .gz files (default $MNIST_DIR, else data/mnist)",
                                  lambda d: d is None or d != "", "must not be empty", kind=str)
    out: Path = option(Path("data") / "vae.npz", "checkpoint path; results go beside it as .json",
                       lambda p: p.suffix != ".json",
                       "must not end in .json: the results go beside the checkpoint with that suffix",
                       kind=Path)
    keep_epochs: tuple = option((), "also keep the checkpoints of these epochs (comma-separated), beside "
                                "--out as NAME-epochN.npz", lambda t: all(type(e) is int and e > 0 for e in t),
                                "must be positive epochs separated by commas", parse=parse_epochs)
    resume: bool = option(False, "continue training from the checkpoint at --out up to --epochs")
    force: bool = option(False, "without --resume, overwrite an existing checkpoint at --out")
    quiet: bool = option(False, "no per-epoch lines")

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        for f in fields(self):
            problem = rule_broken(f, getattr(self, f.name))
            if problem:
                raise ConfigError(f"{f.name} {problem}, got {getattr(self, f.name)!r}")

    def kept_path(self, epoch):
        """Where --keep-epochs keeps the checkpoint of that epoch: data/vae-epoch10.npz."""
        return self.out.with_name(f"{self.out.stem}-epoch{epoch}{self.out.suffix}")

    @property
    def results_path(self):
        """The .json beside the checkpoint: final ELBOs, metadata and the training curve."""
        return self.out.with_suffix(".json")

    def metadata(self):
        """What a checkpoint records of the run that made it, and must match to be reused."""
        return {"data_dim": 784, "hidden_dim": self.hidden_dim, "latent_dim": self.latent_dim,
                "seed": self.seed, "lr": self.lr, "batch_size": self.batch_size,
                "train_size": self.train_size}


def rule_broken(config_field, value):
    """The rule value breaks (e.g. "must be a positive int"), or None if it obeys it."""
    kind, valid, rule = (config_field.metadata[k] for k in ("kind", "valid", "rule"))
    if valid is None:
        return None
    accepted = (int, float) if kind is float else kind  # Python numbers only: they go into JSON metadata
    if value is not None and (isinstance(value, bool) or not isinstance(value, accepted)):
        return rule
    return None if valid(value) else rule


def option_type(name):
    """The argparse type of TrainConfig's field name: parses the text and applies its rule."""
    config_field = next(f for f in fields(TrainConfig) if f.name == name)

    def parse(text):
        try:
            value = config_field.metadata["parse"](text)
        except ValueError:
            value = None
        if value is None or rule_broken(config_field, value):
            raise argparse.ArgumentTypeError(f"{config_field.metadata['rule']}, got {text!r}")
        return value
    return parse


def add_options(parser, names=None):
    """Add TrainConfig's fields (all, or those in names) to parser as --dashed-options."""
    for f in fields(TrainConfig):
        if names is not None and f.name not in names:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.metadata["kind"] is bool:
            parser.add_argument(flag, action="store_true", help=f.metadata["help"])
        else:
            shown = "" if f.default is None else " (default %(default)s)"
            parser.add_argument(flag, type=option_type(f.name), default=f.default,
                                help=f.metadata["help"] + shown)


def config_from_args(args):
    """The TrainConfig of the parsed args' TrainConfig fields."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)})


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m vae_autograd.train",
        description="Train the Kingma & Welling (2013) VAE on binarized MNIST.")
    add_options(parser)
    return parser


# ---------------------------------------------------------------- the training run

def check_training_paths(config):
    """Raise OutputError or CheckpointError if the run's files cannot or must not be written.

    Called before any data is loaded, so a wrong path costs nothing.
    """
    check_writable_file(config.out, "--out")
    check_writable_file(config.results_path, "--out (its results file)")
    for path in [config.out] + [config.kept_path(e) for e in config.keep_epochs]:
        if path.exists() and not config.resume and not config.force:
            raise CheckpointError(f"{path} already holds a checkpoint; continue it with --resume, "
                                  "or pass --force to overwrite it")


def run_training(config, log=print, data=None):
    """Train (or resume) as config says; save the checkpoint and its .json results.

    data: load_binarized_mnist's four arrays for config's sizes, if the caller has them.
    Returns (params, results). Raises OutputError, CheckpointError, DataError or
    TrainingDiverged with a one-line message; the checkpoint on disk is then untouched
    (or holds the last finite epoch).
    """
    metadata = config.metadata()
    check_training_paths(config)
    curve, start_epoch, adam_state = [], 0, None
    if config.resume:
        params, _, adam_state, start_epoch, curve = load_params(config.out, expect=metadata)
        curve = curve[:start_epoch]
    else:
        params = init_vae_params(np.random.default_rng(config.seed), 784, config.hidden_dim,
                                 config.latent_dim)
    data = data or load_binarized_mnist(config.train_size, config.test_size, config.data_dir)
    train_x, _, test_x, _ = data
    if config.resume:
        log(f"resuming from {config.out} at epoch {start_epoch}")
        if start_epoch >= config.epochs:
            log(f"checkpoint already has {start_epoch} epochs (>= --epochs {config.epochs}); evaluating only")
    started = time.perf_counter()
    saved = []  # epochs saved by this run, for the message should training diverge

    def on_epoch_end(epoch, loss, seconds, state):
        curve.append(loss)
        save_params(config.out, params, metadata, state, epoch, curve)
        if epoch in config.keep_epochs:
            save_params(config.kept_path(epoch), params, metadata, state, epoch, curve)
        saved.append(epoch)
        if not config.quiet:
            done = epoch - start_epoch
            left = (time.perf_counter() - started) / done * (config.epochs - epoch)
            log(f"epoch {epoch:4d}/{config.epochs}  -ELBO {loss:8.3f}  {seconds:5.2f}s  "
                f"{left / 60:4.1f} min left")

    try:
        train(params, train_x, config.epochs, config.batch_size, config.lr, config.seed,
              adam_state, start_epoch, on_epoch_end)
    except TrainingDiverged as err:
        kept = f"{config.out} keeps epoch {saved[-1]}" if saved else f"{config.out} is unchanged"
        raise TrainingDiverged(f"{err}; {kept}") from None
    rng = np.random.default_rng([config.seed, 2**31])
    train_elbo, train_se = evaluate_elbo(params, train_x, rng, config.eval_samples)
    test_elbo, test_se = evaluate_elbo(params, test_x, rng, config.eval_samples)
    results = {"epochs": max(config.epochs, start_epoch), **metadata,
               "train_elbo": train_elbo, "train_elbo_se": train_se,
               "test_elbo": test_elbo, "test_elbo_se": test_se,
               "eval_samples": config.eval_samples, "test_size": config.test_size,
               "train_seconds": time.perf_counter() - started, "train_curve": curve}
    if not all(math.isfinite(v) for v in (train_elbo, train_se, test_elbo, test_se)):
        raise TrainingDiverged(f"the trained model's ELBO is not finite (train {train_elbo}, test {test_elbo}); "
                               f"retrain with a smaller --lr than {config.lr}")
    atomic_write(config.results_path, lambda f: f.write(json.dumps(results, indent=1, allow_nan=False).encode()))
    log(f"train ELBO {train_elbo:9.3f} +- {train_se:.3f}   (mean over {len(train_x)} images)")
    log(f"test  ELBO {test_elbo:9.3f} +- {test_se:.3f}   (mean over {len(test_x)} images)")
    log(f"checkpoint {config.out}, results {config.results_path}")
    return params, results


# ---------------------------------------------------------------- command line

def interrupt_on_sigterm():
    """Make SIGTERM end the process like Ctrl-C, through KeyboardInterrupt, so that
    temporary files are removed and the one-line message is printed."""
    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def main(argv=None):
    parser = build_parser()
    config = config_from_args(parser.parse_args(argv))
    interrupt_on_sigterm()
    keep_freed_memory()
    try:
        run_training(config)
    except (DataError, CheckpointError, OutputError, TrainingDiverged) as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        saved = (f"the last finished epoch is saved in {config.out} (continue with --resume)"
                 if config.out.exists() else "no epoch finished, nothing saved")
        print(f"interrupted; {saved}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
