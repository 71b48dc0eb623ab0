"""Adam (Kingma & Ba 2015): the one optimizer of the package, for training (part 2.5) and
for every Gaussian fitted to a posterior.

It updates a list of arrays in place and keeps its state in their dtype: float32 for
training, where moments kept in float64 would upcast and slow every step.
"""
import math

import numpy as np


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
    # Every operation writes into a buffer kept between steps: no temporaries on the hot path.
    scratch = state.setdefault("scratch", [np.empty_like(m) for m in state["m"]])
    for p, g, m, v, s in zip(arrays, grads, state["m"], state["v"], scratch):
        np.subtract(g, m, out=s)
        s *= 1.0 - b1
        m += s                                    # m = b1 m + (1 - b1) g
        np.multiply(g, g, out=s)
        s -= v
        s *= 1.0 - b2
        v += s                                    # v = b2 v + (1 - b2) g^2
        np.sqrt(v, out=s)
        s += eps * root_correction
        np.divide(m, s, out=s)
        s *= step_size
        p -= s
