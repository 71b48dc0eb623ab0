"""Checkpoints (vae_autograd.train.checkpoints): round trip, atomic writes, refusals."""
import hashlib
import json
import os
import time

import numpy as np
import pytest

from tests.helpers import META, numpy_mlp, small_params
from vae_autograd.core.adam import init_adam_state
from vae_autograd.core.fast_grad import flat_arrays
from vae_autograd.core.model import ReluLayer, decoder, encoder, init_vae_params
from vae_autograd.train.checkpoints import METADATA_DEFAULTS, CheckpointError, load_params, params_digest, save_params
from vae_autograd.train.options import TrainConfig


def test_checkpoint_round_trip(tmp_path):
    params = small_params()
    state = init_adam_state(flat_arrays(params))
    state["step"] = 7
    state["m"][0] += 1.5
    path = tmp_path / "vae.npz"
    save_params(path, params, META, state, epoch=3, curve=[540.5, 300.25, 250.0])
    loaded, meta, loaded_state, epoch, curve = load_params(path, expect={"hidden": [20], "activation": "tanh"})
    assert meta == {**METADATA_DEFAULTS, **META} and epoch == 3 and loaded_state["step"] == 7
    assert curve == [540.5, 300.25, 250.0]
    for a, b in zip(flat_arrays(params), flat_arrays(loaded)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(loaded_state["m"][0], state["m"][0])


def test_a_relu_model_of_two_hidden_layers_round_trips_with_its_activation(tmp_path):
    params = init_vae_params(np.random.default_rng(0), 784, (30, 20), 2, scale=0.3, activation="relu")
    metadata = {**META, "hidden": [30, 20], "activation": "relu"}
    save_params(tmp_path / "vae.npz", params, metadata, init_adam_state(flat_arrays(params)), epoch=1, curve=[9.0])
    loaded, meta, state, *_ = load_params(tmp_path / "vae.npz", expect={"hidden": [30, 20], "activation": "relu"})
    assert meta == {**METADATA_DEFAULTS, **metadata} and [len(net) for net in loaded] == [3, 3]
    assert [type(layer) for net in loaded for layer in net] == [ReluLayer, ReluLayer, tuple] * 2
    for a, b in zip(flat_arrays(params), flat_arrays(loaded)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert params_digest(loaded) == params_digest(params) and len(state["m"]) == 12
    x = (np.random.default_rng(1).random((3, 784)) < 0.2).astype(np.float32)
    z = encoder(loaded[0], x)[0]
    np.testing.assert_allclose(decoder(loaded[1], z), numpy_mlp(loaded[1], z, "relu"), rtol=1e-4, atol=1e-4)
    # The same arrays as tanh layers are another model, with another digest.
    as_tanh = tuple([(W, b) for W, b in net] for net in params)
    assert params_digest(as_tanh) != params_digest(params)


def legacy_digest(params):
    """params_digest as it was before relu layers: the arrays alone (what older results files hold)."""
    digest = hashlib.sha256()
    for array in flat_arrays(params):
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_a_checkpoint_from_before_hidden_and_activation_loads_as_one_tanh_layer(tmp_path):
    """Older checkpoints (the committed study's data/vae.npz among them) record "hidden_dim" and no
    activation: they load as hidden [H] and tanh, match today's default options, and their results
    files' digests still match."""
    params = small_params()
    old = {"data_dim": 784, "hidden_dim": 20, "latent_dim": 2, "seed": 0, "lr": 0.001, "batch_size": 100,
           "train_size": 10000}
    save_params(tmp_path / "vae.npz", params, old, epoch=2)
    config = TrainConfig(hidden=(20,))
    loaded, meta, *_ = load_params(tmp_path / "vae.npz", expect=config.metadata())
    assert meta == config.metadata() and list(meta) == list(config.metadata())
    assert [type(layer) for net in loaded for layer in net] == [tuple] * 4
    assert params_digest(loaded) == legacy_digest(params)
    with pytest.raises(CheckpointError, match="has activation='tanh', but 'relu' was requested"):
        load_params(tmp_path / "vae.npz", expect=TrainConfig(hidden=(20,), activation="relu").metadata())


real_localtime = time.localtime


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "vae.npz"
    save_params(path, small_params(), META)
    good = path.read_bytes()

    real_write, written = np.lib.format.write_array, []

    def full_after_three_arrays(*args, **kwargs):
        written.append(1)
        if len(written) > 3:
            raise OSError("disk full")
        real_write(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", full_after_three_arrays)
    with pytest.raises(OSError):
        save_params(path, small_params(seed=3), META)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["vae.npz"]  # no temporary left behind


def test_the_same_checkpoint_is_the_same_bytes(tmp_path, monkeypatch):
    """No time stamp inside: a resumed run's file equals an uninterrupted one's, byte for byte."""
    save_params(tmp_path / "a.npz", small_params(), META, epoch=2, curve=[3.0, 2.0])
    monkeypatch.setattr(time, "time", lambda: 2e9)  # zip stamps would say 2033
    monkeypatch.setattr(time, "localtime", lambda *a: real_localtime(2e9))
    save_params(tmp_path / "b.npz", small_params(), META, epoch=2, curve=[3.0, 2.0])
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "b.npz") as f:  # still an .npz that NumPy reads
        assert f["param_0"].shape == (784, 20) and int(f["epoch"]) == 2


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*train one first"):
        load_params(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a vae_autograd checkpoint"):
        load_params(junk)
    path = tmp_path / "vae.npz"
    save_params(path, small_params(), META)
    with pytest.raises(CheckpointError, match=r"hidden=\[20\], but \[500\] was requested"):
        load_params(path, expect={"hidden": [500]})
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


def crafted(tmp_path, change):
    """A valid checkpoint's arrays, changed by change(arrays, metadata), saved as a .npz by hand."""
    params = small_params()
    state = init_adam_state(flat_arrays(params))
    state["step"] = 4
    path = tmp_path / "good.npz"
    save_params(path, params, META, state, epoch=2, curve=[300.0, 250.0])
    with np.load(path) as f:
        arrays = dict(f.items())
    metadata = json.loads(str(arrays["metadata"]))
    change(arrays, metadata)
    arrays["metadata"] = np.array(json.dumps(metadata))
    np.savez(tmp_path / "crafted.npz", **arrays)
    return tmp_path / "crafted.npz"


def drop(key):
    return lambda arrays, metadata: arrays.pop(key)


def put(key, value):
    return lambda arrays, metadata: arrays.__setitem__(key, np.asarray(value))


def meta(key, value):
    return lambda arrays, metadata: metadata.__setitem__(key, value)


@pytest.mark.parametrize("change, message", [
    (drop("epoch"), "records no epoch count"),
    (put("epoch", -1), "records no epoch count"),
    (put("epoch", 2.0), "records no epoch count"),
    (put("epoch", [2]), "records no epoch count"),
    (drop("adam_m_0"), "Adam state that does not fit"),
    (put("adam_v_3", np.zeros(5, np.float32)), "Adam state that does not fit"),
    (put("adam_m_1", np.full(20, np.nan, np.float32)), "Adam state that does not fit"),
    (put("adam_step", np.nan), "Adam state that does not fit"),
    (put("train_curve", np.zeros((2, 2))), "training curve of shape (2, 2)"),
    (put("train_curve", [300.0, np.inf]), "not finite numbers"),
    (put("param_0", np.zeros((784, 20), int)), "does not hold the arrays"),
    (meta("hidden", ["20"]), "records the architecture 784-'20'-2 tanh, not positive integer sizes"),
    (meta("hidden", []), "records the architecture 784-2 tanh, not positive"),
    (meta("hidden", 20), "records the architecture 784-20-2 tanh, not positive"),
    (meta("activation", "sigmoid"), "records the architecture 784-20-2 sigmoid, not positive integer sizes and one of "
                                    "the activations tanh, relu"),
    (meta("hidden", [10**12]), "does not hold the arrays of a 784-1000000000000-2 tanh VAE"),
    (meta("hidden", [20, 20]), "does not hold the arrays of a 784-20-20-2 tanh VAE"),
])
def test_a_crafted_checkpoint_is_refused_in_one_line_before_allocating(tmp_path, change, message):
    """Checkpoints from another version or built by hand: every field is checked against the metadata, and the
    shapes come from the metadata alone, so a crafted size is refused, never allocated."""
    path = crafted(tmp_path, change)
    with pytest.raises(CheckpointError) as error:
        load_params(path)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert "damaged or from another version: retrain" in str(error.value)
