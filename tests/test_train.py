"""Adam, checkpoints, resume, the training command and a real-data smoke run."""
import json
import subprocess
import sys

import numpy as np
import pytest

from vae_autograd.adam import init_adam_state
from vae_autograd.elbo import elbo
from vae_autograd.fast_grad import flat_arrays
from vae_autograd.model import init_vae_params
from vae_autograd.train import CheckpointError, evaluate_elbo, load_params, save_params, train

META = {"data_dim": 784, "hidden_dim": 20, "latent_dim": 2, "seed": 0}


def small_params(seed=0, hidden=20):
    return init_vae_params(np.random.default_rng(seed), 784, hidden, 2)


def synthetic_images(n=300, seed=1):
    return (np.random.default_rng(seed).random((n, 784)) < 0.15).astype(np.float32)


def test_checkpoint_round_trip(tmp_path):
    params = small_params()
    state = init_adam_state(flat_arrays(params))
    state["step"] = 7
    state["m"][0] += 1.5
    path = tmp_path / "vae.npz"
    save_params(path, params, META, state, epoch=3)
    loaded, meta, loaded_state, epoch = load_params(path, expect={"hidden_dim": 20})
    assert meta == META and epoch == 3 and loaded_state["step"] == 7
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


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    x = synthetic_images()
    straight = small_params()
    train(straight, x, epochs=4, seed=3)

    first = small_params()
    train(first, x, epochs=2, seed=3,
          on_epoch_end=lambda epoch, loss, sec, state: save_params(
              tmp_path / "vae.npz", first, META, state, epoch))
    resumed, _, state, epoch = load_params(tmp_path / "vae.npz")
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


def run_cli(*args, env_extra=None, cwd=None):
    import os
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "vae_autograd.train", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs: must be a positive int, got '0'"),
    (["--batch-size", "-5"], "--batch-size: must be a positive int"),
    (["--lr", "0"], "--lr: must be a positive float"),
    (["--lr", "nan"], "--lr: must be a positive float"),
    (["--epochs", "ten"], "--epochs: must be a positive int, got 'ten'"),
])
def test_cli_rejects_bad_values(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_missing_data_dir_is_one_line(tmp_path):
    result = run_cli("--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "v.npz"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "does not exist" in result.stderr


def test_cli_trains_writes_results_and_resumes(tmp_path, mnist_dir):
    out = tmp_path / "vae.npz"
    common = ["--data-dir", str(mnist_dir), "--out", str(out), "--train-size", "500",
              "--test-size", "200", "--hidden-dim", "50", "--eval-samples", "2"]
    first = run_cli("--epochs", "1", *common)
    assert first.returncode == 0, first.stderr
    assert "epoch    1/1" in first.stdout and "test  ELBO" in first.stdout
    results = json.loads(out.with_suffix(".json").read_text())
    assert results["epochs"] == 1 and len(results["train_curve"]) == 1
    assert np.isfinite(results["train_elbo"]) and np.isfinite(results["test_elbo"])

    resumed = run_cli("--epochs", "2", "--resume", *common)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout and "epoch    2/2" in resumed.stdout
    assert len(json.loads(out.with_suffix(".json").read_text())["train_curve"]) == 2

    mismatch = run_cli("--epochs", "3", "--resume", *common[:-4], "--hidden-dim", "60")
    assert mismatch.returncode == 1 and "Traceback" not in mismatch.stderr
    assert "hidden_dim=50, but 60 was requested" in mismatch.stderr


def test_two_epochs_on_real_mnist(mnist):
    """The issue's smoke run: -ELBO from about 784 log 2 = 543 at init to below 210."""
    train_x, _, test_x, _ = mnist
    params = init_vae_params(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    at_init = -float(elbo(*params, train_x[:1000], rng))
    assert abs(at_init - 784 * np.log(2)) < 5
    train(params, train_x, epochs=2, seed=0)
    train_elbo, train_se = evaluate_elbo(params, train_x, rng, num_samples=2)
    test_elbo, test_se = evaluate_elbo(params, test_x, rng, num_samples=2)
    assert -train_elbo < 210
    assert np.isfinite(test_elbo) and abs(test_elbo - train_elbo) < 5


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os
    mask = os.umask(0o022)
    try:
        save_params(tmp_path / "vae.npz", small_params(), META)
    finally:
        os.umask(mask)
    assert (tmp_path / "vae.npz").stat().st_mode & 0o777 == 0o644
