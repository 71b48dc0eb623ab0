"""Seconds for part 8's gap decomposition of the test set, and the accuracy of its ELBOs.

    python benchmarks/bench_gaps.py --checkpoint data/vae.npz [--images 10000] [--check-images 200]

What is timed. ``inference_gap_study`` on the first --images test images of a trained
checkpoint, in two parts: log p(x) by ``study.quadrature.log_marginal_likelihood`` (part 3's
quadrature, which part 8 reuses), and the rest (ELBO(q), the refinement, the global
search, the convergence checks on 1,000 images; no IWAE). uptime's load average is printed
beside: the machine has 2 cores, and the seconds grow with whatever else runs.

Accuracy. On the first --check-images images, the lattice-window ELBO (``gaussian_elbo``)
of q(z|x) and of q* is set against (a) ``study.estimators.quadrature_elbo``, a midpoint rule in
eps space with the decoder called at every point (41 x 41 points over +-6 std), and
(b) Monte Carlo with 10,000 samples per image (the difference in units of its standard
error). Exits with status 1 if the mean difference from (a) exceeds 1e-3 nats or (b)
exceeds 4 standard errors.
"""
import argparse
import os
import sys
import time

import numpy as np

from vae_autograd.core.logspace import softplus
from vae_autograd.core.model import decoder
from vae_autograd.io.mnist import load_binarized_mnist
from vae_autograd.io.process import keep_freed_memory
from vae_autograd.study.estimators import quadrature_elbo
from vae_autograd.study.inference_gaps import inference_gap_study
from vae_autograd.study.quadrature import log_marginal_likelihood
from vae_autograd.study.windows import decoder_target, gaussian_elbo
from vae_autograd.train.checkpoints import load_params


def monte_carlo_elbo(dec_params, x, mean, log_std, rng, num_samples=10000, per_block=200000):
    """Per-image Monte Carlo ELBO and its standard error, (N,) each, in float64."""
    sums, squares = np.zeros(len(x)), np.zeros(len(x))
    done = 0
    while done < num_samples:
        k = min(num_samples - done, max(1, per_block // len(x)))
        eps = rng.standard_normal((k,) + mean.shape)
        z = mean + np.exp(log_std) * eps
        logits = decoder(dec_params, z.astype(np.float32))
        # log p(x|z) + log p(z) - log q(z): the two log(2 pi) cancel.
        log_w = (np.sum(x * logits - softplus(logits), axis=-1, dtype=np.float64) - 0.5 * np.sum(z**2, -1)
                 + np.sum(0.5 * eps**2 + log_std, -1))
        sums += log_w.sum(0)
        squares += (log_w**2).sum(0)
        done += k
    mean_w = sums / num_samples
    return mean_w, np.sqrt((squares / num_samples - mean_w**2) / num_samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="data/vae.npz")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--check-images", type=int, default=200)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    keep_freed_memory()
    (enc_params, dec_params), _, _, epoch, _ = load_params(args.checkpoint)
    _, _, test_x, _ = load_binarized_mnist(10000, 10000, args.data_dir)
    x = test_x[:args.images]
    print(f"checkpoint {args.checkpoint} (epoch {epoch}), {len(x)} test images, "
          f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    start = time.perf_counter()
    log_px = log_marginal_likelihood(dec_params, x)
    quadrature_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = inference_gap_study(enc_params, dec_params, x, iwae_images=0, log_px=log_px)
    study_seconds = time.perf_counter() - start
    s = result["summary"]
    print(f"log p(x) quadrature: {quadrature_seconds:6.1f} s")
    print(f"decomposition:       {study_seconds:6.1f} s   (load average after: {os.getloadavg()[0]:.1f})")
    for key in ("log_px", "elbo_amortized", "elbo_refined", "elbo_optimal", "approximation_gap",
                "amortization_gap", "wrong_basin_fraction"):
        print(f"  {key:22s} {s[key]:10.4f} +- {s[key + '_se']:.4f}")
    print(f"  convergence: {s['convergence']}")

    p = result["per_image"]
    n = min(args.check_images, len(x))
    tabulate = decoder_target(dec_params, x[:n]).tabulate
    failed = False
    for name, mean_key, log_std_key in (("amortized", "mean_amortized", "log_std_amortized"),
                                        ("optimal", "mean_optimal", "log_std_optimal")):
        mean, log_std = p[mean_key][:n], p[log_std_key][:n]
        lattice = gaussian_elbo(tabulate, np.arange(n), mean, log_std)
        eps_rule = quadrature_elbo(dec_params, x[:n], mean, log_std).astype(np.float64)
        mc, mc_se = monte_carlo_elbo(dec_params, x[:n], mean, log_std, np.random.default_rng(0))
        diff = lattice - eps_rule
        z = (mc - lattice) / mc_se
        print(f"ELBO({name}) on {n} images: lattice - eps-space rule: mean {diff.mean():+.2e}, "
              f"max |.| {np.abs(diff).max():.2e} nats; Monte Carlo (1e4 samples) - lattice: mean "
              f"{(mc - lattice).mean():+.4f} nats = {z.mean() * np.sqrt(n):+.2f} SE of the mean, "
              f"max |z| per image {np.abs(z).max():.2f}")
        failed |= abs(diff.mean()) > 1e-3 or abs(z.mean() * np.sqrt(n)) > 4
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
