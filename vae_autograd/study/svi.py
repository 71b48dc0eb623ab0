"""Stochastic variational inference for the posterior given the top half of a digit (study part 6.3).

The encoder never saw half images, so for x_top a Gaussian q(z) is fitted to
p(z|x_top) by Adam (``core/adam.py``, as in training) on a reparameterized
K-sample ELBO, and its ELBO is set against log p(x_top) from quadrature on the
posterior's window (``study/posterior.py``): their difference is KL(q || p(z|x_top)), which
the study also computes directly on the window; the two must agree within Monte Carlo
error, and the quadrature one is the number reported.
"""
import autograd.numpy as anp
import numpy as np
from autograd import make_vjp

from ..core.adam import adam_update, init_adam_state
from ..core.distributions import diag_gaussian_log_density, sample_diag_gaussian
from ..core.elbo import log_prior
from ..core.images import check_images
from ..core.logspace import logsumexp, sigmoid
from ..core.model import data_dim, decoder, latent_dim, params_dtype
from .grids import grid_moments, log_integrate_grid, quadrature_kl
from .posterior import log_likelihood_top, top_half, whole_posterior_windows


def svi_log_weights(dec_params, x_top, mu, log_std, eps):
    """log p(z) + log p(x_top|z) - log q(z) at z = mu + exp(log_std) * eps.

    x_top (N, D/2), mu and log_std (N, Dz), eps (K, N, Dz) -> (K, N).
    """
    z = mu + anp.exp(log_std) * eps
    return log_prior(z) + log_likelihood_top(dec_params, x_top, z) - diag_gaussian_log_density(z, mu, log_std)


def convergence_report(elbo_trace, tol=0.05):
    """Is the noisy trace (T, ...) flat? Compares the means of its last two fifths.

    converged: they differ by less than tol nats plus 3 standard errors of the difference
    (from the spread of the trace within the two windows), i.e. any remaining climb is
    below tol or lost in the Monte Carlo noise; steps_to_converge: the end of the first
    window (a fifth long) from which every window mean stays within tol of the last.
    """
    width = max(len(elbo_trace) // 5, 1)
    cumsum = np.concatenate([np.zeros((1,) + elbo_trace.shape[1:]), np.cumsum(elbo_trace, axis=0)])
    window_means = (cumsum[width:] - cumsum[:-width]) / width  # window_means[t]: steps t .. t+width-1
    change = window_means[-1] - window_means[max(len(window_means) - 1 - width, 0)]
    last_two = elbo_trace[-2 * width:].reshape((2, -1) + elbo_trace.shape[1:])
    change_se = np.sqrt(np.sum(np.var(last_two, axis=1, ddof=1), axis=0) / last_two.shape[1])
    off = np.abs(window_means - window_means[-1]) >= tol
    first_good = np.where(off.any(axis=0), len(off) - np.argmax(off[::-1], axis=0), 0)
    return {"elbo_trace": elbo_trace, "window": width, "change": change, "change_se": change_se,
            "tol": tol, "converged": np.abs(change) < tol + 3 * change_se,
            "steps_to_converge": first_good + width}


def svi_top_half(dec_params, x_top, rng, num_samples=20, num_steps=1000, lr=0.05,
                 num_eval_samples=4000):
    """Fit q(z) = N(mu, diag exp(log_std)^2) to p(z|x_top) by Adam on a K-sample ELBO.

    x_top (N, D/2): each image gets its own q, all optimized together (their ELBOs are
    summed; the parameters do not interact). Starts deterministically at the prior
    (mu = 0, log_std = 0); rng draws only the reparameterization noise. The step size
    stays lr, so a flat ELBO trace means a stationary point, not steps decayed to nothing
    (a decaying step also measured slower on sharp posteriors); the jitter a constant step
    leaves is removed by returning the mean of the iterates over the last fifth of the
    steps (Polyak averaging).
    Returns a dict: mu, log_std (N, Dz), elbo_trace (num_steps, N), elbo and elbo_se
    (N,) from num_eval_samples fresh samples, and convergence_report's entries.
    """
    dtype = params_dtype(dec_params)  # float32 steps run 3x faster; the final mean is float64
    x_top = check_images(x_top, data_dim(dec_params) // 2, "x_top").astype(dtype)
    if num_samples < 1 or num_steps < 2:
        raise ValueError(f"need num_samples >= 1 and num_steps >= 2, got {num_samples} and {num_steps}")
    shape = (len(x_top), latent_dim(dec_params))
    params = np.zeros((2,) + shape, dtype)  # params[0] = mu, params[1] = log_std
    adam_state = init_adam_state([params])
    elbo_trace, iterates = [], []
    for _ in range(num_steps):
        eps = rng.standard_normal((num_samples,) + shape, dtype)
        vjp, elbo = make_vjp(lambda p, eps=eps: anp.mean(svi_log_weights(dec_params, x_top, p[0], p[1], eps),
                                                        axis=0))(params)
        gradient = vjp(np.ones_like(elbo))  # the gradient of each image's ELBO w.r.t. its own q
        elbo_trace.append(elbo)
        adam_update([params], [-gradient], adam_state, lr)  # descends: up the ELBO
        iterates.append(params.copy())
    report = convergence_report(np.array(elbo_trace, dtype=np.float64))
    params = np.mean(iterates[-report["window"]:], axis=0)
    log_w = np.concatenate([  # fresh samples in blocks of 1000 to bound memory
        svi_log_weights(dec_params, x_top, params[0], params[1],
                        rng.standard_normal((min(1000, num_eval_samples - start),) + shape, dtype))
        for start in range(0, num_eval_samples, 1000)]).astype(np.float64)
    return {"mu": params[0], "log_std": params[1], "elbo": log_w.mean(axis=0),
            "elbo_se": log_w.std(axis=0, ddof=1) / np.sqrt(len(log_w)), "num_steps": num_steps, **report}


def svi_study(dec_params, x, rng, num_samples=20, num_steps=1000, lr=0.05, num_points=81, agreement_se=4.0):
    """SVI on the top halves of images x (N, 784) set against quadrature.

    Returns {"summary": JSON-ready dict, "mu", "log_std": (N, Dz) arrays of the fitted q,
    "windows": Windows of whole_posterior_windows of p(z|x_top) covering q (for the figures)}. The
    summary holds, per image (lists of length N): q's mu and sigma; its ELBO (+- MC
    standard error); log p(x_top) by quadrature on the window; kl = KL(q || p(z|x_top))
    by quadrature on the window, the one KL the table and the figure's titles show;
    kl_from_elbo = log p(x_top) - ELBO, the same KL up to Monte Carlo error (its standard
    error is the ELBO's), kl_difference_in_se = (kl_from_elbo - kl) / that error, and
    kl_agree: within agreement_se of it; the window's edge_mass and mass_outside_window;
    the posterior's mean and std, and |mu - posterior mean| in posterior stds.
    """
    x_top = top_half(x)
    fit = svi_top_half(dec_params, x_top, rng, num_samples, num_steps, lr)
    sigma = np.exp(fit["log_std"])
    windows, checks = whole_posterior_windows(dec_params, x_top, fit["mu"], sigma, num_points)
    log_p_x_top = log_integrate_grid(windows.log_joint, windows.dz, num_points)
    log_q = diag_gaussian_log_density(windows.z_grids, fit["mu"][:, None], fit["log_std"][:, None])
    kl = quadrature_kl(log_q, windows.log_joint - log_p_x_top[:, None], windows.dz)
    kl_from_elbo = log_p_x_top - fit["elbo"]
    difference_in_se = (kl_from_elbo - kl) / fit["elbo_se"]
    post_mean, post_std = grid_moments(windows.z_grids, windows.log_joint)
    numbers = {
        "mu": fit["mu"], "log_std": fit["log_std"], "sigma": sigma,
        "svi_elbo": fit["elbo"], "svi_elbo_se": fit["elbo_se"],
        "log_p_x_top": log_p_x_top, "kl": kl, "kl_from_elbo": kl_from_elbo,
        "kl_difference_in_se": difference_in_se, "kl_agree": np.abs(difference_in_se) <= agreement_se,
        "agreement_se": agreement_se, **checks,
        "posterior_mean": post_mean, "posterior_std": post_std,
        "mu_error_in_posterior_stds": np.abs(fit["mu"] - post_mean) / post_std,
        "num_steps": fit["num_steps"], "num_samples": num_samples, "lr": lr,
        "converged": fit["converged"], "elbo_change_last_window": fit["change"],
        "elbo_change_se": fit["change_se"], "convergence_tol": fit["tol"],
        "steps_to_converge": fit["steps_to_converge"], "quadrature_points_per_axis": num_points}
    return {"summary": {key: np.asarray(value).tolist() for key, value in numbers.items()},
            "mu": fit["mu"], "log_std": fit["log_std"], "windows": windows}


def bottom_half_predictions(dec_params, svi, rng, num_shown=4, num_average=1000, points_per_block=4096):
    """The bottom halves 6.3 predicts from the top half, for the images of svi = svi_study(...).

    Returns {"shown": (num_shown, N, D) Bernoulli means sigmoid(logits(z)) for single z ~ q;
    "q_mean": (N, D) the posterior predictive mean averaged over num_average z ~ q;
    "true_mean": (N, D) the same averaged over the true p(z | x_top) with the weights of
    svi's quadrature windows; "num_average"}. z is drawn in float64, as on the windows.
    """
    mu, log_std = (np.asarray(svi[k], np.float64) for k in ("mu", "log_std"))
    shown = sigmoid(decoder(dec_params, sample_diag_gaussian(mu, log_std, rng, num_shown)))
    q_mean = np.mean(sigmoid(decoder(dec_params, sample_diag_gaussian(mu, log_std, rng, num_average))), axis=0)
    log_joint = svi["windows"].log_joint
    weights = np.exp(log_joint - logsumexp(log_joint, axis=-1, keepdims=True))
    # Each window's points decoded in blocks: all windows at once are (N, G, D) float64 arrays.
    true_mean = np.stack([sum(w[start:start + points_per_block] @ sigmoid(decoder(dec_params,
                                                                                z[start:start + points_per_block]))
                              for start in range(0, len(z), points_per_block))
                          for w, z in zip(weights, svi["windows"].z_grids)])
    return {"shown": shown, "q_mean": q_mean, "true_mean": true_mean, "num_average": num_average}
