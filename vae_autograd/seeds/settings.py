"""The settings of a seed sweep: what each trains (TrainConfig overrides) and analyses, why each number
was chosen, the budget plan behind them, and Davidson et al.'s published row to compare with.

The budget (issue 21): the three settings x 5 seeds in about 90 minutes of wall time on 2 cores. Measured
on this machine (README, "Several seeds"), in CPU seconds of a process with one BLAS thread while other jobs
kept both cores busy (load 3 to 5), which is what each of two workers sees beside the other:
  * an epoch of 50,000 images takes 7.5 s (784-500-tanh, thresholded), 8.1 s (dynamic binarization)
    and 5.6 s or 5.5 s (784-256-128 relu, thresholded or dynamic); 10,000 images: 1.5 s; the validation
    of 10,000 held-out images after each epoch about 1.5 s;
  * a whole analysis (log p(x) and gaps of the test set and 10,000 training images, IWAE on 1,000 test
    images), two models side by side: 232 s for the 200-epoch assignment model (3.4 ms per image
    integrated, 7.2 ms per image of gaps, 19 ms per image of IWAE), 214 s for a 60-epoch literature model
    (30,000 images integrated).
  * a davidson model's log p(x) costs 0.3 to 4 s per image instead (ANALYSIS_SECONDS_PER_IMAGE says why).
So an assignment seed costs 5.3 minutes of training and 3.9 of analysis, a literature seed 7.9 and 4.4
with 50 epochs, a davidson seed 6.5 and, at the issue's sizes (30,000 images integrated), 2 to 4 hours:
hence its smaller analysis below (8 minutes). The 15 seeds then take 180 core-minutes, 94 minutes on 2
cores longest first; EPOCHS_60K is what that leaves (each 10 epochs more: 7 minutes).
"""
from dataclasses import fields
from pathlib import Path
from typing import NamedTuple

from ..train.options import TrainConfig

# The analyses of every setting.
IWAE_K = 1000                # the literature's estimator of log p(x) (Burda et al. 2016; Davidson et al. 2018)
# IWAE with K = 1000 costs 19 ms per image (1000 decoder passes): 190 s for the whole test set, as much
# as the rest of a seed's analysis. On the first 1,000 test images (a fixed subset, the same for every
# seed) it costs 19 s, and the exact log p(x) of those very images is reported beside it, so the
# two compare on the same images; the standard error of their mean difference over 1,000 images is
# about 0.2 nats (the per-image gap IWAE - log p(x) varies by a few nats).
IWAE_IMAGES = 1000
GAP_TRAIN_IMAGES = 10000     # training images of log p(x) and the gaps (the 10,000)
# The quadrature's own check: the first images of each set integrated again on twice the sub-points per axis
# (four times the decoded points of their refined cells): 50, or a tenth of a smaller test set, so that the
# check stays a small part of the analysis (on 60 test images, 50 checked per set were 2/3 of its time).
QUADRATURE_CHECKED = 50

# Epochs of the 60,000-image settings, and their patience. The validation ELBO of such a model (seed 0, 60
# epochs) was -151.0 at epoch 50 and -149.7 at 59, still rising by about 0.15 nats per epoch: 50 epochs
# stop short of convergence, but each epoch more costs the sweep 10 x 8.6 s (0.7 minutes on 2 cores), and
# with 50 the sweep is planned at 94 minutes, the budget (module docstring). Davidson et al. trained far
# longer; the comparison with their row measures that too.
EPOCHS_60K = 50
# 10 epochs without a better validation ELBO: a fifth of the run. The 60-epoch run's longest plateau was
# 4 epochs (49 to 53) while the ELBO still rose; a patience much longer could never end a 50-epoch run.
PATIENCE_60K = 10
VALIDATION_60K = 10000       # the last 10,000 training images held out, as MNIST's usual 50,000/10,000 split


class Setting(NamedTuple):
    """What a setting trains: what it is for, in words (the page adds its options), TrainConfig overrides
    (field -> value), and its own analysis sizes where the defaults (ANALYSIS_SIZE_OPTIONS) cannot be afforded."""
    description: str
    train: dict
    analysis: dict = {}


LITERATURE = {"train_size": 60000, "validation_size": VALIDATION_60K, "binarization": "dynamic",
              "epochs": EPOCHS_60K, "patience": PATIENCE_60K}

SETTINGS = {
    # Today's defaults (TrainConfig's): the first 10,000 training images thresholded at 0.5, 200 epochs
    # of Adam (lr 1e-3, minibatches of 100), 784-500-tanh encoder and decoder, no validation set.
    "assignment": Setting("Kingma & Welling's Appendix C model on the assignment's data", {}),
    # The same model on the literature's data: all 60,000 training images, each minibatch binarized afresh,
    # the last 10,000 held out to choose the epoch kept (early stopping).
    "literature": Setting("the same model on the literature's data", LITERATURE),
    # Davidson et al. (2018)'s Gaussian VAE: encoder 784-256-128 relu, decoder 2-128-256-784 relu, Adam 1e-3,
    # the same data (TrainConfig's hidden and activation, from branch litarch). Their minibatch size is not
    # taken over: 100, as the other settings.
    # Its analyses on the first 50 test images (log p(x) of them as drawn and thresholded, IWAE and the gaps,
    # all on the same images) and 50 training images: a 50-epoch relu model's log p(x) costs 0.4 to 4 s per image
    # (ANALYSIS_SECONDS_PER_IMAGE), and its gaps about 0.6 s, days for the 30,000 and 20,000, about 5
    # minutes for these. The mean over 50 images differs from the whole test set's by about 4 nats (their
    # standard error); the images are the same for every seed, and the ELBOs are the whole test set's.
    "davidson": Setting("Davidson et al.'s architecture on the literature's data",
                        {**LITERATURE, "hidden": (256, 128), "activation": "relu"},
                        {"test_images": 50, "gap_train_images": 50}),
}

# Davidson, Falorsi, De Cao, Kipf & Tomczak (2018), Hyperspherical Variational Auto-Encoders (UAI 2018,
# arXiv:1804.00891), Table 1: the Gaussian VAE (N-VAE) with a 2-D latent space on dynamically binarized
# MNIST, mean ± standard deviation over their runs. Their LL is an importance-sampling estimate of log p(x).
DAVIDSON_2018 = {"source": "Davidson et al. (2018), Table 1: N-VAE, 2-D latent, dynamically binarized MNIST",
                 "log_px": -135.73, "log_px_sd": 0.83, "elbo": -137.08, "elbo_sd": 0.83}

# TrainConfig fields a sweep's size options may override, and the analyses' own sizes.
TRAIN_SIZE_OPTIONS = ("epochs", "train_size", "test_size", "validation_size", "patience", "hidden", "activation")
# Each a sweep option (--test-images, ...); test_images None: the whole test set of the training's --test-size.
ANALYSIS_SIZE_OPTIONS = {"test_images": None, "gap_train_images": GAP_TRAIN_IMAGES, "iwae_images": IWAE_IMAGES}

# Planned CPU seconds (the measurements above; the analysis rates those of the assignment model, the
# costlier), for the order in which seeds start and the ETA before any step has finished; once steps
# finish, the ETA scales these by what they took.
TRAIN_SECONDS_PER_IMAGE_EPOCH = {"tanh": 1.6e-4, "relu": 1.25e-4}
VALIDATION_SECONDS_PER_IMAGE = 1.5e-4   # 5 draws of z per held-out image, after every epoch
# A relu decoder's log p(x, z) has kinks (its logits are piecewise linear in z), where the quadrature's
# resolution test (second differences at most 0.5) passes only on very fine sub-grids: on a 20-epoch
# davidson model most images needed 32 or 64 sub-points per cell side (tanh models: a few), and log p(x)
# took 0.24 to 0.45 s of CPU per image (300 and 100 test images), 70 to 130 times the tanh models' cost; on a
# 50-epoch one, 32 to 256 sub-points and 0.4 to 4 s per image (study.quadrature.KINKED_MAX_REFINE).
# Its gaps are fitted on windows 4 times finer per axis (study.windows.KINKED_REFINEMENT), 16 times the points:
# 27 s for 30 images of the same model beside two other jobs.
ANALYSIS_SECONDS_PER_IMAGE = {"tanh": {"log_px": 3.4e-3, "gaps": 7.2e-3, "iwae": 1.9e-2},
                              "relu": {"log_px": 2.0, "gaps": 0.6, "iwae": 1.9e-2}}


class SettingError(ValueError):
    """A setting that does not exist; the message names those that do."""


def check_setting(name):
    """Raise SettingError if there is no setting name."""
    if name not in SETTINGS:
        raise SettingError(f"unknown setting {name!r}; choose from {', '.join(SETTINGS)}")


def seed_path(work_dir, name, seed, suffix=".npz"):
    """data/seeds/<setting>/seed<k>.npz, or with another suffix ("-analysis.json", ".log")."""
    return Path(work_dir) / name / f"seed{seed}{suffix}"


def setting_config(name, seed, overrides, work_dir, data_dir=None):
    """The TrainConfig of one seed of setting name: its overrides, then the sweep's size overrides
    ({TrainConfig field: value}), the seed, and its checkpoint under work_dir. Raises SettingError
    (an unknown setting or field) or ConfigError (a value that breaks a rule)."""
    check_setting(name)
    known = [f.name for f in fields(TrainConfig)]
    unknown = [key for key in overrides if key not in known]
    if unknown:
        raise SettingError(f"unknown option {unknown[0]!r} of setting {name!r}; choose from {', '.join(known)}")
    return TrainConfig(**{**SETTINGS[name].train, **overrides}, seed=seed, data_dir=data_dir,
                       out=seed_path(work_dir, name, seed), quiet=False)


def analysis_sizes(name, config, overrides):
    """What one model of setting name analyses, given its config and the sweep's analysis overrides (which
    come before the setting's own): the first test_images test images (default all), the first
    gap_train_images training images as evaluated, the first iwae_images test images for IWAE, each at most
    the images there are, and the constants of the analysis."""
    sizes = {**ANALYSIS_SIZE_OPTIONS, **SETTINGS[name].analysis, **overrides}
    test_images = min(sizes["test_images"] or config.test_size, config.test_size)
    return {"test_images": test_images,
            "gap_train_images": min(sizes["gap_train_images"], config.train_size - config.validation_size),
            "iwae_images": min(sizes["iwae_images"], test_images), "iwae_k": IWAE_K,
            "quadrature_checked": min(QUADRATURE_CHECKED, max(1, test_images // 10))}


def planned_seconds(config, analysed):
    """(training, analysis) CPU seconds planned for one seed (the measurements above), with config's epochs
    all trained (early stopping can only shorten it)."""
    activation = getattr(config, "activation", "tanh")
    trained = config.train_size - config.validation_size
    train = config.epochs * (trained * TRAIN_SECONDS_PER_IMAGE_EPOCH[activation]
                             + config.validation_size * VALIDATION_SECONDS_PER_IMAGE)
    integrated = analysed["test_images"] * (2 if config.binarization == "dynamic" else 1) \
        + analysed["gap_train_images"]
    rate = ANALYSIS_SECONDS_PER_IMAGE[activation]
    analysis = integrated * rate["log_px"] + (analysed["test_images"] + analysed["gap_train_images"]) * rate["gaps"] \
        + analysed["iwae_images"] * rate["iwae"] * analysed["iwae_k"] / 1000
    return train, analysis
