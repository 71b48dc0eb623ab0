"""Bad input to the sweep command is refused in one line, exit status 2, before anything is written; a second
sweep of a setting being swept is refused naming the first."""
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, hold_lock
from vae_autograd.seeds.__main__ import main, parse_seeds


def run_command(cwd, *args):
    return subprocess.run([sys.executable, "-m", "vae_autograd.seeds", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)


REFUSALS = {
    "an unknown setting": (["--setting", "kingma", "--seeds", "0-4"],
                           "argument --setting: unknown setting 'kingma'; choose from assignment, literature, "
                           "davidson"),
    "one unknown among several": (["--setting", "assignment,literatur", "--seeds", "0"], "unknown setting 'literatur'"),
    "an empty seed range": (["--setting", "assignment", "--seeds", "4-2"],
                            "argument --seeds: an empty range of seeds, got '4-2'; give seeds such as 0-4"),
    "no seeds at all": (["--setting", "assignment", "--seeds", ""], "an empty range of seeds, got ''"),
    "a seed that is no number": (["--setting", "assignment", "--seeds", "0-x"],
                                 "argument --seeds: must be seeds such as 0-4 or 0,2,5, got '0-x'"),
    "a negative seed": (["--setting", "assignment", "--seeds", "-1"], "argument --seeds"),
    "a range with no end": (["--setting", "assignment", "--seeds", "0-"],
                            "argument --seeds: must be seeds such as 0-4 or 0,2,5, got '0-'"),
    "more seeds than a sweep can hold": (["--setting", "assignment", "--seeds", "0-99999999999"],
                                         "argument --seeds: 100000000000 seeds, more than a sweep runs (at most "
                                         "10000), got '0-99999999999'"),
    "a validation set that leaves no training images": (
        ["--setting", "literature", "--seeds", "0-1", "--train-size", "300"],
        "validation_size 10000 leaves no training images of train_size 300: choose a --validation-size below "
        "--train-size"),
    "a validation size equal to the training size": (
        ["--setting", "assignment", "--seeds", "0", "--train-size", "500", "--validation-size", "500"],
        "validation_size 500 leaves no training images of train_size 500"),
    "hidden sizes that cannot be parsed": (["--setting", "assignment", "--seeds", "0", "--hidden", "256,,128"],
                                           "argument --hidden: must be positive layer widths separated by commas"),
    "hidden sizes that are no widths": (["--setting", "assignment", "--seeds", "0", "--hidden", "0"],
                                        "argument --hidden: must be positive layer widths"),
    "an activation that does not exist": (["--setting", "davidson", "--seeds", "0", "--activation", "sigmoid"],
                                          "argument --activation: must be one of tanh, relu, got 'sigmoid'"),
    "no worker at all": (["--setting", "assignment", "--seeds", "0", "--jobs", "0"],
                         "argument --jobs: must be a positive int, got '0'"),
    "an IWAE of no images": (["--setting", "assignment", "--seeds", "0", "--iwae-images", "0"],
                             "argument --iwae-images: must be a positive int"),
    "epochs that are no number": (["--setting", "assignment", "--seeds", "0", "--epochs", "ten"],
                                  "argument --epochs: must be a positive int, got 'ten'"),
    "patience without a validation set": (["--setting", "assignment", "--seeds", "0", "--patience", "3"],
                                          "patience 3 needs a validation set to watch"),
    "no setting": (["--seeds", "0"], "the following arguments are required: --setting"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_bad_input_is_one_line_exit_2_and_nothing_is_written(tmp_path, monkeypatch, capsys, case):
    args, message = REFUSALS[case]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(args)
    stderr = capsys.readouterr().err
    assert stopped.value.code == 2, stderr
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr and "see python -m vae_autograd.seeds --help" in stderr
    assert list(tmp_path.iterdir()) == []  # neither data/seeds nor sweeps


def test_the_command_line_refuses_in_one_line_with_status_2(tmp_path):
    result = run_command(tmp_path, "--setting", "literature", "--seeds", "0-1", "--validation-size", "60000")
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr == ("error: argument --validation-size: must be an int in 0..59999, got '60000'; "
                             "see python -m vae_autograd.seeds --help\n")
    assert list(tmp_path.iterdir()) == []


def test_seed_ranges_and_lists():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3") == [3]
    assert parse_seeds("0,2,7-9") == [0, 2, 7, 8, 9]
    assert parse_seeds("1-2,2,1") == [1, 2]  # each seed once


@pytest.mark.parametrize("locked, refusal", [
    # a second sweep of a setting, refused naming the first (its pid)
    (("data", "seeds", "assignment"), lambda err, pid: f"is being written by another process (pid {pid})" in err),
    # a sweep JSON another sweep is writing, refused naming the out dir
    (("sweeps", "assignment.json"),
     lambda err, pid: err.startswith("error: --out-dir ") and "or choose another --out-dir" in err),
], ids=["work folder", "sweep json"])
def test_what_another_sweep_is_writing_is_refused_in_one_line(tmp_path, locked, refusal):
    holder = hold_lock(tmp_path.joinpath(*locked))
    try:
        result = run_command(tmp_path, "--setting", "assignment", "--seeds", "0-1")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert refusal(result.stderr, holder.pid), result.stderr
    assert not (tmp_path / "data" / "seeds" / "assignment" / "options.json").exists()
