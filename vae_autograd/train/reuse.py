"""The model a study needs: the checkpoint that holds it, reused, or trained anew, with the
checkpoints of the epochs it keeps. A checkpoint that holds another model is refused, never replaced,
unless retrain."""
import dataclasses
import json
import os

from .checkpoints import CheckpointError, load_params, metadata_mismatch
from .command import run_training


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
