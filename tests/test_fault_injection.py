"""Fault injection: training and run_all.py killed at random points (seeded), by SIGINT,
SIGTERM and SIGKILL, at the steps of their writers (tests/kill_at.py) or at a random moment
(run_all.py's killed runs with the parts of the study that only compute stood in for: see its test).

After each kill, the run is done again as its message says (training: with --resume if the
checkpoint exists), and the folder must then hold the very bytes of an uninterrupted run, and
nothing else: no temporary file, lock or half-swapped folder. The results files are compared
without the one field that measures time.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow

KILL_AT = Path(__file__).with_name("kill_at.py")
STAND_IN = Path(__file__).with_name("stand_in_study.py")
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]


def run(folder, entry, at=("", 0), signum=signal.SIGKILL, steps_file=os.devnull):
    """Run entry (["-m", module, ...] or [script, ...]) in folder, sending signum at step at:
    (description, n), the nth step so described (tests/kill_at.py)."""
    return subprocess.run([sys.executable, str(KILL_AT), at[0], str(at[1]), str(int(signum)), str(steps_file),
                           *entry], cwd=folder, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MPLBACKEND": "Agg"})


def run_and_signal_after(folder, command, seconds, signum):
    """Run command in folder and send it signum after seconds (or let it finish first)."""
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "MPLBACKEND": "Agg"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def snapshot(folder):
    """{path: bytes} of every file under folder, hidden ones too; .json without its time field."""
    files = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() or path.is_symlink():
            content = path.read_bytes()
            if path.suffix == ".json":
                content = json.loads(content)
                content.pop("train_seconds", None)
                content.get("training", {}).pop("train_seconds", None)
            files[str(path.relative_to(folder))] = content
    return files


def differences(found, expected):
    """The paths whose content differs, or that only one side has: a readable assertion message."""
    return sorted(name for name in set(found) | set(expected) if found.get(name) != expected.get(name))


def assert_killed(result, signum):
    if signum == signal.SIGKILL:
        assert result.returncode == -signal.SIGKILL, result.stderr
    elif result.returncode != 0:  # a finished run (the signal came too late) is no failure
        # The last line (a quick run may warn before it), and no traceback.
        assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.splitlines()[-1].startswith("interrupted"), result.stderr


def step_at(steps, i):
    """(description, n) of the i-th step (0-based) of a run: the n-th step described alike."""
    return steps[i], steps[:i + 1].count(steps[i])


def kill_points(steps, rng, count, wanted=()):
    """count steps of a run, (description, n), at least one matching each of wanted, the rest at
    random: half of them among the checkpoints' array writes, which are most of the steps."""
    chosen = [rng.choice([i for i, step in enumerate(steps) if want(step)]) for want in wanted]
    writes = [i for i, step in enumerate(steps) if step.startswith("write_array")]
    others = [i for i, step in enumerate(steps) if not step.startswith("write_array")]
    while len(chosen) < count:
        chosen.append(rng.choice(writes if len(chosen) % 2 else others))
    return [step_at(steps, i) for i in chosen]


def reference_run(tmp_path, entry):
    """entry run uninterrupted in tmp_path/reference: (its snapshot, its steps, its seconds)."""
    reference = tmp_path / "reference"
    reference.mkdir()
    started = time.perf_counter()
    assert run(reference, entry, steps_file=tmp_path / "steps").returncode == 0
    seconds = time.perf_counter() - started
    return snapshot(reference), (tmp_path / "steps").read_text().splitlines(), seconds


def test_training_killed_anywhere_resumes_to_the_same_bytes(tmp_path, mnist_dir):
    train = ["-m", "vae_autograd.train", "--epochs", "4", "--keep-epochs", "1,3", "--train-size", "300",
             "--test-size", "100", "--hidden", "20", "--eval-samples", "2", "--quiet",
             "--data-dir", str(mnist_dir)]
    expected, steps, seconds = reference_run(tmp_path, train)
    assert sorted(expected) == ["data/vae-epoch1.npz", "data/vae-epoch3.npz", "data/vae.json", "data/vae.npz"]
    rng = random.Random(18)
    # Each of the three signals at a checkpoint's array write, at another step of the writers (among
    # them a kept epoch's checkpoint synced, and renamed into place) and at a random moment.
    at_steps = kill_points(steps, rng, 8, wanted=[lambda s: s.startswith("replace data/.vae-epoch"),
                                                  lambda s: s.startswith("fsync data/.vae-epoch")])
    kills = [(at, SIGNALS[i % 3]) for i, at in enumerate(at_steps)] + [(None, signum) for signum in SIGNALS]
    assert {(at[0].startswith("write_array"), signum) for at, signum in kills if at} == \
        {(write, signum) for write in (True, False) for signum in SIGNALS}
    for i, (at, signum) in enumerate(kills):
        folder = tmp_path / f"kill{i}"
        folder.mkdir()
        if at is None:  # a random moment, on the real command line
            killed = run_and_signal_after(folder, [sys.executable, *train], rng.uniform(0, seconds), signum)
        else:
            killed = run(folder, train, at, signum)
        assert_killed(killed, signum)
        resume = ["--resume"] if (folder / "data" / "vae.npz").exists() else []
        again = run(folder, train + resume)
        assert again.returncode == 0, (i, at, signum, again.stderr)
        assert snapshot(folder) == expected, (i, at, signum, differences(snapshot(folder), expected))


def test_run_all_killed_anywhere_runs_again_to_the_same_bytes(tmp_path, mnist_dir, quick_run):
    """One folder, run after run, each killed somewhere else, then one that finishes. Between the
    runs, the output folder is either absent (not yet written, or put aside by a swap the kill
    cut in two, which the next run puts back) or the whole reference set (conftest.quick_run's).

    The killed runs take what parts 3-8 of the study return, which only compute and write
    nothing, from the reference (tests/stand_in_study.py; uninterrupted, it writes the
    reference's very bytes): a kill there could only come at a random moment, and random moments
    then fall among the start-up, training, checkpoints and writes, which are run_all.py's own.
    The run that finishes is run_all.py itself: it reuses the checkpoint the killed runs left
    (not trained again) and computes the whole study once more, in another process, to the same
    bytes: the same seed gives the same numbers."""
    expected = snapshot(quick_run["folder"])
    stand_in = [str(STAND_IN), str(quick_run["folder"] / "figures-quick"), "--quick", "--data-dir", str(mnist_dir)]
    written, steps, seconds = reference_run(tmp_path, stand_in)
    assert written == expected, differences(written, expected)
    figures = {name: content for name, content in expected.items() if name.startswith("figures-quick/")}
    rng = random.Random(18)
    kept_save = kill_points(steps, rng, 0, wanted=[lambda s: s.startswith("replace data/.vae-quick-epoch")])[0]
    swap_in = ("rename .figures-quick.PID.new", 1)
    kills = [(kept_save, signal.SIGINT),  # a kept epoch's checkpoint half saved
             (None, signal.SIGTERM),  # a random moment
             (swap_in, signal.SIGTERM),  # the folder swap, with signals held off: lands after it
             (swap_in, signal.SIGKILL)]  # between the swap's two renames: the old folder is aside
    folder = tmp_path / "killed"
    folder.mkdir()
    for at, signum in kills:
        if at is None:
            killed = run_and_signal_after(folder, [sys.executable, *stand_in], rng.uniform(0, seconds), signum)
        else:
            killed = run(folder, stand_in, at, signum)
        assert_killed(killed, signum)
        shown = {name: content for name, content in snapshot(folder).items() if name.startswith("figures-quick/")}
        assert shown in ({}, figures), (at, signum, differences(shown, figures))
    checkpoint = folder / "data" / "vae-quick.npz"
    trained = checkpoint.stat().st_mtime_ns, checkpoint.read_bytes()
    again = run(folder, [str(REPO / "run_all.py"), "--quick", "--data-dir", str(mnist_dir)])
    assert again.returncode == 0, again.stderr
    assert (checkpoint.stat().st_mtime_ns, checkpoint.read_bytes()) == trained  # reused, not trained again
    assert snapshot(folder) == expected, differences(snapshot(folder), expected)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_as_the_process_exits_changes_neither_status_nor_message(tmp_path, mnist_dir, signum):
    """A run that is over (finished, or refused) and is shutting down ignores Ctrl-C and SIGTERM:
    as Python shuts down it puts back the default handlers, and the signal would otherwise end
    a finished run by that signal, or print a traceback after its last line."""
    train = ["-m", "vae_autograd.train", "--epochs", "1", "--train-size", "100", "--test-size", "100",
             "--hidden", "20", "--eval-samples", "2", "--quiet", "--data-dir", str(mnist_dir)]
    finished = run(tmp_path, train, ("exit", 1), signum)
    assert (finished.returncode, finished.stderr) == (0, ""), finished.stderr
    for entry in (train, [str(REPO / "run_all.py"), "--quick"]):
        refused = run(tmp_path, [*entry, "--data-dir", str(tmp_path / "absent")], ("exit", 1), signum)
        assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
