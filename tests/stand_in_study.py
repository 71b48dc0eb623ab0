"""run_all.py with parts 3-8 of its study stood in for by what they gave in an earlier run.

    python tests/stand_in_study.py REFERENCE_OUT_DIR [run_all.py's options...]

Everything else is run_all.py's own: its start-up and signal handling, its locks, the data,
the training and kept checkpoints (trained, resumed or reused as run_all.py would), the
schema check, and the writing and swap of the output folder. Parts 3-8 only compute from the
checkpoint and write nothing (tests/kill_at.py sees no file operation in the working folder
between the training's last and the output folder's first): here they return the figures of
REFERENCE_OUT_DIR (as their PNG bytes) and its results.json, so that a run of the quick study
killed at its end costs a few seconds, not a whole study. tests/test_fault_injection.py checks
that an uninterrupted run of this writes the very bytes run_all.py wrote.
"""
import importlib.util
import json
import sys
from pathlib import Path

from vae_autograd.io.process import exit_on_interrupt_while_starting

exit_on_interrupt_while_starting()  # as run_all.py starts (the imports above take milliseconds)

# The parts of run_all.run_study that come after the training, in its order.
PARTS = ["marginal_likelihood_part", "latent_space_part", "posterior_part", "estimator_part", "gap_part"]


def stand_in_parts(run_all, reference):
    """Replace run_all's parts 3-8: the first returns every figure and result of the run that
    wrote reference (its PNG bytes, written as they are, and results in its order, after the
    seed, quick and training that run_study itself puts first), the others nothing."""
    missing = [name for name in PARTS if not callable(getattr(run_all, name, None))]
    assert not missing, f"run_all.py has no {missing}: tests/stand_in_study.py must follow its parts"
    figures = {path.stem: path.read_bytes() for path in sorted(reference.glob("*.png"))}
    results = json.loads((reference / "results.json").read_text())
    results = {key: value for key, value in results.items() if key not in ("seed", "quick", "training")}
    run_all.marginal_likelihood_part = lambda *args: (figures, results, None, None)
    run_all.save_png = lambda png, file: file.write(png)  # each figure stands in as its PNG's bytes
    for name in PARTS[1:]:
        setattr(run_all, name, lambda *args: ({}, {}))


if __name__ == "__main__":
    spec = importlib.util.spec_from_file_location("run_all", Path(__file__).resolve().parents[1] / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    stand_in_parts(run_all, Path(sys.argv[1]))
    try:  # as run_all.py ends
        run_all.main(sys.argv[2:])
    finally:
        run_all.ignore_interrupts()
