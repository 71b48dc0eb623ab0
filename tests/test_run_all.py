"""run_all.py --quick end to end: every promised file, the log's table, readable figures; and every
refusal before any work, interrupts and full disks keeping the previous run."""
import errno
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import REPO, assert_one_line_error, hold_lock, load_run_all, unreadable_text
from vae_autograd.core.model import init_vae_params
from vae_autograd.io.files import OutputError
from vae_autograd.report.page import CAPTIONS
from vae_autograd.train.checkpoints import load_params, params_digest, save_params
from vae_autograd.train.options import TrainConfig

FIGURES = list(CAPTIONS)


def run_quick(out_dir, mnist_dir, *extra):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), "--quick", "--out-dir",
                           str(out_dir), "--data-dir", str(mnist_dir), *extra],
                          capture_output=True, text=True, env=env, cwd=out_dir.parent, timeout=600)


def test_quick_run_writes_every_promised_file(quick_run):
    out_dir = quick_run["folder"] / "figures-quick"
    for name in FIGURES:
        png = out_dir / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    results = json.loads((out_dir / "results.json").read_text())
    for key in ("training", "integration_test", "integration_train", "svi", "gradient_estimators"):
        assert key in results
    report = (out_dir / "report.md").read_text()
    for name in FIGURES:
        assert f"![{name}]({name}.png)" in report
    assert "(e) Can it exceed 1? **True**" in report and "--quick run" in report
    _, _, _, epoch, curve = load_params(quick_run["folder"] / "data" / "vae-quick.npz")
    assert epoch == results["training"]["epochs"] == 3 and len(curve) == 3
    assert not list(out_dir.glob(".*.part"))  # no temporary file left behind
    assert (out_dir / ".written-by-run_all").is_file()  # the run marks the folder as its own


def test_the_log_ends_with_each_parts_time_and_peak_memory(quick_run):
    """The table the benchmark reads: every part of the study, then the whole run, whose time is
    at least the parts' sum and whose peak is at least each part's."""
    lines = [line.split("] ", 1)[1] for line in quick_run["log"].splitlines()]
    table = lines[lines.index(next(line for line in lines if line.startswith("part ") and "peak memory" in line)):]
    rows = {line[:line.index("  ")]: line.split()[-2:] for line in table[1:]}
    assert list(rows) == ["data and model (training)", "kept checkpoints (training)", "part 3", "parts 4-5",
                          "part 6", "part 7", "part 8", "figures and report", "whole run"]
    seconds = {name: float(values[0]) for name, values in rows.items()}
    peaks = {name: float(values[1].replace(",", "")) for name, values in rows.items()}
    assert seconds["whole run"] >= sum(seconds.values()) - seconds["whole run"] - 0.1 * len(rows)
    # The quick run trains its model in the first part: the part lasts at least as long as the epochs it logs.
    epochs = sum(float(found.group(1)) for found in map(re.compile(r"  epoch +\d+/\d+ .* ([\d.]+)s ").match, lines)
                 if found)
    assert epochs > 0 and seconds["data and model (training)"] >= epochs
    assert all(100 < peak <= peaks["whole run"] for peak in peaks.values())


def test_quick_run_numbers_make_sense(quick_run):
    results = json.loads((quick_run["folder"] / "figures-quick" / "results.json").read_text())
    test = results["integration_test"]
    assert test["elbo"] < test["log_px"] and test["gap"] > 0
    assert abs(test["halved_spacing_change"]) < 0.01
    assert all(kl > -0.05 for kl in results["svi"]["kl"])


# The same seed giving the same numbers, and the checkpoint reused rather than trained again: the
# run that finishes in tests/test_fault_injection.py's run_all test, in another process.


def test_every_figure_is_readable(quick_run):
    """No text leaves its figure, overlaps another or hides under a legend, in every figure run_all.py
    --quick draws (tests.helpers.unreadable_text checks the rendered bounding boxes)."""
    figures = quick_run["figures"]
    assert sorted(figures) == sorted(FIGURES)
    problems = {name: unreadable_text(fig) for name, fig in figures.items()}
    assert {name: found for name, found in problems.items() if found} == {}


def test_bad_cli_value_is_one_line(tmp_path, mnist_dir):
    result = run_quick(tmp_path / "out", mnist_dir, "--epochs", "0")
    assert result.returncode == 2 and "must be a positive int" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error: ") and "--help" in result.stderr


# ---------------------------------------------------------------- never lose work, refuse early

# As checkpoints written before --hidden and --activation record it ("hidden_dim", no activation): run_all.py
# takes it for the default model, one tanh layer of 500, and goes on to the refusal each test is about.
QUICK_META = {"data_dim": 784, "hidden_dim": 500, "latent_dim": 2, "seed": 0, "lr": 1e-3, "batch_size": 100,
              "train_size": 2000}


def run_all(tmp_path, *args):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)


def test_epochs_is_honoured_with_quick():
    parse_args = load_run_all().parse_args
    assert parse_args(["--quick", "--epochs", "7"]).config.epochs == 7
    assert parse_args(["--quick"]).config.epochs == 3
    # The full study trains the default model, keeping the checkpoints part 8 follows along training.
    assert parse_args([]).config == TrainConfig(force=False, keep_epochs=(1, 10, 50, 100))


@pytest.mark.parametrize("latent_dim, epoch, finished, why", [
    (3, 3, False, "latent_dim=3, but 2 was requested"),
    (2, 4, False, "has 4 epochs, but 3 were requested"),
    (2, 2, True, "has 2 epochs, but 3 were requested"),  # a finished training, never extended unasked
])
def test_mismatched_params_is_refused_and_kept(tmp_path, latent_dim, epoch, finished, why):
    params_path = tmp_path / "vae.npz"
    params = init_vae_params(np.random.default_rng(0), 784, 500, latent_dim)
    save_params(params_path, params, {**QUICK_META, "latent_dim": latent_dim}, epoch=epoch)
    if finished:  # the results file its training wrote when it ended
        results = {"epochs": epoch, "params_digest": params_digest(params)}
        params_path.with_suffix(".json").write_text(json.dumps(results))
    saved = params_path.read_bytes()
    # The data folder does not exist: the refusal must come before the data are read.
    result = run_all(tmp_path, "--quick", "--params", str(params_path), "--out-dir", str(tmp_path / "out"),
                     "--data-dir", str(tmp_path / "nowhere"))
    assert_one_line_error(result, f"--params {params_path} does not match", why, "--retrain")
    assert params_path.read_bytes() == saved and not (tmp_path / "out").exists()


def test_checkpoint_with_non_finite_parameters_is_refused(tmp_path):
    params = init_vae_params(np.random.default_rng(0))
    params[0][0][1][3] = np.nan
    save_params(tmp_path / "vae.npz", params, QUICK_META, epoch=3)
    result = run_all(tmp_path, "--quick", "--params", str(tmp_path / "vae.npz"),
                     "--out-dir", str(tmp_path / "out"), "--data-dir", str(tmp_path / "nowhere"))
    assert_one_line_error(result, "non-finite parameters", "smaller --lr")
    assert not (tmp_path / "out").exists()


def make_paths(tmp_path, case):
    """(--params, --out-dir) for each kind of unusable output path."""
    params, out_dir = tmp_path / "vae.npz", tmp_path / "out"
    if case == "out-dir is a file":
        out_dir.write_text("notes")
    elif case == "params is a folder":
        params.mkdir()
    elif case == "out-dir holds other files":
        out_dir.mkdir()
        (out_dir / "thesis.tex").write_text("years of work")
    elif case == "out-dir is a folder of pictures":
        out_dir.mkdir()
        (out_dir / "holiday.png").write_bytes(b"\x89PNG")
    elif case == "params inside out-dir":
        params = out_dir / "vae.npz"
    return params, out_dir


@pytest.mark.parametrize("case, message", [
    ("out-dir is a file", "is a file; pass a folder"),
    ("params is a folder", "--params {params} is a folder"),
    ("out-dir holds other files", "holds thesis.tex, which a run does not write"),
    ("params inside out-dir", "is inside --out-dir"),
    ("out-dir is a folder of pictures", "was not written by run_all.py (it has no .written-by-run_all)"),
])
def test_bad_output_paths_are_refused_before_any_work(tmp_path, case, message):
    params, out_dir = make_paths(tmp_path, case)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = run_all(tmp_path, "--quick", "--params", str(params), "--out-dir", str(out_dir),
                     "--data-dir", str(tmp_path / "nowhere"))
    assert_one_line_error(result, message.format(params=params))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_results_path_colliding_with_the_checkpoint_is_refused(tmp_path):
    result = run_all(tmp_path, "--quick", "--params", str(tmp_path / "results.json"))
    assert result.returncode == 2 and "--params: must end in .npz" in result.stderr


@pytest.mark.parametrize("interrupt", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_is_one_line_and_keeps_the_previous_run(tmp_path, mnist_dir, interrupt):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    previous = {"prior_samples.png": b"previous png", "results.json": b"{}", "report.md": b"# previous",
                ".written-by-run_all": b"a previous run\n"}
    for name, content in previous.items():
        (out_dir / name).write_bytes(content)
    process = subprocess.Popen(
        [sys.executable, str(REPO / "run_all.py"), "--quick", "--out-dir", str(out_dir),
         "--data-dir", str(mnist_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
        # A shell's background job starts with SIGINT ignored, and Python then keeps it so.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert "training 3 epochs" in process.stdout.readline()
        process.send_signal(interrupt)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr.startswith("interrupted;") and stderr.strip().count("\n") == 0, stderr
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == previous


@pytest.mark.parametrize("locked, option", [
    ("data/vae-quick.npz", "--params"), ("data/vae-quick-epoch2.npz", "--params"), ("figures-quick", "--out-dir")])
def test_a_second_run_is_refused_before_any_work_naming_the_first(tmp_path, locked, option):
    holder = hold_lock(tmp_path / locked)
    try:
        result = run_all(tmp_path, "--quick")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1 and result.stderr == (
        f"error: {option} {locked} is being written by another process (pid {holder.pid}); wait for it to end, "
        f"or choose another {option}\n")
    assert result.stdout == ""  # nothing read, nothing trained


def test_a_full_disk_is_one_line_and_keeps_the_previous_run(tmp_path, monkeypatch):
    run_all = load_run_all()
    out_dir = tmp_path / "figures"
    out_dir.mkdir()
    (out_dir / "report.md").write_text("the previous run\n")
    (out_dir / ".written-by-run_all").write_text("a previous run\n")

    def disk_full(args, log, clock):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_all, "run_study", disk_full)
    monkeypatch.setattr(run_all, "interrupt_on_sigterm", lambda: None)
    with pytest.raises(SystemExit) as stop:
        run_all.main(["--quick", "--out-dir", str(out_dir), "--params", str(tmp_path / "vae.npz")])
    assert stop.value.code.startswith("error: could not write (No space left on device); ") and \
        "\n" not in stop.value.code
    assert (out_dir / "report.md").read_text() == "the previous run\n"


def test_out_dir_may_be_neither_a_symlink_nor_a_folder_of_inputs(tmp_path):
    check = load_run_all().check_output_paths
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(OutputError, match="--out-dir .*link is a symbolic link; pass the folder it points to"):
        check(tmp_path / "vae.npz", tmp_path / "link")
    data = tmp_path / "project" / "data" / "mnist"
    data.mkdir(parents=True)
    with pytest.raises(OutputError, match="--out-dir .*project would overwrite the run's input"):
        check(tmp_path / "vae.npz", tmp_path / "project", data)
    with pytest.raises(OutputError, match="--params .*would overwrite the run's input"):
        check(data / "train-images-idx3-ubyte.gz", tmp_path / "figures", data)
    check(tmp_path / "vae.npz", tmp_path / "figures", data)  # beside the data, not over it
