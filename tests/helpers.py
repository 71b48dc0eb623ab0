"""Plain helpers shared by several test files (fixtures shared by several files live in
conftest.py): the repository path, one-line error checks, small models and synthetic data.

Tolerance constants: deterministic float computations are compared with a few machine
epsilons (EPS64 / EPS32) times the size of the intermediates the formula goes through;
tests feeding extreme inputs run under NO_OVERFLOW, so a naive formula fails loudly.
"""
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from vae_autograd.core.model import init_vae_params
from vae_autograd.study.estimators import estimator_names
from vae_autograd.study.grids import grid_moments, latent_grid, log_integrate_grid
from vae_autograd.study.posterior import log_joint_on_grid

REPO = Path(__file__).resolve().parents[1]


def load_run_all():
    """run_all.py as a module, leaving pytest's signal handlers as they were (the script sets its own)."""
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    spec = importlib.util.spec_from_file_location("run_all", REPO / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    return module


def assert_one_line_error(result, *fragments):
    """A command refused its input: exit 1, one line "error: ..." holding each fragment."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr


def dir_listing(path):
    """Every entry in path, including hidden temporary files such as .name.xyz.part."""
    return sorted(os.listdir(path))


EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)

# Extreme inputs must not even overflow internally (e.g. exp(1e4) -> inf): tests that
# feed them run under this error state, so a naive formula fails loudly.
NO_OVERFLOW = dict(over="raise", invalid="raise", divide="raise")


def tiny_model(seed=20, n=3):
    """(enc, dec, x): data_dim 6, hidden 5, latent 2, float64, weights N(0, 0.5^2)."""
    rng = np.random.default_rng(seed)
    enc, dec = init_vae_params(rng, 6, 5, 2, scale=0.5, dtype=np.float64)
    x = rng.integers(0, 2, (n, 6)).astype(np.float64)
    return enc, dec, x


def binary_images(rng, n, dtype=np.float32):
    return (rng.random((n, 784)) < 0.5).astype(dtype)


def all_arrays(params):
    return [a for net in params for layer in net for a in layer]


def six_pixel_vae(seed=0):
    """(enc, dec): data_dim 6, hidden 5, latent 2, float64, weights N(0, 1.5^2)."""
    return init_vae_params(np.random.default_rng(seed), 6, 5, 2, scale=1.5, dtype=np.float64)


def relu_vae(seed=0, data_dim=6, hidden=(5, 4), scale=1.5):
    """(enc, dec): data_dim pixels, relu hidden layers hidden (the decoder mirrors them: 2 -> 4 ->
    5 -> 6 by default), latent 2, float64, weights N(0, scale^2)."""
    return init_vae_params(np.random.default_rng(seed), data_dim, hidden, 2, scale=scale, dtype=np.float64,
                           activation="relu")


def numpy_mlp(params, inputs, activation):
    """A network's output written out in NumPy, with the hidden layers' activation given here rather
    than read from the layers: what a test holds the package's forward pass (and whatever reads the
    activation from a checkpoint) to."""
    hidden = np.asarray(inputs, np.float64)
    for W, b in params[:-1]:
        hidden = hidden @ W + b
        hidden = np.tanh(hidden) if activation == "tanh" else np.maximum(hidden, 0.0)
    W, b = params[-1]
    return hidden @ W + b


def numpy_log_joint(dec_params, x, z, activation, block=250000):
    """log p(x_n, z_g) (N, G) of images x (N, D) at points z (G, 2), in float64 by numpy_mlp
    (decoded in blocks of points: memory stays bounded on fine grids)."""
    out = []
    for start in range(0, len(z), block):
        points = np.asarray(z[start:start + block], np.float64)
        logits = numpy_mlp(dec_params, points, activation)
        out.append(x @ logits.T - np.sum(np.logaddexp(0.0, logits), axis=-1) - 0.5 * np.sum(points**2, axis=-1)
                   - np.log(2 * np.pi))
    return np.concatenate(out, axis=1)


def random_binary_images(n, dtype=np.float64):
    """n random binary images (n, 784), each pixel on with probability 0.3 (seed 1): the first
    rows are the same whatever n."""
    return (np.random.default_rng(1).random((n, 784)) < 0.3).astype(dtype)


META = {"data_dim": 784, "hidden": [20], "activation": "tanh", "latent_dim": 2, "seed": 0}


def small_params(seed=0, hidden=20):
    return init_vae_params(np.random.default_rng(seed), 784, hidden, 2)


def synthetic_images(n=300, seed=1):
    return (np.random.default_rng(seed).random((n, 784)) < 0.15).astype(np.float32)


def blobs(centres, per_class, scale, rng):
    """(z (C * per_class, 2), labels): per_class N(centre, scale^2 I) points for class c at centres[c]."""
    centres = np.asarray(centres, dtype=np.float64)
    labels = np.repeat(np.arange(len(centres)), per_class)
    return centres[labels] + scale * rng.standard_normal((len(labels), 2)), labels


def ring_centres(num_classes, radius):
    angle = 2 * np.pi * np.arange(num_classes) / num_classes
    return radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def brute_force(dec_params, x, low=-5.0, high=5.0, spacing=0.1):
    """log p(x) (N,) and the posterior's mean and std (N, 2) on one global grid.

    For posteriors at least 0.15 wide (checked below), a midpoint rule of spacing h errs by
    about exp(-2 pi^2 std^2 / h^2) < 1e-19: this grid is exact to rounding.
    """
    z_grid, axis = latent_grid(low, high, spacing)
    log_joint = log_joint_on_grid(dec_params, x, z_grid)
    return log_integrate_grid(log_joint, spacing, len(axis)), grid_moments(z_grid, log_joint)


# The gradient estimators' setting (conftest.estimator_setting): images, estimates per image.


NUM_IMAGES, NUM_ESTIMATES = 5, 10000
ESTIMATORS = estimator_names()
LOO = [name for name in ESTIMATORS if name.startswith("score_function_loo_")]


def hold_lock(path):
    """A process holding sole_writer of path until killed; returns once it holds it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from vae_autograd.io.files import sole_writer\n"
         f"with sole_writer([{str(path)!r}], '--out'):\n    print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline() == "held\n"
    return holder


def unreadable_text(fig, margin=1.0):
    """What makes fig's text unreadable, as a list of strings (empty when all is well): a text
    leaving the figure, two texts overlapping or nearer than margin pixels, a legend covering a
    text that is not its own. Only what is drawn counts (tick labels within the axes' view)."""
    import itertools

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.legend import Legend
    from matplotlib.text import Text

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    tick_labels, drawn_ticks = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * (high - low)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                for label in (tick.label1, tick.label2):
                    tick_labels.add(id(label))
                    if tick.get_visible() and low - slack <= tick.get_loc() <= high + slack:
                        drawn_ticks.add(id(label))
    boxes = [(text, text.get_window_extent(renderer)) for text in fig.findobj(Text)
             if text.get_visible() and text.get_text().strip()
             and (id(text) not in tick_labels or id(text) in drawn_ticks)]

    def overlap(a, b):
        return (min(a.x1, b.x1) - max(a.x0, b.x0) > -margin) and (min(a.y1, b.y1) - max(a.y0, b.y0) > -margin)

    problems = [f"{text.get_text()[:40]!r} leaves the figure" for text, box in boxes
                if box.x0 < fig.bbox.x0 or box.y0 < fig.bbox.y0 or box.x1 > fig.bbox.x1 or box.y1 > fig.bbox.y1]
    problems += [f"{a.get_text()[:40]!r} overlaps {b.get_text()[:40]!r}"
                 for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if overlap(box_a, box_b)]
    for legend in fig.findobj(Legend):
        if legend.get_visible():
            own = {id(text) for text in legend.get_texts()} | {id(legend.get_title())}
            area = legend.get_window_extent(renderer)
            problems += [f"a legend covers {text.get_text()[:40]!r}" for text, box in boxes
                         if id(text) not in own and overlap(area, box)]
    return problems
