"""Running the sweep command in tests: a tiny literature-like setting (dynamic binarization, a validation
set, early stopping allowed) of a few hundred real MNIST images, and waiting for a killed sweep's workers."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO

# A few hundred images, and epochs enough (each of three steps) for a test to stop a sweep in the middle of
# a seed's training; the analyses run on a few dozen images.
EPOCHS = 20
TINY = ["--train-size", "400", "--validation-size", "100", "--test-size", "40", "--epochs", str(EPOCHS),
        "--patience", str(EPOCHS), "--gap-train-images", "20", "--iwae-images", "10"]


def sweep_command(folder, *args, setting="literature", seeds="0-1", jobs=1):
    """The command line of a tiny sweep whose files all go under folder."""
    return [sys.executable, "-m", "vae_autograd.seeds", "--setting", setting, "--seeds", seeds, "--jobs", str(jobs),
            "--work-dir", str(folder / "work"), "--out-dir", str(folder / "sweeps"), *TINY, *args]


def environment(mnist_dir):
    return {**os.environ, "MNIST_DIR": str(mnist_dir), "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}


def run_sweep(folder, mnist_dir, *args, **options):
    return subprocess.run(sweep_command(folder, *args, **options), capture_output=True, text=True,
                          env=environment(mnist_dir), timeout=600)


def workers_of(folder):
    """The pids of the processes whose command line names folder (a sweep's workers, or the sweep)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(folder).encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:  # ended while we looked
            continue
    return pids


def wait_until_gone(folder, timeout=60):
    """Wait until no process names folder (a killed sweep's workers save and end on their own)."""
    deadline = time.monotonic() + timeout
    while workers_of(folder):
        assert time.monotonic() < deadline, f"workers still running: {workers_of(folder)}"
        time.sleep(0.05)


def without_timing(value):
    """A sweep's JSON (or any part of it) without its "seconds" entries, the only ones that differ by run."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def read_json(path):
    return json.loads(Path(path).read_text())
