"""Held-out validation (TrainConfig.validation_size): the validation ELBO after each epoch, the best
epoch, and when training stops for want of a better one (early stopping)."""
import math
from typing import NamedTuple

import numpy as np

from ..core.model import layer_like
from .loop import TrainingDiverged, evaluate_elbo

# Draws of z per validation image after each epoch. The same draws every epoch (validation_rng), so
# the change from one epoch to the next is the model's, not the noise's: the Monte Carlo noise that
# remains is mostly shared by the epochs compared. Five cost five forward passes per held-out image,
# about a sixth of an epoch of 9,000 training images for 1,000 held out (a forward pass is about a third
# of a training step), and give a standard error of the mean near 0.07 nats for 1,000 images (the
# 200-epoch model's ELBO of an image varies with sd about 5 nats over draws of z: figures/results.json
# has the test ELBO's SE 0.016 from 10 draws on 10,000 images), the size of a late epoch's gain, which
# the shared draws keep from turning into noise in the comparison. evaluate_elbo's SE needs two draws.
VALIDATION_SAMPLES = 5


class Validation(NamedTuple):
    """What a run with a validation set keeps beside its training state (in its checkpoints too)."""
    curve: list         # the mean validation ELBO after each epoch: curve[e - 1] after epoch e
    best_epoch: int     # the first epoch of the highest validation ELBO, best_epoch(curve)
    best_params: tuple  # (enc_params, dec_params) after that epoch: the model the analyses use


def validation_rng(seed):
    """The generator of every validation of a run: one seed for all epochs (common random numbers).
    [seed, 2**31 + 1] is no epoch's stream ([seed, epoch], epoch < 2**31) nor the final evaluation's."""
    return np.random.default_rng([seed, 2**31 + 1])


def validation_elbo(params, validation_x, seed):
    """(mean ELBO, its Monte Carlo standard error) of params on the validation images (N, 784), with
    VALIDATION_SAMPLES draws of z per image from validation_rng(seed), vectorized over images."""
    return evaluate_elbo(params, validation_x, validation_rng(seed), VALIDATION_SAMPLES)


def validated(validation, params, validation_x, seed):
    """The Validation record after one more epoch of training: validation (None before the first epoch)
    with the validation ELBO of params appended, and params copied as the best if they beat every
    earlier epoch. Raises TrainingDiverged if that ELBO is not finite."""
    value, _ = validation_elbo(params, validation_x, seed)
    curve = (validation.curve if validation else []) + [value]
    if not math.isfinite(value):
        raise TrainingDiverged(f"the validation ELBO is not finite after epoch {len(curve)}; try a smaller --lr")
    if validation is None or value > max(validation.curve):
        return Validation(curve, len(curve), copy_params(params))
    return validation._replace(curve=curve)


def best_epoch(validation_curve):
    """The epoch (1-based) of the highest validation ELBO in the curve (one per epoch), the first of equals:
    a later epoch must do strictly better to replace it."""
    return int(np.argmax(validation_curve)) + 1


def patience_exhausted(validation_curve, patience):
    """True once the last patience epochs of the curve brought no better validation ELBO than an
    earlier epoch's: training stops there."""
    return len(validation_curve) - best_epoch(validation_curve) >= patience


def copy_params(params):
    """A copy of (enc_params, dec_params) that training, which updates params in place, leaves alone; each
    layer of its own kind (core.model.layer_like): a relu layer copied as a plain pair would compute tanh."""
    return tuple([layer_like(layer, *(a.copy() for a in layer)) for layer in net] for net in params)
