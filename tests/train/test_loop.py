"""The training loop (vae_autograd.train.loop): minibatches, seeding, resuming, the ELBO's
standard error, divergence, and a real-data smoke run.
"""
import tracemalloc

import numpy as np
import pytest

from tests.helpers import META, small_params, synthetic_images
from vae_autograd.core.elbo import elbo, log_importance_weights
from vae_autograd.core.fast_grad import flat_arrays
from vae_autograd.core.model import init_vae_params
from vae_autograd.train.checkpoints import load_params, save_params
from vae_autograd.train.loop import TrainingDiverged, evaluate_elbo, minibatches, train


@pytest.mark.parametrize("n, sizes", [
    (1000, [100] * 10),
    (1050, [100] * 10 + [50]),
    (99, [99]),
    (101, [100, 1]),
])
def test_minibatches_cover_every_row_once(n, sizes):
    x = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32)
    batches = list(minibatches(x, 100, np.random.default_rng(0)))
    assert [len(b) for b in batches] == sizes
    rows = np.concatenate(batches)
    assert rows.shape == (n, 2)
    np.testing.assert_array_equal(np.sort(rows[:, 0]), np.arange(n))
    np.testing.assert_array_equal(rows[:, 1], -rows[:, 0])  # rows kept whole
    if n >= 100:
        assert not np.array_equal(rows[:, 0], np.arange(n))  # actually shuffled


def test_minibatches_same_seed_same_order_different_seed_differs():
    x = np.arange(500)[:, None]

    def order(seed):
        return np.concatenate(list(minibatches(x, 100, np.random.default_rng(seed))))[:, 0]

    np.testing.assert_array_equal(order(3), order(3))
    assert not np.array_equal(order(3), order(4))


def test_minibatches_rng_advances_between_epochs():
    x = np.arange(300)[:, None]
    rng = np.random.default_rng(0)
    first = np.concatenate(list(minibatches(x, 100, rng)))
    second = np.concatenate(list(minibatches(x, 100, rng)))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.sort(second[:, 0]), np.arange(300))


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    x = synthetic_images()
    straight = small_params()
    train(straight, x, epochs=4, seed=3)

    first = small_params()
    train(first, x, epochs=2, seed=3,
          on_epoch_end=lambda epoch, loss, sec, state: save_params(
              tmp_path / "vae.npz", first, META, state, epoch))
    resumed, _, state, epoch, _ = load_params(tmp_path / "vae.npz")
    assert epoch == 2
    train(resumed, x, epochs=4, seed=3, adam_state=state, start_epoch=epoch)
    for a, b in zip(flat_arrays(straight), flat_arrays(resumed)):
        assert np.array_equal(a, b)


def test_same_seed_same_training_and_other_seed_differs():
    x = synthetic_images()
    runs = [small_params() for _ in range(3)]
    curves = [train(p, x, epochs=1, seed=s) for p, s in zip(runs, (0, 0, 1))]
    assert curves[0] == curves[1] and curves[0] != curves[2]


def test_evaluate_elbo_standard_error_matches_the_spread_of_repeats():
    params = small_params()
    x = synthetic_images(200)
    means = [evaluate_elbo(params, x, np.random.default_rng(s), num_samples=4)[0]
             for s in range(30)]
    _, se = evaluate_elbo(params, x, np.random.default_rng(99), num_samples=4)
    # The reported SE should describe the spread of the estimate over independent seeds.
    assert 0.6 < np.std(means, ddof=1) / se < 1.5


@pytest.mark.parametrize("floats_per_chunk", [1, 3000, 2**24])
def test_evaluate_elbo_in_chunks_uses_the_very_draws_of_log_importance_weights(floats_per_chunk):
    params, x = small_params(), synthetic_images(25)
    log_w = log_importance_weights(*params, x, np.random.default_rng(5), 7, 10).astype(np.float64)
    mean, se = evaluate_elbo(params, x, np.random.default_rng(5), 7, 10, floats_per_chunk)
    # Same numbers, summed in another order: equal to rounding, where other draws would differ by ~se.
    assert mean == pytest.approx(log_w.mean(), rel=1e-13, abs=0)
    assert se == pytest.approx(np.sqrt(log_w.var(axis=0, ddof=1).sum() / 7) / 25, rel=1e-9)


def test_evaluate_elbo_memory_does_not_grow_with_the_samples():
    params, x = small_params(), synthetic_images(50)

    def peak_bytes(num_samples):
        tracemalloc.start()
        evaluate_elbo(params, x, np.random.default_rng(0), num_samples, floats_per_chunk=50 * 800)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    few, many = peak_bytes(4), peak_bytes(400)  # a whole (400, 50) weight matrix alone would be 80 KB
    assert many < 1.3 * few, (few, many)


def test_two_epochs_on_real_mnist(mnist, trained_models):
    """The issue's smoke run: -ELBO from about 784 log 2 = 543 at init to below 210 after two
    epochs on the 10,000 training images (conftest's training, seed 0, after its second epoch)."""
    train_x, _, test_x, _ = mnist
    rng = np.random.default_rng(1)
    at_init = -float(elbo(*init_vae_params(np.random.default_rng(0)), train_x[:1000], rng))
    assert abs(at_init - 784 * np.log(2)) < 5
    params = trained_models[2]
    train_elbo, train_se = evaluate_elbo(params, train_x, rng, num_samples=2)
    test_elbo, test_se = evaluate_elbo(params, test_x, rng, num_samples=2)
    assert -train_elbo < 210
    assert np.isfinite(test_elbo) and abs(test_elbo - train_elbo) < 5


def test_non_finite_parameters_stop_training_before_they_are_saved():
    # One step per epoch: the loss is computed before the update and stays finite, so only
    # the check of the parameters can see the NaN gradient step.
    saved = []
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(small_params(), synthetic_images(), epochs=2, batch_size=300, lr=float("nan"),
              on_epoch_end=lambda *args: saved.append(args))
    assert saved == []
