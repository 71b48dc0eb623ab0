"""The data options of training (--binarization, --validation-size, --patience): dynamic binarization
draws the right pixels afresh and resumes exactly, the evaluation sets come from their documented
seeds, validation images are never trained on, and early stopping keeps the best epoch's model."""
import json

import numpy as np
import pytest

import vae_autograd.train.loop as training
import vae_autograd.train.validation as validation
from tests.helpers import small_params, synthetic_images
from tests.train.test_command import small_config, synthetic_data
from vae_autograd.core.fast_grad import flat_arrays
from vae_autograd.io.mnist import threshold
from vae_autograd.train.checkpoints import (
    METADATA_DEFAULTS,
    CheckpointError,
    load_checkpoint,
    load_params,
    params_digest,
)
from vae_autograd.train.command import run_training
from vae_autograd.train.data import TEST_BINARIZATION_SEED, TRAIN_BINARIZATION_SEED, run_images
from vae_autograd.train.loop import draw_binary, epoch_rng, pixel_rng, train
from vae_autograd.train.reuse import reusable_model
from vae_autograd.train.validation import VALIDATION_SAMPLES, validation_elbo

QUIET = {"log": lambda line: None}


def grey_data(train_n=300, test_n=100):
    """load_grey_mnist's four arrays, from random intensities in [0, 1] (exact 0 and 1 included)."""
    def grey(n, seed):
        values = np.random.default_rng(seed).random((n, 784)).astype(np.float32) ** 3
        values[:, :10], values[:, 10:20] = 0.0, 1.0
        return values
    return grey(train_n, 1), np.zeros(train_n, np.int64), grey(test_n, 2), np.zeros(test_n, np.int64)


def assert_same_params(a, b):
    for x, y in zip(flat_arrays(a), flat_arrays(b)):
        np.testing.assert_array_equal(x, y)


def test_dynamic_draws_have_each_pixels_intensity_as_frequency():
    grey = np.linspace(0, 1, 784, dtype=np.float32)  # every intensity from 0 to 1, one per pixel
    n = 4000
    drawn = draw_binary(np.broadcast_to(grey, (n, 784)), np.random.default_rng(11))
    assert drawn.dtype == np.float32 and set(np.unique(drawn).tolist()) == {0.0, 1.0}
    assert not drawn[:, 0].any() and drawn[:, -1].all()  # intensity 0 never, 1 always
    p = grey[1:-1].astype(np.float64)
    z = (drawn[:, 1:-1].sum(axis=0) - n * p) / np.sqrt(n * p * (1 - p))
    # Each count is binomial: |z| > 5 has probability about 6e-7 per pixel, 5e-4 over the 782 (Bonferroni).
    assert np.abs(z).max() < 5
    # Their squares add up to a chi-square of 782 degrees of freedom (sd sqrt(2 * 782) = 40), which a
    # systematic error of a few percent in every pixel's frequency (a biased draw) would push far out.
    assert abs((z**2).sum() - 782) < 5 * 40


def record_loss_batches(monkeypatch):
    """The minibatches the training loss is computed on, each as a copy, in the order of the steps."""
    batches, real = [], training.value_and_grad_per_array

    def recording(loss):
        loss_and_grad = real(loss)

        def step(params, x, rng):
            batches.append(np.array(x))
            return loss_and_grad(params, x, rng)
        return step

    monkeypatch.setattr(training, "value_and_grad_per_array", recording)
    return batches


def test_each_minibatch_of_each_epoch_is_drawn_afresh_from_its_epochs_generator(monkeypatch):
    grey = grey_data(250)[0]
    batches = record_loss_batches(monkeypatch)
    train(small_params(), grey, epochs=2, batch_size=100, seed=4, binarization="dynamic")
    assert [len(b) for b in batches] == [100, 100, 50] * 2
    expected = []
    for epoch in range(2):  # the order of threshold training, the pixels from the epoch's own generator
        order, pixels = epoch_rng(4, epoch).permutation(250), pixel_rng(4, epoch)
        expected += [draw_binary(grey[order[start:start + 100]], pixels) for start in range(0, 250, 100)]
    for got, want in zip(batches, expected):
        np.testing.assert_array_equal(got, want)
    # The same grey image in two epochs is drawn twice, differently.
    first, second = (np.concatenate(batches[3 * e:3 * e + 3])[np.argsort(epoch_rng(4, e).permutation(250))]
                     for e in range(2))
    assert set(np.unique(first).tolist()) == {0.0, 1.0}
    assert np.mean(first[:, 20:] != second[:, 20:]) > 0.05 and np.array_equal(first[:, :20], second[:, :20])


@pytest.mark.parametrize("binarization, validation_size", [("dynamic", 0), ("dynamic", 60), ("threshold", 60)])
def test_a_resumed_run_ends_with_the_bytes_of_an_uninterrupted_one(tmp_path, binarization, validation_size):
    data = grey_data() if binarization == "dynamic" else synthetic_data()
    options = dict(binarization=binarization, validation_size=validation_size, keep_epochs=(1,))
    straight = small_config(tmp_path / "straight.npz", epochs=4, **options)
    _, straight_results = run_training(straight, data=data, **QUIET)
    config = small_config(tmp_path / "vae.npz", epochs=2, **options)
    run_training(config, data=data, **QUIET)
    _, results = run_training(small_config(config.out, epochs=4, resume=True, **options), data=data, **QUIET)
    assert config.out.read_bytes() == straight.out.read_bytes()
    assert {**results, "train_seconds": 0} == {**straight_results, "train_seconds": 0}
    assert results["binarization"] == binarization and results["validation_size"] == validation_size
    assert ("test_threshold_elbo" in results) == (binarization == "dynamic")
    if validation_size:
        # Each epoch's validation ELBO is reproducible: its fixed draws, on the held-out images.
        epoch_one = load_checkpoint(config.kept_path(1)).params
        held_out = run_images(config, data).validation
        assert results["validation_curve"][0] == validation_elbo(epoch_one, held_out, config.seed)[0]
        assert results["validation_samples"] == VALIDATION_SAMPLES and len(results["validation_curve"]) == 4


def test_evaluation_sets_come_from_the_documented_seeds_whatever_their_size_or_the_run_seed():
    train_grey, _, test_grey, _ = grey_data(300, 100)
    sets = run_images(small_config("v.npz", binarization="dynamic", validation_size=50), grey_data(300, 100))
    fewer = run_images(small_config("v.npz", binarization="dynamic", test_size=40, seed=9),
                       grey_data(300, 40))
    np.testing.assert_array_equal(fewer.test, sets.test[:40])  # the first images do not depend on --test-size
    np.testing.assert_array_equal(sets.test, draw_binary(test_grey, np.random.default_rng(TEST_BINARIZATION_SEED)))
    np.testing.assert_array_equal(sets.test_threshold, threshold(test_grey))
    drawn_train = draw_binary(train_grey, np.random.default_rng(TRAIN_BINARIZATION_SEED))
    np.testing.assert_array_equal(sets.train_eval, drawn_train[:250])
    np.testing.assert_array_equal(sets.validation, drawn_train[250:])
    np.testing.assert_array_equal(sets.train, train_grey[:250])  # trained on: grey, drawn afresh each time
    np.testing.assert_array_equal(fewer.train_eval, drawn_train)  # no validation: every training image


@pytest.mark.parametrize("binarization", ["threshold", "dynamic"])
def test_validation_images_are_never_trained_on(tmp_path, monkeypatch, binarization):
    data = grey_data() if binarization == "dynamic" else synthetic_data()
    trained_rows, real = [], training.minibatches

    def recording(x, *args):  # the rows of each minibatch, before dynamic binarization draws its pixels
        for batch in real(x, *args):
            trained_rows.append(batch)
            yield batch

    monkeypatch.setattr(training, "minibatches", recording)
    run_training(small_config(tmp_path / "vae.npz", epochs=2, batch_size=64, binarization=binarization,
                              validation_size=70), data=data, **QUIET)
    train_x = data[0]
    index = {row.tobytes(): i for i, row in enumerate(train_x)}
    assert len(index) == 300  # every image distinct, so each row names its image
    seen = [index[row.tobytes()] for batch in trained_rows for row in batch]
    assert sorted(seen) == sorted(list(range(230)) * 2)  # the first 230, each once per epoch


def crafted_validation(monkeypatch, curve, start_epoch=0):
    """Make the validation ELBO after epoch e be curve[e - 1], for a run that starts at start_epoch."""
    values = iter(curve[start_epoch:])
    monkeypatch.setattr(validation, "validation_elbo", lambda params, x, seed: (next(values), 0.0))


CURVE = [-300.0, -280.0, -290.0, -270.0, -275.0, -271.0, -270.0, -272.0, -265.0, -266.0]


def test_early_stopping_stops_after_patience_epochs_and_keeps_the_best_epochs_model(tmp_path, monkeypatch):
    crafted_validation(monkeypatch, CURVE)
    config = small_config(tmp_path / "vae.npz", epochs=10, validation_size=50, patience=3, keep_epochs=(4,))
    lines = []
    params, results = run_training(config, log=lines.append, data=synthetic_data())
    # Best at epoch 4 (-270; epoch 7's equal -270 is no improvement), and three epochs without a better one.
    assert (results["best_epoch"], results["stopped_epoch"], results["epochs"]) == (4, 7, 7)
    assert results["stopped_early"] is True and results["validation_curve"] == CURVE[:7]
    assert results["best_validation_elbo"] == -270.0 and results["patience"] == 3
    assert any(line.startswith("stopping at epoch 7") for line in lines)
    at_best = load_checkpoint(config.kept_path(4)).params  # the parameters saved at the best epoch
    assert_same_params(params, at_best)
    assert_same_params(load_params(config.out)[0], at_best)  # what the analyses load
    assert results["params_digest"] == params_digest(at_best)
    checkpoint = load_checkpoint(config.out)  # and the training state, for --resume
    assert checkpoint.epoch == 7 and checkpoint.validation.best_epoch == 4
    assert not np.array_equal(checkpoint.params[0][0][0], at_best[0][0][0])


def test_a_run_that_stopped_trains_further_only_as_a_larger_patience_allows(tmp_path, monkeypatch):
    data = synthetic_data()
    crafted_validation(monkeypatch, CURVE)
    config = small_config(tmp_path / "vae.npz", epochs=10, validation_size=50, patience=3)
    run_training(config, data=data, **QUIET)
    stopped = config.out.read_bytes()
    lines = []
    crafted_validation(monkeypatch, CURVE, start_epoch=7)
    _, results = run_training(small_config(config.out, epochs=12, validation_size=50, patience=3, resume=True),
                              log=lines.append, data=data)
    assert config.out.read_bytes() == stopped and results["stopped_epoch"] == 7  # more epochs alone: no more training
    assert any("evaluating only" in line for line in lines)
    # A larger patience goes on exactly as an uninterrupted run with it: to epoch 9's -265, then stops at 10.
    crafted_validation(monkeypatch, CURVE, start_epoch=7)
    _, resumed = run_training(small_config(config.out, epochs=10, validation_size=50, patience=5, resume=True),
                              data=data, **QUIET)
    crafted_validation(monkeypatch, CURVE)
    straight = small_config(tmp_path / "straight.npz", epochs=10, validation_size=50, patience=5)
    run_training(straight, data=data, **QUIET)
    assert config.out.read_bytes() == straight.out.read_bytes()
    assert (resumed["best_epoch"], resumed["stopped_epoch"], resumed["stopped_early"]) == (9, 10, False)


def test_a_checkpoint_without_its_validation_record_is_refused(tmp_path):
    config = small_config(tmp_path / "vae.npz", epochs=2, validation_size=50)
    run_training(config, data=synthetic_data(), **QUIET)
    checkpoint = load_checkpoint(config.out)
    assert len(checkpoint.validation.curve) == 2 and json.loads(config.results_path.read_text())["best_epoch"] \
        == checkpoint.validation.best_epoch
    with np.load(config.out) as f:
        arrays = {k: v for k, v in f.items() if k != "validation_curve"}
    np.savez(tmp_path / "crafted.npz", **arrays)
    with pytest.raises(CheckpointError, match="holds no validation curve of 2 finite ELBOs"):
        load_params(tmp_path / "crafted.npz")


def test_grey_images_are_refused_by_threshold_training_and_0_255_by_dynamic():
    with pytest.raises(ValueError, match="binary"):
        train(small_params(), grey_data()[0], epochs=1)
    with pytest.raises(ValueError, match=r"grey intensities in \[0, 1\].*divide 0-255 pixels by 255"):
        train(small_params(), synthetic_images() * 255, epochs=1, binarization="dynamic")


def test_a_checkpoint_from_before_the_data_options_loads_and_is_reused_as_their_defaults(tmp_path):
    config = small_config(tmp_path / "vae.npz", epochs=1)
    params, _ = run_training(config, data=synthetic_data(), **QUIET)
    # Checkpoint and results as the code before these options wrote them (as the committed data/vae.npz).
    with np.load(config.out) as f:
        arrays = dict(f.items())
    new = json.loads(str(arrays["metadata"]))
    old = {"data_dim": 784, "hidden_dim": new["hidden"][0], "latent_dim": new["latent_dim"], "seed": new["seed"],
           "lr": new["lr"], "batch_size": new["batch_size"], "train_size": new["train_size"]}
    assert set(new) == set(old) - {"hidden_dim"} | {"hidden", "activation"} | set(METADATA_DEFAULTS)
    np.savez(config.out, **{**arrays, "metadata": np.array(json.dumps(old))})
    results = json.loads(config.results_path.read_text())
    config.results_path.write_text(json.dumps({**{k: v for k, v in results.items() if k not in new}, **old}))
    loaded, metadata, *_ = load_params(config.out, expect=config.metadata())
    assert metadata == config.metadata() and metadata["binarization"] == "threshold"
    assert metadata["validation_size"] == 0
    reused, _ = reusable_model(config, retrain=False)
    assert_same_params(reused, params)
    with pytest.raises(CheckpointError, match="has binarization='threshold', but 'dynamic' was requested"):
        reusable_model(small_config(config.out, epochs=1, binarization="dynamic"), retrain=False)
    with pytest.raises(CheckpointError, match="has validation_size=0, but 50 was requested"):
        reusable_model(small_config(config.out, epochs=1, validation_size=50), retrain=False)


def test_a_run_that_stopped_early_is_reused_for_its_patience_and_resumed_for_another(tmp_path, monkeypatch):
    crafted_validation(monkeypatch, CURVE)
    config = small_config(tmp_path / "vae.npz", epochs=10, validation_size=50, patience=3)
    best, _ = run_training(config, data=synthetic_data(), **QUIET)
    params, results = reusable_model(config, retrain=False)  # finished at epoch 7 of 10: complete
    assert_same_params(params, best)
    assert results["stopped_epoch"] == 7
    assert reusable_model(small_config(config.out, epochs=10, validation_size=50, patience=5), retrain=False) is None


def test_a_relu_models_best_epoch_stays_relu_and_its_results_describe_the_checkpoint(tmp_path):
    """The best epoch's copy keeps each layer's kind: a relu network copied as plain pairs would be evaluated
    as tanh, and the results (and every caller of run_training) would describe another model than the
    checkpoint holds."""
    config = small_config(tmp_path / "vae.npz", epochs=2, hidden=(16, 8), activation="relu", validation_size=60)
    params, results = run_training(config, data=synthetic_data(), **QUIET)
    saved = load_params(config.out)[0]
    assert [type(layer) for net in params for layer in net] == [type(layer) for net in saved for layer in net]
    assert type(params[0][0]).__name__ == "ReluLayer"
    sets, rng = run_images(config, synthetic_data()), np.random.default_rng([config.seed, 2**31])
    # evaluate_run's draws: the training images first, then the test images, from one generator.
    assert results["train_elbo"] == training.evaluate_elbo(saved, sets.train_eval, rng, config.eval_samples)[0]
    assert results["test_elbo"] == training.evaluate_elbo(saved, sets.test, rng, config.eval_samples)[0]
