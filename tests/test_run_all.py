"""run_all.py --quick end to end: every promised file, reproducible numbers, reuse."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIGURES = ["prior_samples", "reconstructions", "latent_embedding", "latent_lattice",
           "latent_lattice_linear", "interpolations", "log_px_vs_elbo",
           "true_vs_approx_posterior", "top_half_posterior", "svi_posterior", "svi_prediction",
           "gradient_histograms"]


def run_quick(out_dir, mnist_dir, *extra):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), "--quick", "--out-dir",
                           str(out_dir), "--data-dir", str(mnist_dir), *extra],
                          capture_output=True, text=True, env=env, cwd=out_dir.parent, timeout=600)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, mnist_dir):
    out_dir = tmp_path_factory.mktemp("run") / "figures"
    result = run_quick(out_dir, mnist_dir)
    assert result.returncode == 0, result.stderr
    return out_dir, result


def test_quick_run_writes_every_promised_file(quick_run):
    out_dir, result = quick_run
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
    assert "training 3 epochs" in result.stdout and "part 7" in result.stdout
    assert not list(out_dir.glob(".*.part"))  # no temporary file left behind


def test_quick_run_numbers_make_sense(quick_run):
    results = json.loads((quick_run[0] / "results.json").read_text())
    test = results["integration_test"]
    assert test["elbo"] < test["log_px"] and test["gap"] > 0
    assert abs(test["halved_spacing_change"]) < 0.01
    assert all(kl > -0.05 for kl in results["svi"]["kl"])


def test_same_seed_same_numbers_and_checkpoint_is_reused(quick_run, mnist_dir):
    out_dir, _ = quick_run
    first = json.loads((out_dir / "results.json").read_text())
    again = run_quick(out_dir, mnist_dir)
    assert again.returncode == 0, again.stderr
    assert "reusing" in again.stdout and "training 3 epochs" not in again.stdout
    second = json.loads((out_dir / "results.json").read_text())
    first["training"].pop("train_seconds"), second["training"].pop("train_seconds")
    assert first == second


def test_bad_cli_value_is_one_line(tmp_path, mnist_dir):
    result = run_quick(tmp_path / "out", mnist_dir, "--epochs", "0")
    assert result.returncode == 2 and "must be a positive int" in result.stderr
    assert "Traceback" not in result.stderr
