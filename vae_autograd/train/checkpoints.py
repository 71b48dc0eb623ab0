"""Checkpoints: both networks, the Adam state, the epoch and the training curve in one .npz,
written atomically and read back only if they hold the model asked for."""
import hashlib
import json
from pathlib import Path

import numpy as np

from ..core.fast_grad import flat_arrays
from ..core.model import init_vae_params
from ..io.files import atomic_write
from .loop import all_finite


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why and what to do."""


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


def params_digest(params):
    """SHA-256 of every parameter array (shape, dtype and bytes): ties a results file to the exact
    checkpoint it describes."""
    digest = hashlib.sha256()
    for array in flat_arrays(params):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


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
