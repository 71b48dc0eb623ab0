"""Adam (Kingma & Ba 2015), for training (part 2.5) and for SVI on noisy gradients (part 6.3).
The deterministic Gaussian fits of parts 6.1 and 8 take Newton steps instead (study/gaussian_fit.py).

It updates a list of arrays in place and keeps its state in their dtype: float32 for
training, where moments kept in float64 would upcast and slow every step.
"""
import math

import numpy as np

# Entries updated together: their p, g, m, v and scratch (256 KB each in float32) stay in a 2 MB
# L2 cache through the update's twelve passes, instead of streaming 3 MB arrays from memory twelve
# times (the decoder's and encoder's weights): a third faster, measured by benchmarks/bench_train.py.
BLOCK = 1 << 16


def init_adam_state(arrays):
    """Zero first and second moments for a list of arrays, and the step count."""
    return {"m": [np.zeros_like(a) for a in arrays], "v": [np.zeros_like(a) for a in arrays], "step": 0}


def adam_update(arrays, grads, state, lr, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam step down the gradients grads (a list like arrays), in place on arrays.

    To ascend (an ELBO), pass the negated gradients.
    """
    state["step"] += 1
    t = state["step"]
    # lr * m_hat / (sqrt(v_hat) + eps) with both bias corrections folded into scalars.
    root_correction = math.sqrt(1.0 - b2**t)
    step_size = lr * root_correction / (1.0 - b1**t)
    if "scratch" not in state:  # one block per array (the first is the largest), kept between steps
        state["scratch"] = [np.empty(m[blocks(m.shape, BLOCK)[0]].size, m.dtype) for m in state["m"]]
    for p, g, m, v, scratch in zip(arrays, grads, state["m"], state["v"], state["scratch"]):
        for rows in blocks(p.shape, BLOCK):
            p_, m_, v_ = p[rows], m[rows], v[rows]
            g_, s = g[rows], scratch[:p_.size].reshape(p_.shape)
            np.subtract(g_, m_, out=s)
            s *= 1.0 - b1
            m_ += s                                   # m = b1 m + (1 - b1) g
            np.multiply(g_, g_, out=s)
            s -= v_
            s *= 1.0 - b2
            v_ += s                                   # v = b2 v + (1 - b2) g^2
            np.sqrt(v_, out=s)
            s += eps * root_correction
            np.divide(m_, s, out=s)
            s *= step_size
            p_ -= s


def blocks(shape, size):
    """Index views along the first axis of an array of this shape: as few blocks of whole rows
    as keep each to about size entries, the first the largest (Ellipsis, the whole array, if it is
    0-d or empty)."""
    if not shape or not math.prod(shape):
        return [Ellipsis]
    rows = -(-shape[0] // -(-math.prod(shape) // size))  # shape[0] / the number of blocks, both rounded up
    return [slice(start, start + rows) for start in range(0, shape[0], rows)]
