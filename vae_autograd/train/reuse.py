"""The model a study needs: the checkpoint that holds it, reused, or trained anew, with the
checkpoints of the epochs it keeps. A checkpoint that holds another model is refused, never replaced,
unless retrain. The caller holds the checkpoints' lock (io.files.sole_writer) for the whole study."""
import dataclasses
import json

from ..io.files import atomic_write
from .checkpoints import CheckpointError, current_metadata, load_params, metadata_mismatch, params_digest
from .command import run_training


def reusable_model(config, retrain):
    """(params, training results) from config.out if it holds the requested model, fully
    trained and evaluated; None if it must be trained, resumed or evaluated.

    A checkpoint of fewer epochs whose training never finished (no results file describes it:
    an interrupted run) is resumed. Raises CheckpointError if config.out holds another model,
    or one whose training finished at other epochs, and retrain is off: a checkpoint the user
    named is never replaced unless asked to.
    """
    if retrain or not config.out.exists():
        return None
    params, metadata, _, epoch, _ = load_params(config.out)
    try:
        results = json.loads(config.results_path.read_text())
    except (OSError, ValueError):
        results = None
    # The results must describe this very checkpoint (another seed's .json has other parameters).
    finished = isinstance(results, dict) and results.get("params_digest") == params_digest(params) \
        and results.get("epochs") == epoch
    # A run stopped early by its validation set finished short of its epochs, for its patience; with
    # another patience it is resumed, and goes on only if that patience allows.
    stopped_early = finished and results.get("stopped_early") is True
    mismatch = metadata_mismatch(metadata, config.metadata()) or (
        (epoch > config.epochs or epoch < config.epochs and finished and not stopped_early)
        and f"has {epoch} epochs, but {config.epochs} were requested")
    if mismatch:
        raise CheckpointError(f"--params {config.out} does not match the requested model: it {mismatch}; "
                              "pass --retrain to replace it, or another --params")
    complete = epoch == config.epochs or stopped_early and results.get("patience") == config.stop_patience
    if finished and complete and results.get("test_size") == config.test_size \
            and results.get("eval_samples") == config.eval_samples:
        return params, current_metadata(results)  # an older run's results name hidden_dim, as its checkpoint
    return None


def trained_model(config, retrain, reused, data, log):
    """The (params, training results) of reused = reusable_model(config, retrain) if it found them
    (asked once, before the data are read); else config.out trained (or only evaluated)."""
    if reused is not None:
        log(f"reusing {config.out} ({config.epochs} epochs; --retrain to train again)")
        return reused
    if config.out.exists() and not retrain:  # the right model, unfinished or without its results file
        log(f"completing {config.out}")
        config = dataclasses.replace(config, resume=True)
    else:
        log(f"training {config.epochs} epochs -> {config.out}")
    return run_training(config, log=lambda line: log("  " + line), data=data, hold_lock=False)


def kept_models(config, data, log):
    """{epoch: params} of the checkpoints config.keep_epochs kept beside config.out.

    A missing one is trained from the kept checkpoint before it (a copy of it, resumed; a run
    resumed from epoch e gives exactly the parameters of an uninterrupted one), or from scratch
    for the first. One that holds fewer epochs, as an interrupted run leaves it, is resumed.
    One that holds another model, or more epochs, is refused: a training of the model anew
    (run_all.py --retrain) writes its kept checkpoints as it goes.
    """
    models, previous = {}, None
    for epoch in sorted(config.keep_epochs):
        path = config.kept_path(epoch)
        kept_epoch = None
        if path.exists():
            params, metadata, _, kept_epoch, _ = load_params(path)
            mismatch = metadata_mismatch(metadata, config.metadata()) or (
                kept_epoch > epoch and f"has {kept_epoch} epochs, more than {epoch}")
            if mismatch:
                raise CheckpointError(f"{path} does not match the requested model: it {mismatch}; "
                                      "pass --retrain to replace it")
        if kept_epoch != epoch:
            if kept_epoch is None and previous is not None:
                atomic_write(path, lambda f, source=previous: f.write(source.read_bytes()))
            resume = kept_epoch is not None or previous is not None
            log(f"training the checkpoint of epoch {epoch}" + (f" from {previous.name}" if previous else "")
                + (f" (resuming its epoch {kept_epoch})" if kept_epoch is not None else ""))
            run = dataclasses.replace(config, epochs=epoch, out=path, resume=resume, force=not resume, keep_epochs=(),
                                      quiet=True)
            params, _ = run_training(run, log=lambda line: log("  " + line), data=data, hold_lock=False)
        models[epoch] = params
        previous = path
    return models
