"""The training loop (study part 2.5): Adam on -ELBO over shuffled minibatches of binary images, or of
binary images drawn afresh from grey ones (dynamic binarization), and the ELBO of a trained model on
a whole set (2.6)."""
import math
import time

import numpy as np

from ..core.adam import adam_update, init_adam_state
from ..core.elbo import check_num_samples, elbo_unchecked, log_importance_weight_chunks
from ..core.fast_grad import flat_arrays, value_and_grad_per_array
from ..core.images import check_grey_images, check_images
from ..core.model import data_dim, hidden_dims


class TrainingDiverged(Exception):
    """The loss or the parameters stopped being finite; nothing non-finite was saved."""


def epoch_rng(seed, epoch):
    """The generator of epoch's minibatch order and Monte Carlo noise."""
    return np.random.default_rng([seed, epoch])


def pixel_rng(seed, epoch):
    """The generator of epoch's dynamic binarization: a stream of its own beside epoch_rng's, so that the
    minibatch order and the noise are those of threshold training. (Its third entry is 1, not 0:
    SeedSequence pads short entropy with zeros, so [seed, epoch, 0] would be epoch_rng's very stream.)"""
    return np.random.default_rng([seed, epoch, 1])


def draw_binary(grey, rng):
    """Binary images (N, P) float32 drawn from grey intensities (N, P) in [0, 1]: each pixel is 1 with
    probability its intensity, where a uniform draw of rng falls below it."""
    return (rng.random(grey.shape) < grey).astype(np.float32)


def minibatches(x, batch_size, rng):
    """Yield x in minibatches of batch_size rows, in an order shuffled by rng (last may be short)."""
    order = rng.permutation(len(x))
    for start in range(0, len(x), batch_size):
        yield x[order[start:start + batch_size]]


def train(params, train_x, epochs, batch_size=100, lr=1e-3, seed=0, adam_state=None,
          start_epoch=0, on_epoch_end=None, binarization="threshold"):
    """Run Adam on -ELBO from epoch start_epoch up to epochs; params change in place.

    params: (enc_params, dec_params); train_x (N, 784): binary images, or with binarization
    "dynamic" grey intensities in [0, 1], from which each minibatch's pixels are drawn afresh
    (pixel_rng(seed, epoch), so a resumed run draws what an uninterrupted one would).
    on_epoch_end(epoch, mean_loss, seconds, adam_state) is called after every epoch (for logging,
    checkpoints and early stopping); training stops after an epoch for which it returns True.
    Returns the list of per-epoch mean -ELBO values seen during training. Raises
    TrainingDiverged at the end of the first epoch whose loss or parameters are not
    finite, before on_epoch_end could save them.
    """
    if binarization not in ("threshold", "dynamic"):
        raise ValueError(f"binarization must be 'threshold' or 'dynamic', got {binarization!r}")
    dynamic = binarization == "dynamic"
    # Once: the loss below runs unchecked.
    (check_grey_images if dynamic else check_images)(train_x, data_dim(params[1]), "train_x")

    def loss(params, x, rng):
        return -elbo_unchecked(params[0], params[1], x, rng)

    loss_and_grad = value_and_grad_per_array(loss)
    adam_state = adam_state or init_adam_state(flat_arrays(params))
    curve = []
    # Overflow on the way to a divergence is reported below in one line, not as a screen
    # of NumPy warnings.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(start_epoch, epochs):
            start = time.perf_counter()
            rng, pixels = epoch_rng(seed, epoch), pixel_rng(seed, epoch) if dynamic else None
            total = 0.0
            for x in minibatches(train_x, batch_size, rng):
                if dynamic:
                    x = draw_binary(x, pixels)
                value, grads = loss_and_grad(params, x, rng)
                adam_update(flat_arrays(params), flat_arrays(grads), adam_state, lr)
                total += float(value) * len(x)
            curve.append(total / len(train_x))
            # A non-finite loss makes a non-finite sum, and a non-finite gradient non-finite
            # parameters: checking both once per epoch (before on_epoch_end saves) costs nothing.
            if not math.isfinite(curve[-1]) or not all_finite(params):
                raise TrainingDiverged(f"training diverged in epoch {epoch + 1} (mean -ELBO {curve[-1]}); "
                                       f"try a smaller --lr than {lr}")
            if on_epoch_end is not None and on_epoch_end(epoch + 1, curve[-1], time.perf_counter() - start,
                                                         adam_state):
                break
    return curve


def all_finite(params):
    return all(np.isfinite(a).all() for a in flat_arrays(params))


def evaluate_elbo(params, x, rng, num_samples=10, batch_size=1000, floats_per_chunk=2**24):
    """Mean ELBO over the images x (N, 784) and its Monte Carlo standard error.

    Each image's ELBO is averaged over num_samples draws of z; the standard error is
    that of the Monte Carlo noise in the set mean: sqrt(sum_i var_i / S) / N.
    The draws are log_importance_weights' (same rng, same numbers), taken in chunks of about
    floats_per_chunk decoder outputs, so memory does not grow with num_samples.
    """
    check_num_samples(num_samples, 2, "a standard error needs two")
    # Per draw, a decoder pass holds about its widest hidden layer and its logits at once.
    hidden = max(hidden_dims(params[1]))
    per_chunk = max(1, floats_per_chunk // (min(batch_size, len(x)) * (hidden + data_dim(params[1]))))
    means, m2s, block, seen = [], [], None, 0  # per block of images: running means and squared deviations
    for rows, log_w in log_importance_weight_chunks(*params, x, rng, num_samples, batch_size, per_chunk):
        log_w = np.asarray(log_w, np.float64)
        k, chunk_mean = len(log_w), log_w.mean(axis=0)
        chunk_m2 = ((log_w - chunk_mean) ** 2).sum(axis=0)
        if rows != block:  # the first chunk of the next block of images
            block, seen = rows, 0
            means.append(chunk_mean)
            m2s.append(chunk_m2)
        else:  # Chan, Golub & LeVeque's update: no sum of squares minus a square of sums
            delta, total = chunk_mean - means[-1], seen + k
            means[-1] = means[-1] + delta * k / total
            m2s[-1] = m2s[-1] + chunk_m2 + delta**2 * seen * k / total
        seen += k
    per_image, var = np.concatenate(means), np.concatenate(m2s) / (num_samples - 1)
    return float(per_image.mean()), float(np.sqrt(var.sum() / num_samples) / len(per_image))
