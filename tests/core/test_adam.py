"""Adam, the optimizer of training and SVI."""
import numpy as np

from vae_autograd.core.adam import adam_update, init_adam_state


def test_first_step_moves_each_entry_by_lr_against_the_gradient():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]
    before = [a.copy() for a in arrays]
    grads = [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]
    adam_update(arrays, grads, init_adam_state(arrays), lr=1e-3)
    for b, a, g in zip(before, arrays, grads):
        # After bias correction the first step is lr * g / (|g| + eps), about lr * sign(g).
        np.testing.assert_allclose(b - a, 1e-3 * g / (np.abs(g) + 1e-8), rtol=1e-4, atol=1e-10)
        assert a.dtype == np.float32


def test_minimizes_a_quadratic():
    target = np.array([3.0, -2.0], dtype=np.float32)
    w = np.zeros(2, np.float32)
    state = init_adam_state([w])
    for _ in range(3000):
        adam_update([w], [2 * (w - target)], state, lr=1e-2)
    np.testing.assert_allclose(w, target, atol=1e-2)


def test_matches_the_textbook_formula_over_several_steps():
    rng = np.random.default_rng(1)
    w = rng.standard_normal(4)
    state = init_adam_state([w])
    m, v, reference = np.zeros(4), np.zeros(4), w.copy()
    for t in range(1, 6):
        g = rng.standard_normal(4)
        adam_update([w], [g], state, lr=0.1)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g**2
        reference -= 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(w, reference, rtol=1e-12)
