"""Checkpoints (vae_autograd.train.checkpoints): round trip, atomic writes, refusals."""
import os

import numpy as np
import pytest

from tests.helpers import META, small_params
from vae_autograd.core.adam import init_adam_state
from vae_autograd.core.fast_grad import flat_arrays
from vae_autograd.train.checkpoints import CheckpointError, load_params, save_params


def test_checkpoint_round_trip(tmp_path):
    params = small_params()
    state = init_adam_state(flat_arrays(params))
    state["step"] = 7
    state["m"][0] += 1.5
    path = tmp_path / "vae.npz"
    save_params(path, params, META, state, epoch=3, curve=[540.5, 300.25, 250.0])
    loaded, meta, loaded_state, epoch, curve = load_params(path, expect={"hidden_dim": 20})
    assert meta == META and epoch == 3 and loaded_state["step"] == 7
    assert curve == [540.5, 300.25, 250.0]
    for a, b in zip(flat_arrays(params), flat_arrays(loaded)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(loaded_state["m"][0], state["m"][0])


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "vae.npz"
    save_params(path, small_params(), META)
    good = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        save_params(path, small_params(seed=3), META)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["vae.npz"]  # no temporary left behind


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*train one first"):
        load_params(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a vae_autograd checkpoint"):
        load_params(junk)
    path = tmp_path / "vae.npz"
    save_params(path, small_params(), META)
    with pytest.raises(CheckpointError, match="hidden_dim=20, but 500 was requested"):
        load_params(path, expect={"hidden_dim": 500})
    # Arrays that do not fit the dimensions the metadata claims: damaged or another model.
    save_params(path, small_params(hidden=30), META)
    with pytest.raises(CheckpointError, match="does not hold the arrays"):
        load_params(path)


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        save_params(tmp_path / "vae.npz", small_params(), META)
    finally:
        os.umask(mask)
    assert (tmp_path / "vae.npz").stat().st_mode & 0o777 == 0o644


def test_checkpoint_with_non_finite_parameters_is_refused(tmp_path):
    params = small_params()
    params[1][0][0][0, 0] = np.nan
    save_params(tmp_path / "vae.npz", params, META)
    with pytest.raises(CheckpointError, match="non-finite parameters.*smaller --lr"):
        load_params(tmp_path / "vae.npz")
