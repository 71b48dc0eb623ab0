"""One model's row of a sweep: its training's ELBOs, the exact log p(x) of its test set and of the first
training images, IWAE with K = 1000 beside the exact log p(x) of the same images, and the approximation
and amortization gaps with the wrong-basin fraction. A row names the digest of the parameters it
describes, so a row whose checkpoint has changed is recomputed, never trusted.

The images are those the training evaluated (train.data.run_images): under dynamic binarization the
test set drawn once from its fixed seed, and the training images as drawn once from theirs; the
thresholded test set is integrated too.
"""
import json
import time

import numpy as np

from ..study.gap_study import gaps_by_split
from ..study.inference_gaps import gap_summary
from ..study.marginal_likelihood import iwae_bound, quadrature_of_sets
from ..train.checkpoints import params_digest

# The IWAE bound draws from its own stream of the seed: [seed, IWAE_STREAM] is no stream of training
# ([seed, epoch] with epoch < 2**31, [seed, epoch, 1]) nor of its evaluations ([seed, 2**31], [seed, 2**31 + 1]).
IWAE_STREAM = 2**31 + 2

# The row's numbers that are averaged over seeds (None where a setting has no such number, e.g. the
# thresholded test set of a thresholded setting, or the best epoch without a validation set).
METRICS = ("train_elbo", "test_elbo", "test_threshold_elbo", "test_log_px", "train_log_px", "test_threshold_log_px",
           "iwae", "log_px_on_iwae_images", "iwae_minus_log_px",
           "test_approximation_gap", "test_amortization_gap", "test_wrong_basin_fraction",
           "train_approximation_gap", "train_amortization_gap", "train_wrong_basin_fraction", "epochs", "best_epoch")
TIMING = "seconds"  # the row's (and the sweep's) only key that differs between runs of the same seeds


def analysed_images(images, analysed):
    """{set name: (N, 784) binary images} of one model's analysis, from its RunImages and the sizes of
    settings.analysis_sizes: the first test_images test images, the first gap_train_images training images
    as evaluated, and under dynamic binarization the same test images thresholded."""
    test = slice(0, analysed["test_images"])
    sets = {"test": images.test[test], "train": images.train_eval[:analysed["gap_train_images"]]}
    if images.test_threshold is not None:
        sets["test_threshold"] = images.test_threshold[test]
    return sets


def model_row(seed, params, training, sets, analysed, log=print):
    """The sweep's row of one model (JSON-ready).

    params: (enc_params, dec_params), the model the training kept (load_params'); training: its results
    file (train.command); sets: analysed_images(...); analysed: settings.analysis_sizes(...).
    """
    clock = [time.perf_counter()]
    seconds = {"train": training["train_seconds"]}

    def took(step):  # the wall seconds of each step, for the plan of the next sweep (settings.py)
        clock.append(time.perf_counter())
        seconds[step] = clock[-1] - clock[-2]

    enc, dec = params
    test, train = sets["test"], sets["train"]
    log(f"log p(x) by quadrature: {', '.join(f'{len(x)} {name} images' for name, x in sets.items())}")
    quadrature = quadrature_of_sets(dec, sets, analysed["quadrature_checked"])
    log_px = {name: result["log_px"] for name, result in quadrature.items()}
    took("log_px")
    num_iwae = analysed["iwae_images"]
    log(f"IWAE with K = {analysed['iwae_k']} on the first {num_iwae} test images")
    iwae = iwae_bound(enc, dec, test[:num_iwae], np.random.default_rng([seed, IWAE_STREAM]), analysed["iwae_k"])
    took("iwae")
    log(f"gaps of {len(test)} test and {len(train)} training images")
    _, per_image = gaps_by_split(enc, dec, {"test": test, "train": train},
                                 np.concatenate([log_px["test"], log_px["train"]]), convergence_images=0,
                                 iwae_images=0)
    gaps = {split: gap_summary(per_image[split]) for split in ("test", "train")}
    took("gaps")
    checked = [np.abs(r["finer"] - r["log_px"][:len(r["finer"])])
               for r in quadrature.values() if r["finer"] is not None]
    row = {"seed": seed, "params_digest": params_digest(params), "analysed": analysed,
           "epochs": training["epochs"], "best_epoch": training.get("best_epoch"),
           "stopped_early": training.get("stopped_early"),
           "train_elbo": training["train_elbo"], "test_elbo": training["test_elbo"],
           "test_threshold_elbo": training.get("test_threshold_elbo"),
           "test_log_px": mean(log_px["test"]), "train_log_px": mean(log_px["train"]),
           "test_threshold_log_px": mean(log_px["test_threshold"]) if "test_threshold" in log_px else None,
           "iwae": mean(iwae), "log_px_on_iwae_images": mean(log_px["test"][:num_iwae]),
           "iwae_minus_log_px": mean(iwae - log_px["test"][:num_iwae]),
           **{f"{split}_{key}": gaps[split][key] for split in ("test", "train")
              for key in ("approximation_gap", "amortization_gap", "wrong_basin_fraction")},
           "quadrature_max_edge_mass": max(float(r["edge_mass"].max()) for r in quadrature.values()),
           "quadrature_check_max_change": max((float(c.max()) for c in checked if len(c)), default=None)}
    row[TIMING] = {**seconds, "analysis": clock[-1] - clock[0]}
    log(f"test log p(x) {row['test_log_px']:.3f}, IWAE {row['iwae']:.3f} against {row['log_px_on_iwae_images']:.3f} "
        f"on its images; amortization gap {row['test_amortization_gap']:.3f}, approximation gap "
        f"{row['test_approximation_gap']:.3f}, wrong basins {row['test_wrong_basin_fraction']:.1%}")
    return row


def mean(values):
    """The mean of values (N,) as a Python float (float64 sum, whatever their dtype)."""
    return float(np.mean(np.asarray(values, np.float64)))


def current_row(path, params, analysed):
    """The row stored at path if it describes these very params (by their digest) with these analysis
    sizes and holds every number a sweep reads of it; else None (missing, unreadable, stale, or an older
    version's row: it is then computed again)."""
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(row, dict) and row.get("params_digest") == params_digest(params) and row.get("analysed") == analysed \
            and all(key in row for key in (*METRICS, "seed", "stopped_early", TIMING)):
        return row
    return None


def row_bytes(row):
    """The bytes of a row's (or a sweep's) JSON file: indented, keys in their order, no NaN."""
    return (json.dumps(row, indent=1, allow_nan=False) + "\n").encode()
