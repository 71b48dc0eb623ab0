"""The study's speed and memory against the targets of the README, measured in one run.

    python benchmarks/bench_study.py [--data-dir DIR] [--skip-suite] [--train-rounds 5]

What it runs, in this order, on this machine:
  1. ``python run_all.py --retrain`` from a clean start in a temporary folder (its own
     checkpoints and figures; nothing of the repository's is touched), and reads the table of
     each part's seconds and peak resident memory that run_all.py's log ends with;
  2. ``benchmarks/bench_train.py``: the training step against its hand-derived NumPy floor,
     interleaved in one process;
  3. the README's test command, ``python -m pytest -q`` (unless --skip-suite).
It prints each figure against its target. These machines are noisy, so the targets that are
ratios (training step, analyses against training) are measured within one run, and the
1-minute load average is printed at start and end: a load above the number of cores means
other jobs shared the machine and the absolute times are inflated.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRAINING_PARTS = ("data and model (training)", "kept checkpoints (training)")
ANALYSIS_PARTS = ("part 3", "parts 4-5", "part 6", "part 7", "part 8")
TARGETS = {  # name: (limit, unit, what)
    "training step": (1.05, "x", "s/epoch of vae_autograd.train against the hand-derived NumPy floor"),
    "analyses": (0.6, "x", "parts 3-8 against the training of the same run"),
    "whole study": (180.0, "s", "python run_all.py from a clean start"),
    "peak memory": (1500.0, "MB", "peak resident memory of run_all.py (MB = 10^6 bytes)"),
    "suite": (90.0, "s", "the README's test command, python -m pytest -q"),
}


def run(command, **kwargs):
    """command's CompletedProcess (text); its output is echoed if it fails."""
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, **kwargs)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def part_table(log):
    """{part: (seconds, peak MB)} from the table that ends run_all.py's log."""
    lines = [line.split("] ", 1)[1] for line in log.splitlines() if "] " in line]
    start = max(i for i, line in enumerate(lines) if line.startswith("part ") and "peak memory" in line)
    table = {}
    for line in lines[start + 1:]:
        name, seconds, peak = re.fullmatch(r"(.+?)\s{2,}([\d.]+)\s+([\d,]+|-)", line).groups()
        table[name] = (float(seconds), None if peak == "-" else float(peak.replace(",", "")))
    return table


def study_figures(data_dir):
    """Run the whole study from a clean start; {target: measured} and the part table."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "run_all.py", "--retrain", "--params", f"{folder}/vae.npz",
                   "--out-dir", f"{folder}/figures"] + (["--data-dir", data_dir] if data_dir else [])
        started = time.perf_counter()
        log = run(command, env={**os.environ, "MPLBACKEND": "Agg"}).stdout
        wall = time.perf_counter() - started
    table = part_table(log)
    training = sum(table[name][0] for name in TRAINING_PARTS)
    analyses = sum(table[name][0] for name in ANALYSIS_PARTS)
    return {"analyses": analyses / training, "whole study": wall, "peak memory": table["whole run"][1]}, table


def training_ratio(rounds):
    """The paired ratio that benchmarks/bench_train.py prints (median of per-round ratios)."""
    out = run([sys.executable, "benchmarks/bench_train.py", "--rounds", str(rounds)]).stdout
    return float(re.search(r"median of per-round ratios\s+([\d.]+)", out).group(1)), out


def suite_seconds():
    started = time.perf_counter()
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"])
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="the MNIST folder, as run_all.py takes it")
    parser.add_argument("--train-rounds", type=int, default=5, help="rounds of bench_train.py (default 5)")
    parser.add_argument("--skip-suite", action="store_true", help="do not time the test suite")
    args = parser.parse_args(argv)
    if args.train_rounds < 1:
        parser.error("--train-rounds must be positive")
    print(f"{os.cpu_count()} CPUs; 1-minute load average {os.getloadavg()[0]:.2f} at start")
    measured, table = study_figures(args.data_dir)
    print("run_all.py --retrain from a clean start, its parts:")
    for name, (seconds, peak) in table.items():
        print(f"  {name:30s} {seconds:7.1f} s  {'-' if peak is None else f'{peak:6.0f} MB'}")
    measured["training step"], train_out = training_ratio(args.train_rounds)
    lines = train_out.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("variant"))  # its table and what follows
    print("benchmarks/bench_train.py:\n" + "".join(f"  {line}\n" for line in lines[summary:]))
    if not args.skip_suite:
        measured["suite"] = suite_seconds()
    print(f"{'target':14s} {'measured':>11s} {'limit':>9s}  met  what")
    for name, (limit, unit, what) in TARGETS.items():
        if name in measured:
            value = measured[name]
            print(f"{name:14s} {value:8.2f} {unit:2s} {limit:6.2f} {unit:2s}  {'yes' if value <= limit else 'NO ':3s}  "
                  f"{what}")
    print(f"1-minute load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
