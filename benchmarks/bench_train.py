"""Seconds per training epoch: vae_autograd's training step against a hand-derived NumPy floor.

    python benchmarks/bench_train.py [--rounds 5] [--epochs-per-round 1] [--seed 0]

What is timed. One epoch = 100 Adam steps on minibatches of 100 drawn from 10,000 images,
for the Kingma & Welling (2013, App. C) VAE this package trains: encoder 784 -> 500 tanh
-> 2 + 2 (mean, log std), decoder 2 -> 500 tanh -> 784 Bernoulli logits, loss = minus the
1-sample reparameterized Monte Carlo ELBO, everything in float32.

  (1) vae_autograd: ``vae_autograd.train.train(params, x, epochs=...)`` itself, i.e. the real
      code path (the gradient of -elbo by autograd's tape and backward pass, through the
      package's per-layer and per-density primitives, then ``adam_update``, per minibatch).
  (2) hand-derived NumPy floor: the same computation with the backward pass written out by
      hand (no autograd, no tape), into preallocated float32 buffers, followed by the same
      Adam update in the same cache-sized blocks (``adam.BLOCK``). It consumes the same random
      stream (same minibatch order, same eps), so it is the practical lower bound for this
      model with NumPy on this machine.

  (3) the fixed cost of a step: (1) and (2) again on a model of 4 pixels and 3 hidden units, whose
      arrays cost next to nothing. The difference of their steps is what the project's step costs
      beyond the floor's whatever the model's size (autograd's tape, the Python of each variant),
      printed as a share of the floor's step, whole and split into the gradient's (autograd's tape) and
      Adam's: the ratio cannot come closer to 1 than that share.

Why. The ratio (1)/(2) is the price of autograd's tracing and of the project's way of
writing the model; a 200-epoch training run costs 200 times the project's figure.

How. The images are synthetic (seeded random 0/1 float32 with pixel probability 0.13,
about binarized MNIST's mean), so no download is needed and the timing does not depend on
the data. Before timing, the script checks that the hand gradient equals autograd's on one
fixed batch with fixed eps (float64 to 1e-8 and float32 to 1e-3, relative to the largest
entry of each array) and that the hand Adam step matches ``adam_update`` (to 1e-4); it exits with
status 1 if not. The machine has 2 cores and other jobs may run, so the two variants run in
the same process, interleaved (A B, B A, A B, ...), and each is reported by its median.
``vae_autograd.train.keep_freed_memory()`` is called first, as the project's command-line
entry points do; it changes malloc for the whole process, so it applies to both variants.
"""
import argparse
import ctypes
import math
import os
import statistics
import sys
import time

import numpy as np
from autograd import value_and_grad

from vae_autograd.core.adam import BLOCK, adam_update, blocks, init_adam_state
from vae_autograd.core.elbo import elbo, elbo_unchecked
from vae_autograd.core.fast_grad import flat_arrays, value_and_grad_per_array
from vae_autograd.core.model import init_vae_params
from vae_autograd.io.process import keep_freed_memory
from vae_autograd.train.loop import epoch_rng, train

NUM_IMAGES = 10_000
BATCH_SIZE = 100
PIXEL_PROB = 0.13
LR = 1e-3
LOG_2PI = 1.8378770664093453  # a Python float, as in vae_autograd.distributions (no upcast)
TARGET_RATIO = 1.05
PROJECTED_EPOCHS = 200


def synthetic_images(seed, n=NUM_IMAGES, dim=784):
    """(n, dim) float32 array of independent 0/1 pixels, each 1 with probability PIXEL_PROB."""
    rng = np.random.default_rng([seed, 1])
    return (rng.random((n, dim)) < PIXEL_PROB).astype(np.float32)


# ---------------------------------------------------------------- the hand-derived floor

class HandVAE:
    """The VAE's loss, gradient and Adam step written out in NumPy, into preallocated buffers.

    Parameters, gradients and Adam moments each live in one flat array; the per-layer
    arrays W1, b1, ..., W4, b4 are views into it, in the order of
    ``vae_autograd.fast_grad.flat_arrays`` (encoder 784->500->4, decoder 2->500->784).
    The dtype is that of the parameters it is built from (float32 for timing).
    """

    def __init__(self, params, batch_size=BATCH_SIZE):
        arrays = flat_arrays(params)
        self.dtype = arrays[0].dtype
        self.flat = np.concatenate([a.ravel() for a in arrays])   # the parameters
        self.grad_flat = np.zeros_like(self.flat)
        self.m, self.v = np.zeros_like(self.flat), np.zeros_like(self.flat)
        block_size = self.flat[blocks(self.flat.shape, BLOCK)[0]].size   # the first block is the largest
        self.scratch1, self.scratch2 = np.empty(block_size, self.dtype), np.empty(block_size, self.dtype)
        self.adam_step_count = 0
        self.params = self._views(self.flat, arrays)
        self.grads = self._views(self.grad_flat, arrays)

        D, H = arrays[0].shape          # data and hidden width
        Z = arrays[4].shape[0]          # latent width
        N = batch_size

        def empty(*shape):
            return np.empty(shape, self.dtype)

        self.x = empty(N, D)
        self.eps = empty(N, Z)
        self.h1, self.enc_out = empty(N, H), empty(N, 2 * Z)
        self.h3, self.logits = empty(N, H), empty(N, D)
        self.exp_neg_abs, self.softplus, self.sigmoid = empty(N, D), empty(N, D), empty(N, D)
        self.d_logits, self.d_h3, self.d_h1, self.tanh_grad = empty(N, D), empty(N, H), empty(N, H), empty(N, H)
        self.d_enc_out = empty(N, 2 * Z)

    @staticmethod
    def _views(flat, like):
        views, start = [], 0
        for a in like:
            views.append(flat[start:start + a.size].reshape(a.shape))
            start += a.size
        return views

    def loss_and_grad(self, x, eps):
        """Minus the 1-sample ELBO averaged over the batch; its gradient goes into self.grads.

        Shapes (N = batch, D = 784 pixels, H = 500 hidden, Z = 2 latent):
          x (N, D) 0/1 pixels; eps (N, Z) standard normal noise.
          W1 (D, H), b1 (H,), W2 (H, 2Z), b2 (2Z,)   encoder
          W3 (Z, H), b3 (H,), W4 (H, D),  b4 (D,)    decoder
        Forward:
          h1 = tanh(x W1 + b1) (N, H);  [mu | log_std] = h1 W2 + b2, each (N, Z)
          sigma = exp(log_std);  z = mu + sigma * eps (N, Z)
          h3 = tanh(z W3 + b3) (N, H);  logits a = h3 W4 + b4 (N, D)
          log p(x|z) = sum_d x a - softplus(a);  log p(z) = sum_k -z^2/2 - log(2 pi)/2
          log q(z|x) = sum_k -((z - mu)/sigma)^2/2 - log_std - log(2 pi)/2
          loss = -mean_n [log p(x|z) + log p(z) - log q(z|x)]
        Backward (every d* is d loss / d*):
          d a = (sigmoid(a) - x) / N (N, D);  dW4 = h3^T d a;  db4 = sum_n d a
          d(z W3 + b3) = (d a W4^T) * (1 - h3^2) (N, H);  dW3 = z^T (.);  db3 = sum_n (.)
          d z = (.) W3^T + z / N (N, Z)      (decoder, plus the prior term)
          With z = mu + sigma * eps, (z - mu)/sigma = eps, so log q = sum -eps^2/2 - log_std - c:
          it adds nothing to d mu and -1/N to d log_std. Hence
          d mu = d z;  d log_std = d z * sigma * eps - 1/N (N, Z)
          dW2 = h1^T [d mu | d log_std];  db2 = sum_n (.)
          d(x W1 + b1) = ([d mu | d log_std] W2^T) * (1 - h1^2) (N, H);  dW1 = x^T (.);  db1 = sum_n (.)
        Returns the loss as a Python float.
        """
        W1, b1, W2, b2, W3, b3, W4, b4 = self.params
        gW1, gb1, gW2, gb2, gW3, gb3, gW4, gb4 = self.grads
        N, Z = eps.shape
        inv_n = 1.0 / N

        # forward: encoder
        h1 = np.matmul(x, W1, out=self.h1)
        h1 += b1
        np.tanh(h1, out=h1)
        enc_out = np.matmul(h1, W2, out=self.enc_out)
        enc_out += b2
        mu, log_std = enc_out[:, :Z], enc_out[:, Z:]
        # reparameterized sample (N, Z arrays are tiny: no buffers needed)
        sigma = np.exp(log_std)
        z = mu + sigma * eps
        # decoder
        h3 = np.matmul(z, W3, out=self.h3)
        h3 += b3
        np.tanh(h3, out=h3)
        a = np.matmul(h3, W4, out=self.logits)
        a += b4
        # softplus(a) = max(a, 0) + log1p(exp(-|a|)) and sigmoid(a) = exp(a - softplus(a))
        t = self.exp_neg_abs
        np.abs(a, out=t)
        np.negative(t, out=t)
        np.exp(t, out=t)
        sp = np.maximum(a, 0.0, out=self.softplus)
        sp += np.log1p(t, out=t)
        sig = np.subtract(a, sp, out=self.sigmoid)
        np.exp(sig, out=sig)
        # loss: the three log densities summed over the batch
        log_px = np.vdot(x, a) - sp.sum()
        log_pz = -0.5 * np.sum(z * z) - 0.5 * N * Z * LOG_2PI
        scaled = (z - mu) * np.exp(-log_std)
        log_q = np.sum(-0.5 * scaled**2 - log_std) - 0.5 * N * Z * LOG_2PI
        loss = -(log_px + log_pz - log_q) * inv_n

        # backward: decoder output layer
        d_a = np.subtract(sig, x, out=self.d_logits)
        d_a *= inv_n
        np.matmul(h3.T, d_a, out=gW4)
        np.sum(d_a, axis=0, out=gb4)
        # decoder hidden layer
        d_h3 = np.matmul(d_a, W4.T, out=self.d_h3)
        d_h3 *= self._tanh_grad(h3)
        np.matmul(z.T, d_h3, out=gW3)
        np.sum(d_h3, axis=0, out=gb3)
        # latent: decoder + prior, then through z = mu + sigma * eps and log q
        d_z = d_h3 @ W3.T
        d_z += z * inv_n
        d_out = self.d_enc_out
        d_out[:, :Z] = d_z
        d_out[:, Z:] = d_z * sigma * eps - inv_n
        # encoder output layer
        np.matmul(h1.T, d_out, out=gW2)
        np.sum(d_out, axis=0, out=gb2)
        # encoder hidden layer
        d_h1 = np.matmul(d_out, W2.T, out=self.d_h1)
        d_h1 *= self._tanh_grad(h1)
        np.matmul(x.T, d_h1, out=gW1)
        np.sum(d_h1, axis=0, out=gb1)
        return float(loss)

    def _tanh_grad(self, h):
        """1 - h^2 for h = tanh(.), (N, H), in a reused buffer."""
        g = np.multiply(h, h, out=self.tanh_grad)
        return np.subtract(1.0, g, out=g)

    def adam_update(self, lr, b1=0.9, b2=0.999, eps=1e-8):
        """vae_autograd.adam.adam_update (same formula, same float32 state), in place.

        p -= step_size * m / (sqrt(v) + eps * sqrt(1 - b2^t)), step_size = lr sqrt(1 - b2^t) / (1 - b1^t),
        i.e. lr * m_hat / (sqrt(v_hat) + eps). run_checks compares it with the project's. In blocks of
        adam.BLOCK entries, as the project's: each block stays in cache through all its passes.
        """
        self.adam_step_count += 1
        t = self.adam_step_count
        root_correction = math.sqrt(1.0 - b2**t)
        step_size = lr * root_correction / (1.0 - b1**t)
        for block in blocks(self.flat.shape, BLOCK):
            p, g, m, v = self.flat[block], self.grad_flat[block], self.m[block], self.v[block]
            s1, s2 = self.scratch1[:p.size], self.scratch2[:p.size]
            m *= b1
            m += np.multiply(g, 1.0 - b1, out=s1)             # m += (1 - b1) * g
            v *= b2
            s1 = np.multiply(g, 1.0 - b2, out=s1)
            v += np.multiply(s1, g, out=s1)                   # v += (1 - b2) * g * g
            np.sqrt(v, out=s1)
            s1 += eps * root_correction
            s2 = np.multiply(m, step_size, out=s2)
            p -= np.divide(s2, s1, out=s2)                    # p -= step_size * m / s1

    def reset_adam(self):
        self.m[:] = 0
        self.v[:] = 0
        self.adam_step_count = 0

    def train(self, train_x, epochs, batch_size=BATCH_SIZE, lr=LR, seed=0):
        """Mirror of vae_autograd.train.train from epoch 0 (fresh Adam state, as it starts).

        Same generator per epoch, same minibatch order, same eps draws; returns the
        per-epoch mean loss.
        """
        assert len(train_x) % batch_size == 0, "buffers are sized for full minibatches"
        self.reset_adam()
        curve = []
        for epoch in range(epochs):
            rng = epoch_rng(seed, epoch)
            order = rng.permutation(len(train_x))     # as vae_autograd.data.minibatches
            total = 0.0
            for start in range(0, len(train_x), batch_size):
                x = np.take(train_x, order[start:start + batch_size], axis=0, out=self.x)
                # the same numbers sample_diag_gaussian draws as its (1, N, Z) eps
                eps = rng.standard_normal(self.eps.shape, dtype=self.dtype, out=self.eps)
                total += self.loss_and_grad(x, eps) * batch_size
                self.adam_update(lr)
            curve.append(total / len(train_x))
        return curve


# ---------------------------------------------------------------- correctness check

class FixedNoise:
    """Stands in for the Generator passed to vae_autograd.elbo.elbo: always returns eps."""

    def __init__(self, eps):
        self.eps = eps

    def standard_normal(self, shape, dtype):
        assert shape == (1,) + self.eps.shape, shape
        return self.eps.reshape(shape).astype(dtype)


def max_relative_difference(got, want):
    """max over arrays of max|got - want| / max|want| (relative to each array's largest entry)."""
    return max(float(np.max(np.abs(g - w)) / np.max(np.abs(w))) for g, w in zip(got, want))


def check_gradient(dtype, seed):
    """(loss rel. diff., max gradient rel. diff.) of HandVAE vs autograd, one fixed batch and eps.

    Parameters are drawn with scale 0.1 rather than the training init's 0.01, so the tanh
    units are in their nonlinear range and sigma = exp(log_std) is far from 1.
    """
    rng = np.random.default_rng([seed, 2])
    params = init_vae_params(rng, scale=0.1, dtype=dtype)
    x = synthetic_images(seed, n=BATCH_SIZE).astype(dtype)
    eps = rng.standard_normal((BATCH_SIZE, 2)).astype(dtype)

    want_loss, want_grads = value_and_grad(
        lambda p: -elbo(p[0], p[1], x, FixedNoise(eps)))(params)
    hand = HandVAE(params)
    got_loss = hand.loss_and_grad(x.copy(), eps.copy())
    assert all(g.dtype == dtype for g in hand.grads)
    loss_diff = abs(got_loss - float(want_loss)) / abs(float(want_loss))
    return loss_diff, max_relative_difference(hand.grads, flat_arrays(want_grads))


def check_adam(seed, steps=3):
    """Relative difference of the parameter change made by HandVAE.adam_update and by
    vae_autograd's adam_update, over `steps` steps on the same random float32 gradients:
    max|change_hand - change_project| / max|change_project|."""
    rng = np.random.default_rng([seed, 3])
    params = init_vae_params(rng)
    before = [a.copy() for a in flat_arrays(params)]
    hand = HandVAE(params)
    state = init_adam_state(flat_arrays(params))
    for _ in range(steps):
        # gradients spanning many magnitudes, so that the eps term matters for some entries
        grads = tuple([tuple((rng.standard_normal(a.shape) * 10.0 ** rng.uniform(-9, 0, a.shape))
                             .astype(np.float32) for a in layer) for layer in net]
                      for net in params)
        for dst, src in zip(hand.grads, flat_arrays(grads)):
            dst[...] = src
        adam_update(flat_arrays(params), flat_arrays(grads), state, LR)
        hand.adam_update(LR)
    changes_hand = [h - b for h, b in zip(hand.params, before)]
    changes_project = [p - b for p, b in zip(flat_arrays(params), before)]
    return max_relative_difference(changes_hand, changes_project)


def run_checks(seed):
    print("correctness: hand-derived gradient vs autograd (one batch of 100, fixed eps)")
    ok = True
    for dtype, tol in ((np.float64, 1e-8), (np.float32, 1e-3)):
        loss_diff, grad_diff = check_gradient(dtype, seed)
        passed = grad_diff <= tol and loss_diff <= tol
        ok &= passed
        print(f"  {np.dtype(dtype).name:8s} max rel. diff.: gradient {grad_diff:.2e}, loss {loss_diff:.2e}"
              f"  (tolerance {tol:.0e})  {'ok' if passed else 'FAILED'}")
    adam_diff, adam_tol = check_adam(seed), 1e-4
    ok &= adam_diff <= adam_tol
    print(f"  Adam step vs vae_autograd.adam.adam_update: max rel. diff. of the update {adam_diff:.2e}"
          f"  (tolerance {adam_tol:.0e})  {'ok' if adam_diff <= adam_tol else 'FAILED'}")
    return ok


# ---------------------------------------------------------------- timing

def glibc_present():
    """Whether keep_freed_memory() can have taken effect (it is a no-op without glibc)."""
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallopt")
    except OSError:
        return False


def timed(fn, epochs):
    """(wall-clock seconds per epoch, fn's result) of one call fn()."""
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) / epochs, result


def fixed_cost_per_step(seed, rounds, epochs=3, repeats=1000):
    """Seconds per step of the training, and of its gradient and its Adam update alone, on a model of
    4 pixels and 3 hidden units: {"step" | "gradient" | "adam": (project, floor)}.

    Its arrays cost next to nothing, so what remains is what a step costs whatever the model's size:
    the Python of each variant, and for the project autograd's tape (a box and a node per operation,
    the walk back) in the gradient and an update per array in Adam. Their difference is the part of the
    project's step that no array operation can win back. Medians of rounds that alternate which
    variant goes first, as the main timing."""
    images = (np.random.default_rng([seed, 4]).random((NUM_IMAGES, 4)) < 0.5).astype(np.float32)

    def tiny():
        return init_vae_params(np.random.default_rng(seed), data_dim=4, hidden=(3,))

    hand, steps = HandVAE(tiny()), epochs * NUM_IMAGES // BATCH_SIZE
    params, rng = tiny(), epoch_rng(seed, 0)
    x, eps = images[:BATCH_SIZE], rng.standard_normal((BATCH_SIZE, 2), dtype=np.float32)
    loss_and_grad = value_and_grad_per_array(lambda p, x, rng: -elbo_unchecked(p[0], p[1], x, rng))
    grads = flat_arrays(loss_and_grad(params, x, rng)[1])
    state = init_adam_state(flat_arrays(params))

    def repeated(step):
        def run():
            for _ in range(repeats):
                step()
        return run

    parts = {"step": (lambda: train(tiny(), images, epochs=epochs, seed=seed),
                      lambda: hand.train(images, epochs=epochs, seed=seed), steps),
             "gradient": (repeated(lambda: loss_and_grad(params, x, rng)),
                          repeated(lambda: hand.loss_and_grad(x, eps)), repeats),
             "adam": (repeated(lambda: adam_update(flat_arrays(params), grads, state, 0.0)),
                      repeated(lambda: hand.adam_update(0.0)), repeats)}
    wall = {(part, variant): [] for part in parts for variant in (0, 1)}
    for r in range(rounds):
        for part, (project, floor, count) in parts.items():
            for variant in ((0, 1) if r % 2 == 0 else (1, 0)):
                wall[part, variant].append(timed((project, floor)[variant], count)[0])
    return {part: tuple(statistics.median(wall[part, variant]) for variant in (0, 1)) for part in parts}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each variant (default 5)")
    parser.add_argument("--epochs-per-round", type=int, default=1, help="epochs per timed run (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, init and noise (default 0)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.epochs_per_round < 1:
        parser.error("--rounds and --epochs-per-round must be positive")

    keep_freed_memory()  # process-wide: applies to both variants
    applied = glibc_present()
    print(f"keep_freed_memory(): {'applied (glibc mallopt found)' if applied else 'NOT applied (no glibc)'}"
          " -- process-wide, so for both variants")
    load_start = os.getloadavg()[0]
    blas_threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "all CPUs (default)"
    print(f"{os.cpu_count()} CPUs, 1-min load average {load_start:.2f} at start, numpy {np.__version__}, "
          f"BLAS threads: {blas_threads}")

    if not run_checks(args.seed):
        sys.exit("error: the hand-derived floor does not compute the project's gradient / update")

    train_x = synthetic_images(args.seed)
    project_params = init_vae_params(np.random.default_rng(args.seed))
    hand = HandVAE(init_vae_params(np.random.default_rng(args.seed)))   # same starting point
    E = args.epochs_per_round
    variants = {
        "project": lambda: train(project_params, train_x, epochs=E, seed=args.seed),
        "floor": lambda: hand.train(train_x, epochs=E, seed=args.seed),
    }

    # warm-up (BLAS threads, first allocations, autograd's first trace): 10 steps each
    train(init_vae_params(np.random.default_rng(args.seed)), train_x[:1000], epochs=1)
    HandVAE(init_vae_params(np.random.default_rng(args.seed))).train(train_x[:1000], epochs=1)

    wall = {name: [] for name in variants}
    first_loss = {}
    print(f"timing {args.rounds} rounds x {E} epoch(s) of {NUM_IMAGES // BATCH_SIZE} steps, interleaved:")
    for r in range(args.rounds):
        for name in (("project", "floor") if r % 2 == 0 else ("floor", "project")):
            seconds, curve = timed(variants[name], E)
            wall[name].append(seconds)
            first_loss.setdefault(name, curve[0])
        print(f"  round {r + 1}: project {wall['project'][-1]:.3f}, floor {wall['floor'][-1]:.3f} s/epoch")

    median = {name: statistics.median(wall[name]) for name in variants}
    ratio = median["project"] / median["floor"]
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print()
    print(f"{'variant':28s} {f's/epoch (median of {args.rounds})':24s} min - max")
    for label, name in (("vae_autograd (autograd)", "project"), ("hand-derived NumPy floor", "floor")):
        print(f"{label:28s} {median[name]:<24.3f} {min(wall[name]):.3f} - {max(wall[name]):.3f}")
    print(f"{'ratio':28s} {ratio:.2f}   (target <= {TARGET_RATIO}: {verdict})")
    paired = statistics.median(p / f for p, f in zip(wall["project"], wall["floor"]))
    print(f"{'  median of per-round ratios':28s} {paired:.2f}   (adjacent runs paired: less sensitive to drift)")
    print(f"{f'{PROJECTED_EPOCHS} epochs projected':28s} {PROJECTED_EPOCHS * median['project'] / 60:.1f} min"
          f"   (floor: {PROJECTED_EPOCHS * median['floor'] / 60:.1f} min)")
    fixed = fixed_cost_per_step(args.seed, args.rounds)
    steps = NUM_IMAGES // BATCH_SIZE

    def excess(part):  # microseconds a step, and the share of the floor's full-size step
        seconds = fixed[part][0] - fixed[part][1]
        return f"{1e6 * seconds:.0f} us ({100 * seconds * steps / median['floor']:.1f}%)"

    project, floor = (1e6 * seconds for seconds in fixed["step"])
    print(f"{'fixed cost per step':28s} {excess('step')} of the floor's step: the project's step on a model of "
          f"4 pixels and 3 hidden units,\n{'':28s} whose arrays cost next to nothing, takes {project:.0f} us "
          f"against the floor's {floor:.0f};\n{'':28s} of that, the gradient (autograd's tape) "
          f"{excess('gradient')} and Adam over eight arrays {excess('adam')}")
    print()
    print(f"same computation: first-epoch mean -ELBO project {first_loss['project']:.4f}, "
          f"floor {first_loss['floor']:.4f} (same data, init, batches and eps)")
    load_end = os.getloadavg()[0]
    print(f"keep_freed_memory() applied: {'yes' if applied else 'no'};  "
          f"1-min load average {load_start:.2f} at start, {load_end:.2f} at end")
    if max(load_start, load_end) > os.cpu_count():
        print("warning: more runnable jobs than CPUs; the BLAS threads of both variants were "
              "starved, so absolute times are inflated and the ratio is unreliable: rerun when idle "
              "(or with OPENBLAS_NUM_THREADS=1, which suffers far less from other jobs)")


if __name__ == "__main__":
    main()
