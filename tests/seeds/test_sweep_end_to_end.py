"""The sweep command end to end on a tiny setting of real MNIST images and two seeds: killed in the middle
and run again, it leaves the finished seed alone, resumes the other bit for bit (dynamic binarization),
and ends with the JSON of an uninterrupted sweep; its means and standard deviations are numpy's over the
rows; a failing seed is one line and the other goes on; Ctrl-C stops the workers cleanly."""
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.seeds.helpers import (
    EPOCHS,
    environment,
    read_json,
    run_sweep,
    sweep_command,
    wait_until_gone,
    without_timing,
)
from vae_autograd.core.fast_grad import flat_arrays
from vae_autograd.report.seeds import sweep_page
from vae_autograd.seeds.analysis import METRICS
from vae_autograd.seeds.outputs import FIGURE, ordered_sweeps
from vae_autograd.train.checkpoints import load_checkpoint, load_params

pytestmark = pytest.mark.slow  # each trains on real MNIST images


def seed_files(folder, seed):
    """{path: (mtime_ns, bytes)} of one seed's checkpoint, training results and analysis row."""
    work = folder / "work" / "literature"
    return {path: (path.stat().st_mtime_ns, path.read_bytes())
            for path in (work / f"seed{seed}.npz", work / f"seed{seed}.json", work / f"seed{seed}-analysis.json")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mnist_dir):
    """The sweep of two workers at once: the killed one below, of one worker, must end with its JSON and
    bytes, so the numbers are also shown not to depend on how many seeds run together."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = run_sweep(folder, mnist_dir, jobs=2)
    assert result.returncode == 0, result.stderr
    return folder, result


@pytest.fixture(scope="module")
def killed_and_rerun(tmp_path_factory, mnist_dir):
    """A sweep SIGKILLed once seed 0 is finished and seed 1 has saved an epoch, then run again."""
    folder = tmp_path_factory.mktemp("killed")
    work = folder / "work" / "literature"
    sweep = subprocess.Popen(sweep_command(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=environment(mnist_dir))
    deadline = time.monotonic() + 300
    while not ((work / "seed0-analysis.json").exists() and (work / "seed1.npz").exists()):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.01)
    sweep.kill()
    sweep.communicate()
    wait_until_gone(folder)  # its worker, told by the kernel that its parent ended, saves and ends
    epoch_at_kill = load_checkpoint(work / "seed1.npz").epoch
    before = seed_files(folder, 0)
    rerun = run_sweep(folder, mnist_dir)
    assert rerun.returncode == 0, rerun.stderr
    return {"folder": folder, "epoch_at_kill": epoch_at_kill, "seed0_before": before, "rerun": rerun}


def test_a_finished_seed_is_not_redone(killed_and_rerun):
    assert seed_files(killed_and_rerun["folder"], 0) == killed_and_rerun["seed0_before"]
    assert "literature seed 0: finished already" in killed_and_rerun["rerun"].stdout


def test_a_killed_sweep_run_again_ends_with_the_uninterrupted_json(killed_and_rerun, uninterrupted):
    # The kill came in the middle of seed 1's training, so the rerun resumed it (dynamic binarization).
    assert 1 <= killed_and_rerun["epoch_at_kill"] < EPOCHS
    log = (killed_and_rerun["folder"] / "work" / "literature" / "seed1.log").read_text()
    assert f"resuming from {killed_and_rerun['folder'] / 'work' / 'literature' / 'seed1.npz'} at epoch" in log
    resumed = read_json(killed_and_rerun["folder"] / "sweeps" / "literature.json")
    straight = read_json(uninterrupted[0] / "sweeps" / "literature.json")
    assert without_timing(resumed) == without_timing(straight)
    assert resumed.keys() == straight.keys() and resumed["seconds"].keys() == straight["seconds"].keys()


def test_a_resumed_dynamic_binarization_seed_has_bit_identical_parameters(killed_and_rerun, uninterrupted):
    resumed = load_checkpoint(killed_and_rerun["folder"] / "work" / "literature" / "seed1.npz")
    straight = load_checkpoint(uninterrupted[0] / "work" / "literature" / "seed1.npz")
    assert resumed.metadata["binarization"] == "dynamic" and resumed.epoch == straight.epoch
    for got, want in zip(flat_arrays(resumed.params) + flat_arrays(resumed.validation.best_params),
                         flat_arrays(straight.params) + flat_arrays(straight.validation.best_params)):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert (killed_and_rerun["folder"] / "work" / "literature" / "seed1.npz").read_bytes() == \
        (uninterrupted[0] / "work" / "literature" / "seed1.npz").read_bytes()


def test_means_and_standard_deviations_are_numpys_over_the_rows(uninterrupted):
    sweep = read_json(uninterrupted[0] / "sweeps" / "literature.json")
    assert sweep["seeds"] == [0, 1] and [row["seed"] for row in sweep["rows"]] == [0, 1]
    assert sweep["rows"][0]["test_log_px"] != sweep["rows"][1]["test_log_px"]  # two models, not one twice
    for metric in METRICS:
        values = np.array([row[metric] for row in sweep["rows"]], np.float64)
        assert sweep["mean"][metric] == pytest.approx(np.mean(values), rel=1e-12, abs=1e-12), metric
        assert sweep["sd"][metric] == pytest.approx(np.std(values, ddof=1), rel=1e-12, abs=1e-12), metric
    row = sweep["rows"][0]
    assert row["iwae_minus_log_px"] == pytest.approx(row["iwae"] - row["log_px_on_iwae_images"], abs=1e-9)
    assert row["test_threshold_log_px"] is not None and row["analysed"]["gap_train_images"] == 20


def test_the_page_is_a_function_of_the_jsons_and_the_figure_is_drawn(uninterrupted):
    out = uninterrupted[0] / "sweeps"
    assert (out / "report.md").read_text() == sweep_page(ordered_sweeps(out), FIGURE)
    assert (out / FIGURE).read_bytes()[:4] == b"\x89PNG"
    assert "| Davidson et al. (2018) |  | 10,000 | -135.73 ± 0.83 |  |" in (out / "report.md").read_text()
    assert "| literature | 2 | 40 / 10 |" in (out / "report.md").read_text()


def test_a_finished_sweep_run_again_starts_no_worker_and_rewrites_the_same_bytes(uninterrupted, mnist_dir):
    folder, _ = uninterrupted
    outputs = {path: path.read_bytes() for path in (folder / "sweeps").iterdir()}
    again = run_sweep(folder, mnist_dir)
    assert again.returncode == 0 and "started" not in again.stdout, again.stdout
    assert again.stdout.count("finished already") == 2
    assert {path: path.read_bytes() for path in (folder / "sweeps").iterdir()} == outputs


def test_a_work_folder_of_other_options_is_refused_before_any_work(uninterrupted, mnist_dir):
    folder, _ = uninterrupted
    listing = sorted((folder / "work").rglob("*"))
    result = run_sweep(folder, mnist_dir, "--epochs", "5")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"holds seeds trained with epochs={EPOCHS}, not 5; move it away or pass another --work-dir" in result.stderr
    assert sorted((folder / "work").rglob("*")) == listing


def test_a_failing_seed_is_one_line_naming_its_log_and_the_other_seed_goes_on(tmp_path, mnist_dir):
    broken = tmp_path / "work" / "assignment" / "seed1.npz"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a checkpoint")
    result = run_sweep(tmp_path, mnist_dir, setting="assignment", jobs=2)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if "assignment seed 1: failed" in line]
    assert len(failed) == 1 and "is not a vae_autograd checkpoint" in failed[0]
    assert str(tmp_path / "work" / "assignment" / "seed1.log") in failed[0]
    assert (tmp_path / "work" / "assignment" / "seed0-analysis.json").exists()  # the other seed finished
    assert not (tmp_path / "sweeps" / "assignment.json").exists()  # no mean over the seeds that are left
    assert result.stderr == "error: 1 of 2 seeds failed (assignment seed 1); each one's log says why\n"


def test_ctrl_c_stops_every_worker_cleanly_and_the_sweep_resumes(tmp_path, mnist_dir):
    work = tmp_path / "work" / "assignment"
    sweep = subprocess.Popen(sweep_command(tmp_path, setting="assignment", jobs=2), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=environment(mnist_dir))
    deadline = time.monotonic() + 300
    while not ((work / "seed0.npz").exists() and (work / "seed1.npz").exists()):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.01)
    os.kill(sweep.pid, signal.SIGINT)  # the sweep alone: it stops its workers itself
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130
    assert stderr == ("interrupted; the seeds that finished are kept, the others resume from their last saved "
                      "epoch on the next sweep\n")
    wait_until_gone(tmp_path, timeout=5)  # the workers ended before the sweep did
    leftovers = [p.name for p in tmp_path.rglob(".*") if p.suffix in (".part", ".lock")]
    assert leftovers == []
    logs = [(work / f"seed{seed}.log").read_text() for seed in (0, 1)]
    assert all("interrupted; seed" in log or "sweep event: {\"step\": \"analysed\"" in log for log in logs), logs
    again = run_sweep(tmp_path, mnist_dir, setting="assignment", jobs=2)
    assert again.returncode == 0, again.stderr
    assert read_json(tmp_path / "sweeps" / "assignment.json")["seeds"] == [0, 1]


def test_a_row_that_does_not_describe_its_checkpoint_is_computed_again(uninterrupted, mnist_dir, tmp_path):
    shutil.copytree(uninterrupted[0], tmp_path, dirs_exist_ok=True)
    row_path = tmp_path / "work" / "literature" / "seed0-analysis.json"
    stale = read_json(row_path)
    row_path.write_text(json.dumps({**stale, "params_digest": "0" * 64, "test_log_px": 0.0}))
    untouched = seed_files(tmp_path, 1)
    again = run_sweep(tmp_path, mnist_dir)
    assert again.returncode == 0, again.stderr
    assert "literature seed 0: started" in again.stdout and "literature seed 1: finished already" in again.stdout
    assert without_timing(read_json(row_path)) == without_timing(stale)  # its own numbers, computed again
    assert seed_files(tmp_path, 1) == untouched


def test_a_davidson_seed_trains_and_is_analysed_with_its_relu_architecture(tmp_path, mnist_dir):
    # Fewer images analysed than the other tiny sweeps: a relu model's quadrature is the costly part.
    result = run_sweep(tmp_path, mnist_dir, "--test-images", "10", "--gap-train-images", "5", setting="davidson",
                       seeds="0", jobs=1)
    assert result.returncode == 0, result.stderr
    sweep = read_json(tmp_path / "sweeps" / "davidson.json")
    assert sweep["options"]["hidden"] == [256, 128] and sweep["options"]["activation"] == "relu"
    assert sweep["sd"]["test_log_px"] is None and sweep["rows"][0]["test_amortization_gap"] > 0  # one seed
    (enc, dec), *_ = load_params(tmp_path / "work" / "davidson" / "seed0.npz")
    assert [W.shape[1] for W, _ in enc] == [256, 128, 4] and [W.shape[1] for W, _ in dec] == [128, 256, 784]
    assert "784-256-128-relu encoder" in (tmp_path / "sweeps" / "report.md").read_text()
