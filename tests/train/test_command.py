"""The training command (python -m vae_autograd.train, run_training): bad values, refusals
before any work, resuming, kept epochs, divergence and interruption never lose trained work.
"""
import errno
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import vae_autograd.io.files as files
import vae_autograd.train.command as command
import vae_autograd.train.loop as training
from tests.helpers import META, REPO, assert_one_line_error, dir_listing, numpy_mlp, small_params, synthetic_images
from vae_autograd.core.fast_grad import flat_arrays
from vae_autograd.core.model import decoder, encoder
from vae_autograd.io.mnist import load_binarized_mnist
from vae_autograd.report.conform import schema_problems
from vae_autograd.report.schema import Training
from vae_autograd.train.checkpoints import CheckpointError, load_params, save_params
from vae_autograd.train.command import run_training
from vae_autograd.train.loop import TrainingDiverged
from vae_autograd.train.options import TrainConfig
from vae_autograd.train.reuse import kept_models, reusable_model, trained_model


def run_cli(*args, env_extra=None, cwd=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "vae_autograd.train", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs: must be a positive int, got '0'"),
    (["--batch-size", "-5"], "--batch-size: must be a positive int"),
    (["--lr", "0"], "--lr: must be a positive float"),
    (["--lr", "nan"], "--lr: must be a positive float"),
    (["--epochs", "ten"], "--epochs: must be a positive int, got 'ten'"),
    (["--seed", "-5"], "--seed: must be a non-negative int, got '-5'"),
    (["--eval-samples", "1"], "--eval-samples: must be an int >= 2 (a standard error needs two samples)"),
    (["--test-size", "10001"], "--test-size: must be an int in 1..10000"),
    (["--data-dir", ""], "--data-dir: must not be empty"),
    (["--out", "results.json"], "--out: must end in .npz (not .json: the results go beside the checkpoint"),
    (["--out", "RESULTS.JSON"], "--out: must end in .npz"),
    (["--out", "data/vae"], "--out: must end in .npz"),
    (["--epochs", "3", "--keep-epochs", "2,5"], "keep_epochs [5] lie beyond epochs 3"),
    (["--binarization", "random"], "--binarization: must be threshold or dynamic, got 'random'"),
    (["--binarization", "Dynamic"], "--binarization: must be threshold or dynamic, got 'Dynamic'"),
    (["--validation-size", "-1"], "--validation-size: must be an int in 0..59999, got '-1'"),
    (["--validation-size", "60000"], "--validation-size: must be an int in 0..59999, got '60000'"),
    (["--validation-size", "half"], "--validation-size: must be an int in 0..59999, got 'half'"),
    (["--train-size", "300", "--validation-size", "300"],
     "validation_size 300 leaves no training images of train_size 300: choose a --validation-size below --train-size"),
    (["--validation-size", "10000"], "validation_size 10000 leaves no training images of train_size 10000"),
    (["--validation-size", "100", "--patience", "0"], "--patience: must be a positive int, got '0'"),
    (["--patience", "5"],
     "patience 5 needs a validation set to watch: add --validation-size N, or leave --patience out"),
    (["--hidden", "256,,x"], "--hidden/--hidden-dim: must be positive layer widths separated by commas, such as 500 "
                             "or 256,128, got '256,,x'"),
    (["--hidden", "0"], "--hidden/--hidden-dim: must be positive layer widths separated by commas, such as 500 or "
                        "256,128, got '0'"),
    (["--hidden", ""], "--hidden/--hidden-dim: must be positive layer widths separated by commas, such as 500 or "
                       "256,128, got ''"),
    (["--hidden", "256,-128"], "got '256,-128'"),
    (["--hidden", "256,,128"], "got '256,,128'"),  # a typo, not two layers
    (["--hidden-dim", "2.5"], "--hidden/--hidden-dim: must be positive layer widths separated by commas"),
    (["--activation", "sigmoid"], "--activation: must be one of tanh, relu, got 'sigmoid'"),
])
def test_cli_rejects_bad_values(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    # One line, no usage screen before it, and where to look for the rules.
    assert result.stderr.startswith("error: ") and result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.strip().endswith("see python -m vae_autograd.train --help")


def test_cli_missing_data_dir_is_one_line(tmp_path):
    result = run_cli("--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "v.npz"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "does not exist" in result.stderr


def test_cli_trains_writes_results_and_resumes(tmp_path, mnist_dir):
    out = tmp_path / "vae.npz"
    common = ["--data-dir", str(mnist_dir), "--out", str(out), "--train-size", "500",
              "--test-size", "200", "--hidden", "50", "--eval-samples", "2"]
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

    mismatch = run_cli("--epochs", "3", "--resume", *common[:-4], "--hidden", "60")
    assert mismatch.returncode == 1 and "Traceback" not in mismatch.stderr
    assert "hidden=[50], but [60] was requested" in mismatch.stderr


def synthetic_data(train_n=300, test_n=100):
    """load_binarized_mnist's four arrays, from random images (the labels are not used)."""
    return (synthetic_images(train_n), np.zeros(train_n, np.int64),
            synthetic_images(test_n, seed=2), np.zeros(test_n, np.int64))


def small_config(out, **changes):
    return TrainConfig(**{**dict(epochs=1, hidden=(20,), train_size=300, test_size=100, eval_samples=2,
                                 out=out, quiet=True), **changes})


def test_cli_refuses_to_overwrite_a_checkpoint_before_any_work(tmp_path):
    out = tmp_path / "vae.npz"
    save_params(out, small_params(), META, epoch=200)
    saved = out.read_bytes()
    # The data folder does not exist: the refusal must come before the data are read.
    result = run_cli("--epochs", "1", "--out", str(out), "--data-dir", str(tmp_path / "nowhere"))
    assert_one_line_error(result, f"{out} already holds a checkpoint", "--resume", "--force")
    assert out.read_bytes() == saved


def test_force_overwrites_on_purpose(tmp_path):
    out = tmp_path / "vae.npz"
    save_params(out, small_params(seed=5), META, epoch=200)
    run_training(small_config(out, force=True), log=lambda line: None, data=synthetic_data())
    assert load_params(out)[3] == 1
    with pytest.raises(CheckpointError, match="--force"):
        run_training(small_config(out), log=lambda line: None, data=synthetic_data())


@pytest.mark.parametrize("inside_a_file, message", [
    (False, "is a folder; name a file inside it"),
    (True, "is a file, not a folder"),
])
def test_cli_bad_out_path_is_one_line_before_any_work(tmp_path, inside_a_file, message):
    out = tmp_path / "folder.npz"
    out.mkdir()
    if inside_a_file:
        (tmp_path / "file.txt").write_text("x")
        out = tmp_path / "file.txt" / "vae.npz"
    result = run_cli("--epochs", "1", "--out", str(out), "--data-dir", str(tmp_path / "nowhere"))
    assert_one_line_error(result, "--out", message)


def test_cli_read_only_folder_is_refused_before_any_work(tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses even root
        folder = "/sys"
    else:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o500)
    result = run_cli("--epochs", "1", "--out", f"{folder}/vae.npz", "--data-dir", str(tmp_path / "nowhere"))
    assert_one_line_error(result, f"cannot write in {folder}", "choose a writable folder")


def test_resumed_run_reports_the_true_curve_from_the_checkpoint(tmp_path):
    out = tmp_path / "vae.npz"
    _, straight = run_training(small_config(tmp_path / "straight.npz", epochs=3), log=lambda line: None,
                               data=synthetic_data())
    run_training(small_config(out, epochs=2), log=lambda line: None, data=synthetic_data())
    # An older run's results file beside the checkpoint must not leak into the curve.
    out.with_suffix(".json").write_text(json.dumps({"train_curve": [1.0, 2.0, 3.0, 4.0]}))
    _, resumed = run_training(small_config(out, epochs=3, resume=True), log=lambda line: None,
                              data=synthetic_data())
    assert resumed["train_curve"] == straight["train_curve"] and len(resumed["train_curve"]) == 3
    written = out.with_suffix(".json").read_text()
    assert json.loads(written, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON")) == resumed


def test_cli_divergence_stops_and_keeps_the_good_checkpoint(tmp_path, mnist_dir):
    out = tmp_path / "vae.npz"
    save_params(out, small_params(), META, epoch=7)
    saved = out.read_bytes()
    result = run_cli("--lr", "10", "--epochs", "2", "--train-size", "500", "--test-size", "100",
                     "--hidden", "20", "--data-dir", str(mnist_dir), "--out", str(out), "--force")
    assert_one_line_error(result, "diverged in epoch 1", "smaller --lr", f"{out} is unchanged")
    assert "nan +- nan" not in result.stdout
    assert out.read_bytes() == saved and not out.with_suffix(".json").exists()


def test_divergence_while_resuming_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "vae.npz"
    run_training(small_config(out), log=lambda line: None, data=synthetic_data())
    saved, results = out.read_bytes(), out.with_suffix(".json").read_bytes()
    # A loss that turns non-finite in the resumed epoch (valid data cannot, at this lr).
    real_elbo = training.elbo_unchecked
    monkeypatch.setattr(training, "elbo_unchecked", lambda *args: real_elbo(*args) * np.nan)
    with pytest.raises(TrainingDiverged, match="diverged in epoch 2.*smaller --lr.*is unchanged"):
        run_training(small_config(out, epochs=3, resume=True), log=lambda line: None, data=synthetic_data())
    assert out.read_bytes() == saved and out.with_suffix(".json").read_bytes() == results


def test_keep_epochs_keeps_exactly_those_checkpoints_and_they_resume_exactly(tmp_path):
    quiet = {"log": lambda line: None, "data": synthetic_data()}
    straight, _ = run_training(small_config(tmp_path / "straight.npz", epochs=4), **quiet)
    config = small_config(tmp_path / "vae.npz", epochs=4, keep_epochs=(1, 3))
    run_training(config, **quiet)
    assert sorted(p.name for p in tmp_path.glob("vae-*.npz")) == ["vae-epoch1.npz", "vae-epoch3.npz"]
    one_epoch, _ = run_training(small_config(tmp_path / "one.npz", epochs=1), **quiet)
    kept, _, _, epoch, curve = load_params(config.kept_path(1))
    assert epoch == 1 and len(curve) == 1
    for a, b in zip(flat_arrays(kept), flat_arrays(one_epoch)):
        np.testing.assert_array_equal(a, b)
    resumed, _ = run_training(small_config(config.kept_path(3), epochs=4, resume=True), **quiet)
    for a, b in zip(flat_arrays(resumed), flat_arrays(straight)):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "vae.npz").unlink()  # a kept checkpoint is protected like --out itself
    with pytest.raises(CheckpointError, match="vae-epoch1.npz already holds a checkpoint.*--force"):
        run_training(config, **quiet)


def test_sigterm_stops_training_like_ctrl_c(tmp_path, mnist_dir):
    out = tmp_path / "vae.npz"
    process = subprocess.Popen(
        [sys.executable, "-m", "vae_autograd.train", "--epochs", "1000", "--train-size", "300",
         "--test-size", "100", "--hidden", "20", "--data-dir", str(mnist_dir), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "epoch    1/1000" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr.startswith("interrupted; the last finished epoch is saved in") and "Traceback" not in stderr
    assert load_params(out)[3] >= 1
    assert not list(tmp_path.glob(".*.part"))


def run_main(monkeypatch, mnist_dir, *args):
    """python -m vae_autograd.train in this process on 100 real images: (exit status, stderr's lines)."""
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # leave pytest's own handlers in place
    monkeypatch.setattr(command, "keep_freed_memory", lambda: None)
    with pytest.raises(SystemExit) as stop:
        command.main(["--data-dir", str(mnist_dir), "--train-size", "100", "--test-size", "50", "--quiet", *args])
    return stop.value.code


def test_a_full_disk_is_one_line_and_keeps_the_last_saved_epoch(tmp_path, monkeypatch, mnist_dir, capsys):
    out = tmp_path / "vae.npz"
    real_fsync, calls = os.fsync, []

    def fsync_until_the_disk_is_full(fd):
        calls.append(fd)
        if len(calls) > 1:  # the first save (epoch 1) goes through, the second finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync_until_the_disk_is_full)
    code = run_main(monkeypatch, mnist_dir, "--out", str(out), "--epochs", "3")
    assert code.startswith(f"error: could not write beside {out} (No space left on device); the last finished "
                           "epoch is saved in") and "\n" not in code
    assert load_params(out)[3] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.npz"]  # no temporary left


def test_ctrl_c_before_the_first_epoch_of_a_forced_run_says_the_old_model_is_kept(tmp_path, monkeypatch, mnist_dir,
                                                                                   capsys):
    out = tmp_path / "vae.npz"
    save_params(out, small_params(), META, epoch=7)
    before = out.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "train", interrupted)
    assert run_main(monkeypatch, mnist_dir, "--out", str(out), "--force", "--hidden", "20") == 130
    assert capsys.readouterr().err == f"interrupted; no epoch of this run finished, and {out} is as it was\n"
    assert out.read_bytes() == before


def test_a_name_too_long_for_the_temporaries_is_refused_before_any_work(tmp_path):
    result = run_cli("--out", str(tmp_path / ("a" * 240 + ".npz")), "--data-dir", str(tmp_path / "nowhere"))
    assert_one_line_error(result, "is too long to write safely here", "choose a shorter name")
    result = run_cli("--out", str(tmp_path / ("a" * 228 + ".npz")), "--epochs", "3", "--keep-epochs", "1",
                     "--data-dir", str(tmp_path / "nowhere"))
    assert_one_line_error(result, "a kept epoch's checkpoint", "too long")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_while_a_kept_epoch_is_saved_loses_nothing_on_resume(tmp_path, monkeypatch):
    quiet = {"log": lambda line: None, "data": synthetic_data()}
    straight = small_config(tmp_path / "straight.npz", epochs=3, keep_epochs=(2,))
    run_training(straight, **quiet)
    config = small_config(tmp_path / "vae.npz", epochs=3, keep_epochs=(2,))
    real_save = command.save_params

    def interrupted_at_the_kept_save(path, *args, **kwargs):
        if path == config.kept_path(2):
            raise KeyboardInterrupt  # as Ctrl-C, SIGTERM or SIGKILL would, before the rename
        real_save(path, *args, **kwargs)

    monkeypatch.setattr(command, "save_params", interrupted_at_the_kept_save)
    with pytest.raises(KeyboardInterrupt):
        run_training(config, **quiet)
    assert load_params(config.out)[3] == 2 and not config.kept_path(2).exists()
    monkeypatch.setattr(command, "save_params", real_save)
    run_training(small_config(config.out, epochs=3, keep_epochs=(2,), resume=True), **quiet)
    for mine, reference in ((config.out, straight.out), (config.kept_path(2), straight.kept_path(2))):
        assert mine.read_bytes() == reference.read_bytes()


def test_kept_models_are_trained_one_from_another_and_an_interrupted_one_is_resumed(tmp_path):
    quiet = {"log": lambda line: None, "data": synthetic_data()}
    reference = small_config(tmp_path / "reference" / "vae.npz", epochs=4, keep_epochs=(1, 3))
    run_training(reference, **quiet)
    config = small_config(tmp_path / "vae.npz", epochs=4, keep_epochs=(1, 3))
    models = kept_models(config, quiet["data"], log=lambda line: None)
    assert sorted(models) == [1, 3]
    for epoch, params in models.items():
        for a, b in zip(flat_arrays(params), flat_arrays(load_params(reference.kept_path(epoch))[0])):
            np.testing.assert_array_equal(a, b)
    # An interrupted run leaves the epoch-3 checkpoint at epoch 2: the next run resumes it, and is refused nothing.
    two = small_config(tmp_path / "two.npz", epochs=2)
    run_training(two, **quiet)
    os.replace(two.out, config.kept_path(3))
    resumed = kept_models(config, quiet["data"], log=lambda line: None)
    assert load_params(config.kept_path(3))[3] == 3
    for a, b in zip(flat_arrays(resumed[3]), flat_arrays(load_params(reference.kept_path(3))[0])):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.glob("vae*")) == ["vae-epoch1.json", "vae-epoch1.npz", "vae-epoch3.json",
                                                             "vae-epoch3.npz"]


def test_outputs_never_replace_an_input_or_a_symlink_before_any_work(tmp_path, mnist_dir):
    real = tmp_path / "real"
    real.mkdir()
    for source in mnist_dir.iterdir():
        if source.suffix == ".gz":
            (real / source.name).write_bytes(source.read_bytes())
    labels = real / "t10k-labels-idx1-ubyte.gz"
    result = run_cli("--data-dir", str(real), "--out", str(labels), "--force")
    assert result.returncode == 2 and "--out: must end in .npz" in result.stderr
    assert labels.read_bytes() == (mnist_dir / labels.name).read_bytes()
    target = tmp_path / "target.npz"
    os.symlink(target, tmp_path / "link.npz")
    result = run_cli("--data-dir", str(real), "--out", str(tmp_path / "link.npz"))
    assert_one_line_error(result, "is a symbolic link", str(target))
    assert not target.exists()


def test_a_results_file_is_reused_only_with_the_checkpoint_it_describes(tmp_path):
    quiet = {"log": lambda line: None, "data": synthetic_data()}
    config = small_config(tmp_path / "vae.npz", epochs=2)
    run_training(config, **quiet)
    assert reusable_model(config, retrain=False) is not None
    other = small_config(tmp_path / "other.npz", epochs=2, seed=7)
    run_training(other, **quiet)
    os.replace(other.results_path, config.results_path)  # another seed's results beside this checkpoint
    assert reusable_model(config, retrain=False) is None  # so run_all evaluates it again


def test_run_all_resumes_an_interrupted_training_but_never_extends_a_finished_one(tmp_path):
    quiet = {"log": lambda line: None, "data": synthetic_data()}
    straight = small_config(tmp_path / "straight.npz", epochs=3)
    run_training(straight, **quiet)
    config = small_config(tmp_path / "vae.npz", epochs=3)
    interrupted = small_config(config.out, epochs=1)
    run_training(interrupted, **quiet)
    config.results_path.unlink()  # as a run stopped after epoch 1 leaves it: no results file yet
    assert reusable_model(config, retrain=False) is None
    trained_model(config, False, None, quiet["data"], log=lambda line: None)
    assert config.out.read_bytes() == straight.out.read_bytes()
    finished = small_config(tmp_path / "fifty.npz", epochs=1)  # a user's finished run of fewer epochs
    run_training(finished, **quiet)
    with pytest.raises(CheckpointError, match="fifty.npz does not match .* has 1 epochs, but 3 were requested"):
        reusable_model(small_config(finished.out, epochs=3), retrain=False)


def test_a_json_beside_a_new_checkpoint_is_not_replaced_without_force(tmp_path):
    quiet = {"log": lambda line: None, "data": synthetic_data()}
    config = small_config(tmp_path / "notes.npz", epochs=1)
    config.results_path.write_text("my own notes\n")
    with pytest.raises(CheckpointError, match="notes.json exists, but no checkpoint .*notes.npz.*--force"):
        run_training(config, **quiet)
    assert config.results_path.read_text() == "my own notes\n" and not config.out.exists()
    run_training(small_config(config.out, epochs=1, force=True), **quiet)
    assert json.loads(config.results_path.read_text())["epochs"] == 1


@pytest.mark.parametrize("option, value", [("--hidden", "1000000000"), ("--latent-dim", "1000000000"),
                                           ("--hidden", "500,1000000,500")])
def test_sizes_that_cannot_fit_in_memory_are_refused_before_any_work(tmp_path, option, value):
    result = run_cli(option, value, "--out", str(tmp_path / "vae.npz"), "--data-dir", str(tmp_path / "none"))
    # Refused before the (missing) data are looked for, and before anything is allocated.
    assert result.returncode == 1 and result.stderr.startswith("error: a model of --hidden ")
    assert "GiB, more than the " in result.stderr and "this machine has available; choose smaller sizes" \
        in result.stderr and result.stderr.count("\n") == 1
    assert dir_listing(tmp_path) == []


def test_running_out_of_memory_anyway_is_one_line(tmp_path, monkeypatch, mnist_dir, capsys):
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(command, "train", no_memory)  # as a limit no estimate foresaw would
    status = run_main(monkeypatch, mnist_dir, "--out", str(tmp_path / "vae.npz"))
    assert status == "error: out of memory; no epoch finished, nothing saved; choose smaller sizes or free some memory"


def test_resuming_checks_the_kept_checkpoints_it_would_keep_or_write(tmp_path):
    quiet = {"log": lambda line: None, "data": synthetic_data()}
    config = small_config(tmp_path / "vae.npz", epochs=2)
    run_training(config, **quiet)
    lines = []
    run_training(small_config(config.out, epochs=3, keep_epochs=(1,), resume=True), log=lines.append,
                 data=quiet["data"])
    assert any(line.startswith(f"{config.kept_path(1)} is not written: epoch 1 is past") for line in lines)
    save_params(config.kept_path(4), small_params(), {**config.metadata(), "seed": 5}, epoch=4)
    with pytest.raises(CheckpointError, match=r"vae-epoch4.npz has seed=5, but 0 was requested"):
        run_training(small_config(config.out, epochs=5, keep_epochs=(4,), resume=True), **quiet)
    save_params(config.kept_path(2), small_params(), config.metadata(), epoch=1)
    with pytest.raises(CheckpointError, match=r"vae-epoch2.npz holds epoch 1, not 2; move it away"):
        run_training(small_config(config.out, epochs=5, keep_epochs=(2,), resume=True), **quiet)


def signal_while_starting(command, interrupt, cwd):
    """Start command, send interrupt while it imports (once its start-up handler is in place,
    seen in /proc), and return its (exit status, stdout, stderr)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    status = f"/proc/{process.pid}/status"
    while process.poll() is None:
        caught = next(line for line in open(status) if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)):
            break
    process.send_signal(interrupt)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads a process's signal handlers in /proc")
@pytest.mark.parametrize("interrupt", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("entry_point", [["-m", "vae_autograd.train"], [str(REPO / "run_all.py"), "--quick"]])
def test_an_interrupt_during_the_imports_is_one_line(tmp_path, entry_point, interrupt):
    status, stdout, stderr = signal_while_starting([sys.executable, *entry_point], interrupt, tmp_path)
    assert (status, stdout, stderr) == (130, "", "interrupted while starting; nothing was written\n")
    assert dir_listing(tmp_path) == []


def test_a_second_training_on_the_same_out_is_refused_naming_the_first(tmp_path, mnist_dir):
    out = tmp_path / "vae.npz"
    args = ["--epochs", "1000", "--train-size", "300", "--test-size", "100", "--hidden", "20",
            "--data-dir", str(mnist_dir), "--out", str(out)]
    first = subprocess.Popen([sys.executable, "-m", "vae_autograd.train", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "epoch    1/1000" in first.stdout.readline()
        second = run_cli(*args, "--force", "--seed", "7")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert second.returncode == 1 and second.stderr == (
        f"error: --out {out} is being written by another process (pid {first.pid}); wait for it to end, "
        "or choose another --out\n")
    assert load_params(out)[1]["seed"] == 0 and not (tmp_path / "vae.json").exists()
    assert dir_listing(tmp_path) == ["vae.npz"]  # the first one's lock went with it


def test_cli_trains_a_relu_model_of_two_hidden_layers_that_loads_back_as_one(tmp_path, mnist_dir):
    """--hidden 256,128 --activation relu through the command line: the checkpoint holds encoder
    784-256-128-4 and decoder 2-128-256-784, records both options, and what load_params gives back
    computes relu (the numbers of a NumPy forward pass with np.maximum, not with tanh)."""
    out = tmp_path / "vae.npz"
    common = ["--data-dir", str(mnist_dir), "--out", str(out), "--train-size", "300", "--test-size", "100",
              "--eval-samples", "2", "--quiet", "--hidden", "256,128"]
    result = run_cli("--epochs", "1", *common, "--activation", "relu")
    assert result.returncode == 0, result.stderr
    (enc, dec), metadata, *_ = load_params(out)
    assert metadata["hidden"] == [256, 128] and metadata["activation"] == "relu"
    assert [W.shape for W, _ in enc] == [(784, 256), (256, 128), (128, 4)]
    assert [W.shape for W, _ in dec] == [(2, 128), (128, 256), (256, 784)]
    results = json.loads(out.with_suffix(".json").read_text())
    assert results["hidden"] == [256, 128] and results["activation"] == "relu"
    x = load_binarized_mnist(1, 5, mnist_dir)[2]
    mean, log_std = encoder(enc, x)
    hand = numpy_mlp(enc, x, "relu")
    np.testing.assert_allclose(np.concatenate([mean, log_std], axis=1), hand, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(decoder(dec, mean), numpy_mlp(dec, mean, "relu"), rtol=1e-4, atol=1e-4)
    assert not np.allclose(decoder(dec, mean), numpy_mlp(dec, mean, "tanh"), rtol=1e-4, atol=1e-4)
    mismatch = run_cli("--epochs", "2", "--resume", *common)  # --activation tanh, the default
    assert_one_line_error(mismatch, "has activation='relu', but 'tanh' was requested")


def test_a_checkpoint_and_results_from_before_hidden_and_activation_are_reused(tmp_path):
    """run_all.py reuses the committed study's checkpoint and results file, which record "hidden_dim"
    and no activation: they hold the default tanh model, and the results it passes on name its
    hidden layers and activation as a new run's do (the schema of results.json)."""
    quiet = {"log": lambda line: None, "data": synthetic_data()}
    config = small_config(tmp_path / "vae.npz", epochs=2)
    new_params, new_results = run_training(config, **quiet)
    params, metadata, state, epoch, curve = load_params(config.out)
    legacy = {("hidden_dim" if key == "hidden" else key): (value[0] if key == "hidden" else value)
              for key, value in metadata.items() if key != "activation"}
    save_params(config.out, params, legacy, state, epoch, curve)
    results = json.loads(config.results_path.read_text())
    config.results_path.write_text(json.dumps({("hidden_dim" if key == "hidden" else key): (
        value[0] if key == "hidden" else value) for key, value in results.items() if key != "activation"}))
    reused, reused_results = reusable_model(config, retrain=False)
    assert reused_results == new_results
    assert [type(layer) for net in reused for layer in net] == [tuple] * 4
    training = {k: v for k, v in reused_results.items() if k not in ("train_curve", "params_digest")}
    assert schema_problems(training, Training, "training") == []
    for a, b in zip(flat_arrays(reused), flat_arrays(new_params)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(CheckpointError, match=r"has hidden=\[20\], but \[20, 10\] was requested"):
        reusable_model(small_config(config.out, epochs=2, hidden=(20, 10)), retrain=False)
