"""Part 8 on the study's images: the test set and training images decomposed in one call, and
the same random subsets at every kept epoch, with the settings the run used.

The per-image decomposition itself is study.inference_gaps.inference_gap_study.
"""
import time

import numpy as np

from ..core.text import percent
from .gaussian_fit import CONVERGED_NATS, MAX_ROUNDS, MODE_GRID_BOUND, MODE_GRID_SPACING, MODE_WITHIN_NATS, NUM_MODES
from .inference_gaps import WRONG_BASIN_NATS, gap_summary, inference_gap_study


def gap_settings():
    """The settings of part 8 that its sentences quote, as recorded in results.json."""
    return {"converged_nats": CONVERGED_NATS, "max_rounds": MAX_ROUNDS, "wrong_basin_nats": WRONG_BASIN_NATS,
            "num_modes": NUM_MODES, "mode_grid_spacing": MODE_GRID_SPACING, "mode_grid_bound": MODE_GRID_BOUND,
            "mode_within_nats": MODE_WITHIN_NATS}


def gaps_by_split(enc, dec, images, log_px=None, **options):
    """inference_gap_study of the splits in images ({split: (N_s, 784)}) in one call, since
    their windows share lattice points (per-image ELBOs equal those of separate calls to 1e-5, the
    rounding of the decoder's float32 products in other shapes).

    options (rng, iwae_images, convergence_images) apply to the first images of the first
    split. Returns the study's summary and {split: its per_image arrays}.
    """
    study = inference_gap_study(enc, dec, np.concatenate(list(images.values())), log_px=log_px, **options)
    ends = np.cumsum([len(x) for x in images.values()])
    return study["summary"], {split: {k: v[end - len(x):end] for k, v in study["per_image"].items()}
                              for (split, x), end in zip(images.items(), ends)}


def gap_studies(params, epochs, kept, images, log_px, iwae_encoder, iwae_rng, subset_rngs, iwae_images=500,
                check_images=1000, epoch_images=2000, log=print):
    """Part 8 on the images of each split, and on random subsets of them along training.

    params: the model after epochs; kept: {epoch: params} of earlier checkpoints. images:
    {"test": (N, 784), "train": (M, 784)}; log_px: {split: log p(x) of at least those images}
    and iwae_encoder (the IWAE bounds of the first test images with q(z|x)), both from
    part 3. The IWAE bounds with q* (drawn from iwae_rng) and the convergence checks run on
    the first iwae_images and check_images test images; subset_rngs {split: Generator}
    draw the epoch_images images of each split followed along training.
    Returns (summary as in results.json["inference_gaps"], {split: per_image arrays}).
    """
    if not (iwae_images >= 1 and check_images >= 1):
        raise ValueError(f"iwae_images and check_images must be at least 1 (results.json holds both checks), got "
                         f"{iwae_images} and {check_images}")
    enc, dec = params
    started = time.perf_counter()
    whole, per_image = gaps_by_split(enc, dec, images, np.concatenate([log_px[s][:len(x)] for s, x in images.items()]),
                                     rng=iwae_rng, iwae_images=iwae_images, iwae_encoder=iwae_encoder,
                                     convergence_images=check_images)
    summary = {split: gap_summary(per_image[split]) for split in images}
    summary["test"].update(convergence=whole["convergence"], iwae=whole["iwae"])
    for split in images:
        log(f"  {split}: approximation gap {summary[split]['approximation_gap']:.3f}, amortization gap "
            f"{summary[split]['amortization_gap']:.3f}, wrong basins {percent(summary[split]['wrong_basin_fraction'])}")
    log(f"  both sets in {time.perf_counter() - started:.0f} s")
    # Along training: the same random subsets at every kept epoch, and at the last from above.
    subsets = {split: np.sort(subset_rngs[split].choice(len(x), min(epoch_images, len(x)), replace=False))
               for split, x in images.items()}
    rows = []
    for epoch, (kept_enc, kept_dec) in kept.items():
        _, kept_per_image = gaps_by_split(kept_enc, kept_dec, {s: x[subsets[s]] for s, x in images.items()},
                                          convergence_images=0, iwae_images=0)
        rows += [{"epoch": epoch, "split": split, **gap_summary(kept_per_image[split])} for split in images]
        log(f"  epoch {epoch}: amortization gap test {rows[-2]['amortization_gap']:.2f}, "
            f"train {rows[-1]['amortization_gap']:.2f}")
    for split in images:
        rows.append({"epoch": epochs, "split": split,
                     **gap_summary({k: v[subsets[split]] for k, v in per_image[split].items()})})
    summary["over_training"] = rows
    summary["over_training_images"] = {split: len(s) for split, s in subsets.items()}
    summary["settings"] = gap_settings()
    return summary, per_image
