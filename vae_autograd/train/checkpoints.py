"""Checkpoints: both networks, the Adam state, the epoch and the training curve in one .npz,
written atomically and read back only if they hold the model asked for. A run with a validation set
also keeps its validation curve and its best epoch's parameters there: the training state is what
--resume goes on from, the best epoch's parameters the model that load_params gives the analyses."""
import hashlib
import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..core.fast_grad import flat_arrays
from ..core.model import ACTIVATIONS, ReluLayer, network
from ..io.files import atomic_write
from .loop import all_finite
from .validation import Validation, best_epoch

# Checkpoints written before these options existed record neither: they were trained on images
# thresholded at 0.5 without a validation set, and are read as such (so they are still reused).
METADATA_DEFAULTS = {"binarization": "threshold", "validation_size": 0}


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why and what to do."""


class Checkpoint(NamedTuple):
    """Everything a checkpoint holds; validation is None for a run without a validation set."""
    params: tuple       # (enc_params, dec_params) after the last epoch: the training state
    metadata: dict      # TrainConfig.metadata() of the run, METADATA_DEFAULTS for keys it predates
    adam_state: dict | None
    epoch: int
    curve: list         # mean -ELBO of each training epoch
    validation: Validation | None


def save_params(path, params, metadata, adam_state=None, epoch=0, curve=(), validation=None):
    """Write both networks, the Adam state, the epoch, the per-epoch mean -ELBO so far (curve),
    the Validation record if the run has one, and metadata to one .npz, atomically. The curve
    travels with the parameters, so a resumed run reports the curve of exactly the epochs that made them."""
    arrays = {f"param_{i}": a for i, a in enumerate(flat_arrays(params))}
    if adam_state is not None:
        arrays.update({f"adam_m_{i}": a for i, a in enumerate(adam_state["m"])})
        arrays.update({f"adam_v_{i}": a for i, a in enumerate(adam_state["v"])})
        arrays["adam_step"] = np.array(adam_state["step"])
    arrays["epoch"] = np.array(epoch)
    arrays["train_curve"] = np.array(curve, dtype=np.float64)
    if validation is not None:
        arrays.update({f"best_param_{i}": a for i, a in enumerate(flat_arrays(validation.best_params))})
        arrays["best_epoch"] = np.array(validation.best_epoch)
        arrays["validation_curve"] = np.array(validation.curve, dtype=np.float64)
    arrays["metadata"] = np.array(json.dumps(metadata))
    atomic_write(path, lambda f: write_npz(f, arrays))


def write_npz(file, arrays):
    """np.savez's format, with a fixed time stamp on every member (np.savez stamps the current
    time): the same parameters make the same bytes, so a resumed run's checkpoint can be
    compared with an uninterrupted one's byte for byte."""
    with zipfile.ZipFile(file, "w") as archive:
        for name, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w",
                              force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def params_digest(params):
    """SHA-256 of every parameter array (shape, dtype and bytes) and of which layers are relu: ties a
    results file to the exact checkpoint it describes. (A tanh model's digest is that of its arrays
    alone, as before relu layers existed, so the results of older checkpoints still match.)"""
    digest = hashlib.sha256()
    for net in params:
        for layer in net:
            if type(layer) is ReluLayer:
                digest.update(b"relu")
            for array in layer:
                array = np.ascontiguousarray(array)
                digest.update(f"{array.shape}{array.dtype.str}".encode())
                digest.update(array.tobytes())
    return digest.hexdigest()


def current_metadata(metadata):
    """metadata (of a checkpoint, or its results file) in today's terms, as a new dict. One written
    before --hidden and --activation records "hidden_dim": 500 and no activation, which was one tanh
    hidden layer of 500: "hidden": [500], "activation": "tanh" (in the place of hidden_dim). One
    written before the data options records neither: it gets METADATA_DEFAULTS. Anything else is
    unchanged."""
    renamed = {}
    for key, value in metadata.items():
        renamed.update({"hidden": [value], "activation": "tanh"} if key == "hidden_dim" and "hidden" not in metadata
                       else {key: value})
    return {**renamed, **{key: value for key, value in METADATA_DEFAULTS.items() if key not in renamed}}


def architecture(metadata):
    """"784-256-128-2 relu": the sizes from the data to the latent space and the activation, as the
    metadata records them (a value that is not an int shown as its repr, for the messages of load_params)."""
    hidden = metadata.get("hidden")
    sizes = [metadata.get("data_dim"), *(hidden if isinstance(hidden, list) else [hidden]), metadata.get("latent_dim")]
    return "-".join(str(n) if type(n) is int else repr(n) for n in sizes) + f" {metadata.get('activation')}"


def metadata_mismatch(metadata, expect):
    """How metadata differs from the expected entries ("has k=a, but b was requested"), or None."""
    for key, value in expect.items():
        if metadata.get(key) != value:
            return f"has {key}={metadata.get(key)!r}, but {value!r} was requested"
    return None


def load_params(path, expect=None):
    """The model of a checkpoint written by save_params: (params, metadata, adam_state, epoch, curve).

    params is the model to analyse: with a validation set, the parameters of the best validation
    epoch (load_checkpoint(path).validation.best_epoch), else those of the last epoch; adam_state,
    epoch and curve are the training state's (the last epoch's), as load_checkpoint gives them.
    expect and the errors are load_checkpoint's.
    """
    checkpoint = load_checkpoint(path, expect)
    params = checkpoint.validation.best_params if checkpoint.validation else checkpoint.params
    return params, checkpoint.metadata, checkpoint.adam_state, checkpoint.epoch, checkpoint.curve


def load_checkpoint(path, expect=None):
    """Read everything a checkpoint written by save_params holds, as a Checkpoint.

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
        metadata = current_metadata(json.loads(str(files["metadata"])))
        dims = (metadata["data_dim"], metadata["hidden"], metadata["latent_dim"], metadata["activation"])
    except Exception as err:  # any unreadable file is the same problem to the user
        raise CheckpointError(f"{path} is not a vae_autograd checkpoint ({type(err).__name__}); "
                              "delete it or pass another path") from None
    mismatch = metadata_mismatch(metadata, expect or {})
    if mismatch:
        raise CheckpointError(f"checkpoint {path} {mismatch}; retrain, or pass a matching checkpoint")

    def damaged(what):
        return CheckpointError(f"checkpoint {path} {what}; it is damaged or from another version: retrain")

    data_dim, hidden, latent_dim, activation = dims
    sizes = [data_dim, *hidden, latent_dim] if isinstance(hidden, list) and hidden else [None]
    if not all(type(n) is int and n > 0 for n in sizes) or activation not in ACTIVATIONS:
        raise damaged(f"records the architecture {architecture(metadata)}, not positive integer sizes and one of "
                      f"the activations {', '.join(ACTIVATIONS)}")
    shapes = vae_shapes(data_dim, hidden, latent_dim)  # from the metadata alone: nothing allocated for a crafted size
    got, params = read_params(files, "param", shapes, len(hidden), activation)
    if params is None:
        raise damaged(f"does not hold the arrays of a {architecture(metadata)} VAE")
    if not all_finite(params):
        raise CheckpointError(f"checkpoint {path} holds non-finite parameters (its training diverged); "
                              "retrain it with a smaller --lr")
    epoch = count(files.get("epoch"))
    if epoch is None:
        raise damaged("records no epoch count (a non-negative integer)")
    curve = files.get("train_curve", np.zeros(0))
    if curve.ndim != 1 or not np.issubdtype(curve.dtype, np.floating) or not np.all(np.isfinite(curve)):
        raise damaged(f"holds a training curve of shape {curve.shape} and dtype {curve.dtype}, not finite numbers "
                      "one per epoch")
    adam_state = None
    if "adam_step" in files:
        adam_state = {"m": [files.get(f"adam_m_{i}") for i in range(len(shapes))],
                      "v": [files.get(f"adam_v_{i}") for i in range(len(shapes))],
                      "step": count(files["adam_step"])}
        moments = adam_state["m"] + adam_state["v"]
        if adam_state["step"] is None or any(a is None or a.shape != s or a.dtype != p.dtype or not np.isfinite(a).all()
                                             for a, s, p in zip(moments, shapes * 2, got * 2)):
            raise damaged("holds an Adam state that does not fit its parameters")
    validation = None
    if metadata["validation_size"] or "validation_curve" in files:
        validation = read_validation(files, shapes, epoch, len(hidden), activation)
        if validation is None:
            raise damaged(f"holds no validation curve of {epoch} finite ELBOs, its best epoch and that epoch's "
                          "finite parameters")
    return Checkpoint(params, metadata, adam_state, epoch, [float(v) for v in curve], validation)


def read_params(files, prefix, shapes, num_hidden, activation):
    """(arrays, params) of the arrays prefix_0, prefix_1, ... of files if they have the shapes
    (vae_shapes' order, num_hidden hidden layers per network) and a floating dtype, and there is
    no more of them; else (arrays, None). The activation is put into the layers (model.network):
    every analysis reads it from the checkpoint."""
    got = [files.get(f"{prefix}_{i}") for i in range(len(shapes))]
    if any(a is None or a.shape != s or not np.issubdtype(a.dtype, np.floating) for a, s in zip(got, shapes)) \
            or f"{prefix}_{len(shapes)}" in files:
        return got, None
    layers = list(zip(got[::2], got[1::2]))
    return got, (network(layers[:num_hidden + 1], activation), network(layers[num_hidden + 1:], activation))


def read_validation(files, shapes, epoch, num_hidden, activation):
    """The Validation record of a checkpoint at epoch, or None if it lacks one or it is inconsistent:
    a validation ELBO per epoch, all finite, the best epoch their first highest, its parameters finite."""
    curve, best, (_, best_params) = files.get("validation_curve"), count(files.get("best_epoch")), \
        read_params(files, "best_param", shapes, num_hidden, activation)
    if curve is None or curve.shape != (epoch,) or not np.issubdtype(curve.dtype, np.floating) \
            or not np.all(np.isfinite(curve)) or epoch == 0 or best != best_epoch(curve) \
            or best_params is None or not all_finite(best_params):
        return None
    return Validation([float(v) for v in curve], best, best_params)


def vae_shapes(data_dim, hidden, latent_dim):
    """The shapes of the arrays of a VAE, in flat_arrays' order (W, b of each layer), without making them.

    hidden: the hidden widths from the data side; the decoder mirrors them (model.init_vae_params).
    """
    sizes = ([data_dim, *hidden, 2 * latent_dim], [latent_dim, *hidden[::-1], data_dim])
    return [shape for net in sizes for m, n in zip(net[:-1], net[1:]) for shape in ((m, n), (n,))]


def count(array):
    """The value of a 0-d integer array if it is >= 0, else None (missing, a float, NaN, negative)."""
    if array is None or array.shape != () or not np.issubdtype(array.dtype, np.integer) or array < 0:
        return None
    return int(array)
