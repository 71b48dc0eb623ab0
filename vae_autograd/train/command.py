"""Train the VAE with Adam on -ELBO, gradients by autograd (study parts 2.5-2.6).

    python -m vae_autograd.train --epochs 200

Epoch e draws its minibatch order and its Monte Carlo noise from a generator seeded
with (seed, e), and under dynamic binarization its pixels from one seeded with (seed, e, 1),
so resuming from a checkpoint saved after epoch e gives exactly the parameters of an
uninterrupted run. With a validation set the checkpoint holds the best epoch's parameters
beside that training state, and the validation curve, so that early stopping resumes exactly too.
"""
import json
import math
import os
import sys
import time

import numpy as np

from ..core.model import init_vae_params
from ..io.files import OutputError, atomic_write, check_not_an_input, check_writable_file, sole_writer
from ..io.mnist import DataError, mnist_paths
from ..io.process import interrupt_on_sigterm, keep_freed_memory
from .checkpoints import CheckpointError, load_checkpoint, load_params, params_digest, save_params, vae_shapes
from .data import load_run_data, run_images
from .loop import TrainingDiverged, evaluate_elbo, train
from .options import ConfigError, OneLineParser, add_options, config_from_args
from .validation import VALIDATION_SAMPLES, patience_exhausted, validated


def build_parser():
    parser = OneLineParser(
        prog="python -m vae_autograd.train",
        description="Train the Kingma & Welling (2013) VAE on binarized MNIST.")
    add_options(parser)
    return parser


def check_training_paths(config):
    """Raise OutputError if the run's files cannot be written or would overwrite its inputs.

    Called before any data is loaded, so a wrong path costs nothing.
    """
    check_writable_file(config.results_path, "--out (its results file)")
    for path in config.checkpoint_paths():
        check_writable_file(path, "--out" if path == config.out else "--out (a kept epoch's checkpoint)")
    for path in config.written_paths():
        check_not_an_input(path, mnist_paths(config.data_dir), "--out")


def check_not_replaced(config):
    """Raise CheckpointError if the run would replace a checkpoint or results file it was not
    asked to replace. Called holding the checkpoints' lock, so that no other writer slips in between."""
    for path in config.checkpoint_paths():
        if path.exists() and not config.resume and not config.force:
            raise CheckpointError(f"{path} already holds a checkpoint; continue it with --resume, "
                                  "or pass --force (run_all.py: --retrain) to overwrite it")
    if config.results_path.exists() and not config.out.exists() and not config.force:
        raise CheckpointError(f"{config.results_path} exists, but no checkpoint {config.out} that it could describe; "
                              "move it away, or pass --force (run_all.py: --retrain) to replace it")


def check_kept_on_resume(config, start_epoch, log):
    """Raise CheckpointError if a kept checkpoint that a run resumed at start_epoch would keep or
    write holds another model, or another epoch than its name says; say which kept epochs lie
    in the past with no checkpoint (they cannot be kept any more)."""
    for epoch in config.keep_epochs:
        path = config.kept_path(epoch)
        if path.exists():
            kept_epoch = load_params(path, expect=config.metadata())[3]
            if epoch <= start_epoch and kept_epoch != epoch:
                raise CheckpointError(f"{path} holds epoch {kept_epoch}, not {epoch}; move it away, or pass --force "
                                      "to train anew")
        elif epoch < start_epoch:
            log(f"{path} is not written: epoch {epoch} is past ({config.out} is at epoch {start_epoch}); "
                "to keep it, train anew with --force")


def check_fits_in_memory(config):
    """Raise ConfigError if the model cannot fit in the memory this machine has available: a lower
    bound of what a run holds at once (parameters, gradient and Adam's two moments in float32,
    the float64 draw that initializes them, one minibatch's activations in training and one
    block of 1000 images' in evaluation) against MemAvailable (else the physical memory).
    Called before anything is allocated."""
    hidden, latent = config.hidden, config.latent_dim
    weights = sum(math.prod(shape) for shape in vae_shapes(784, hidden, latent))
    batch = min(config.batch_size, config.train_size)
    block = min(1000, max(config.train_size, config.test_size))
    # Training's tape holds every layer's activations, the encoder's and the decoder's: 2 sum(hidden).
    needed = 4 * 4 * weights + 8 * weights + 4 * max(batch, block) * (2 * sum(hidden) + 4 * latent + 784)
    memory = available_memory()
    if needed > memory:
        raise ConfigError(f"a model of --hidden {','.join(map(str, hidden))} and --latent-dim {latent} needs at least "
                          f"{needed / 2**30:,.1f} GiB, more than the {memory / 2**30:,.1f} GiB this machine has "
                          "available; choose smaller sizes")


def available_memory():
    """Bytes of memory available to a new allocation: MemAvailable of /proc/meminfo where there is
    one, else the physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def run_training(config, log=print, data=None, hold_lock=True):
    """Train (or resume) as config says; save the checkpoint and its .json results.

    data: load_run_data(config)'s four arrays (load_binarized_mnist's, or load_grey_mnist's under
    dynamic binarization) for config's sizes, if the caller has them.
    hold_lock: take sole_writer of config's checkpoints for the run; False if the caller
    holds it already (run_all.py, for the whole study).
    Returns (params, results). Raises OutputError, CheckpointError, ConfigError, DataError or
    TrainingDiverged with a one-line message; the checkpoint on disk is then untouched
    (or holds the last finished epoch).
    """
    check_fits_in_memory(config)
    check_training_paths(config)
    with sole_writer(config.written_paths() if hold_lock else [], "--out"):
        check_not_replaced(config)
        return train_and_evaluate(config, log, data)


def train_and_evaluate(config, log, data):
    """run_training's work, once its checks are passed and its lock is held."""
    metadata, patience = config.metadata(), config.stop_patience
    curve, start_epoch, adam_state, validation = [], 0, None, None
    if config.resume:
        params, _, adam_state, start_epoch, curve, validation = load_checkpoint(config.out, expect=metadata)
        curve = curve[:start_epoch]
        check_kept_on_resume(config, start_epoch, log)
        if start_epoch in config.keep_epochs and not config.kept_path(start_epoch).exists():
            # A run stopped between saving --out and its kept copy: the copy is --out as loaded.
            save_params(config.kept_path(start_epoch), params, metadata, adam_state, start_epoch, curve, validation)
    else:
        params = init_vae_params(np.random.default_rng(config.seed), 784, config.hidden, config.latent_dim,
                                 activation=config.activation)
    images = run_images(config, data or load_run_data(config))
    # Stopped already (by patience): an uninterrupted run with these options would have stopped there too.
    stopped = validation is not None and patience_exhausted(validation.curve, patience)
    if config.resume:
        log(f"resuming from {config.out} at epoch {start_epoch}")
        if stopped:
            log(f"training stopped at epoch {start_epoch}: no better validation ELBO since epoch "
                f"{validation.best_epoch} (--patience {patience}); evaluating only")
        elif start_epoch >= config.epochs:
            log(f"checkpoint already has {start_epoch} epochs (>= --epochs {config.epochs}); evaluating only")
    started = time.perf_counter()
    saved = []  # epochs saved by this run, for the message should training diverge

    def on_epoch_end(epoch, loss, seconds, state):
        nonlocal validation
        curve.append(loss)
        if images.validation is not None:
            validation = validated(validation, params, images.validation, config.seed)
        # --out first: a run stopped between the two saves leaves --out at this epoch and no kept
        # copy, which --resume writes from --out (above); never a kept copy without its --out.
        save_params(config.out, params, metadata, state, epoch, curve, validation)
        if epoch in config.keep_epochs:
            save_params(config.kept_path(epoch), params, metadata, state, epoch, curve, validation)
        saved.append(epoch)
        if not config.quiet:
            done = epoch - start_epoch
            left = (time.perf_counter() - started) / done * (config.epochs - epoch)
            watched = f"  validation ELBO {validation.curve[-1]:8.3f} (best: epoch {validation.best_epoch})" \
                if validation else ""
            log(f"epoch {epoch:4d}/{config.epochs}  -ELBO {loss:8.3f}{watched}  {seconds:5.2f}s  "
                f"{left / 60:4.1f} min left")
        if validation is not None and patience_exhausted(validation.curve, patience):
            log(f"stopping at epoch {epoch}: no better validation ELBO for {patience} epochs (--patience)")
            return True
        return False

    try:
        if not stopped:
            train(params, images.train, config.epochs, config.batch_size, config.lr, config.seed,
                  adam_state, start_epoch, on_epoch_end, config.binarization)
    except TrainingDiverged as err:
        kept = f"{config.out} keeps epoch {saved[-1]}" if saved else f"{config.out} is unchanged"
        raise TrainingDiverged(f"{err}; {kept}") from None
    kept = validation.best_params if validation else params  # the model the run keeps
    results = evaluate_run(config, kept, images)
    last_epoch = saved[-1] if saved else start_epoch
    results = {"epochs": last_epoch, **metadata, **results, "train_seconds": time.perf_counter() - started,
               "train_curve": curve}
    if validation is not None:
        results.update(patience=patience, validation_samples=VALIDATION_SAMPLES, validation_curve=validation.curve,
                       best_epoch=validation.best_epoch, best_validation_elbo=max(validation.curve),
                       stopped_epoch=last_epoch, stopped_early=last_epoch < config.epochs)
    atomic_write(config.results_path, lambda f: f.write(json.dumps(results, indent=1, allow_nan=False).encode()))
    log(f"train ELBO {results['train_elbo']:9.3f} +- {results['train_elbo_se']:.3f}   "
        f"(mean over {len(images.train_eval)} images)")
    log(f"test  ELBO {results['test_elbo']:9.3f} +- {results['test_elbo_se']:.3f}   "
        f"(mean over {len(images.test)} images)")
    if images.test_threshold is not None:
        log(f"test  ELBO {results['test_threshold_elbo']:9.3f} +- {results['test_threshold_elbo_se']:.3f}   "
            "(the test images thresholded at 0.5)")
    if validation is not None:
        log(f"model kept: epoch {validation.best_epoch}, best validation ELBO {max(validation.curve):.3f} "
            f"(training stopped at epoch {last_epoch})")
    log(f"checkpoint {config.out}, results {config.results_path}")
    return kept, results


def evaluate_run(config, params, sets):
    """The final ELBOs of params (the model a run keeps) on sets (a RunImages) and the digest of params:
    on the training images trained on, the test images, and under dynamic binarization the test images
    thresholded at 0.5 too, each with config.eval_samples draws of z per image. Raises TrainingDiverged
    if one is not finite."""
    rng = np.random.default_rng([config.seed, 2**31])
    evaluated = {"train": sets.train_eval, "test": sets.test, "test_threshold": sets.test_threshold}
    results = {}
    for name, x in evaluated.items():
        if x is not None:
            results[f"{name}_elbo"], results[f"{name}_elbo_se"] = evaluate_elbo(params, x, rng, config.eval_samples)
    if not all(math.isfinite(v) for v in results.values()):
        raise TrainingDiverged(f"the trained model's ELBO is not finite (train {results['train_elbo']}, test "
                               f"{results['test_elbo']}); retrain with a smaller --lr than {config.lr}")
    return {**results, "eval_samples": config.eval_samples, "test_size": config.test_size,
            "params_digest": params_digest(params)}


def main(argv=None):
    parser = build_parser()
    try:
        config = config_from_args(parser.parse_args(argv))
    except ConfigError as err:  # a rule between options, e.g. --keep-epochs beyond --epochs
        parser.error(str(err))
    before = modified(config.out)
    try:
        interrupt_on_sigterm()  # from here an interrupt is a KeyboardInterrupt, handled below
        keep_freed_memory()
        run_training(config)
    except (DataError, CheckpointError, ConfigError, OutputError, TrainingDiverged) as err:
        sys.exit(f"error: {err}")
    except OSError as err:  # a write that failed half way: disk full, quota, a folder gone read-only
        sys.exit(f"error: could not write beside {config.out} ({err.strerror or err}); {saved(config, before)}; "
                 "free some space or choose another --out")
    except MemoryError:  # beyond what check_fits_in_memory could foresee (other processes, limits)
        sys.exit(f"error: out of memory; {saved(config, before)}; choose smaller sizes or free some memory")
    except KeyboardInterrupt:
        print(f"interrupted; {saved(config, before)}", file=sys.stderr)
        sys.exit(130)


def modified(path):
    """The modification time of path in nanoseconds, or None if there is no such file."""
    return path.stat().st_mtime_ns if path.is_file() else None


def saved(config, before):
    """What config.out holds after a run stopped early, given its modified() before the run."""
    if modified(config.out) == before:
        return (f"no epoch of this run finished, and {config.out} is as it was" if before is not None
                else "no epoch finished, nothing saved")
    return f"the last finished epoch is saved in {config.out} (continue with --resume)"
