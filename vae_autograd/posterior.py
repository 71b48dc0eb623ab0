"""The true posterior by quadrature, half-observed digits, and SVI (study part 6).

With a 2-D latent space p(z|x) = p(x, z) / p(x) is computable on a grid, so the
encoder's q(z|x) can be drawn against the exact answer (6.1). Observing only the top
half of a digit leaves a factorized Bernoulli likelihood over the observed pixels: the
unobserved ones sum out to 1 pixel by pixel, so log p(x_top|z) just drops their terms
(6.2). The encoder never saw half images, so for x_top a Gaussian q(z) is fitted by
stochastic variational inference, and its ELBO is set against log p(x_top) from
quadrature: their difference is KL(q || p(z|x_top)) (6.3).

Posteriors of a trained 2-D VAE can be a few hundredths wide, far narrower than a grid
over the prior can resolve, so the quadratures here run on square windows fitted to each
posterior (``posterior_windows``). Images are rows of 784 pixels (row-major 28 x 28), so
the top 14 rows are the first 392 pixels; for a decoder of any output size D, "whole"
means D pixels and "top half" the first D // 2.
"""
import autograd.numpy as np
import numpy
from autograd import make_vjp
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .distributions import bernoulli_log_density, diag_gaussian_log_density, sample_diag_gaussian, sigmoid, softplus
from .elbo import log_prior
from .integrate import grid_log_likelihood, latent_grid, log_integrate_grid, logsumexp
from .model import decoder, encoder

IMAGE_SIDE = 28
TOP_ROWS = 14
MASSES = (0.5, 0.9, 0.99)  # contour levels: highest-density regions holding these masses


# ---------------------------------------------------------------- checks and half images

def check_pixels(x, allowed, what):
    """x as an array whose last axis has one of the allowed lengths, else a clear ValueError."""
    x = numpy.asarray(x)
    if x.ndim == 0 or x.shape[-1] not in allowed:
        raise ValueError(f"{what} must have {' or '.join(map(str, allowed))} pixels on the last "
                         f"axis, got shape {x.shape}; flatten 28x28 images to 784 and take "
                         "top halves with top_half()")
    return x


def data_dim(dec_params):
    return dec_params[-1][0].shape[1]


def decoder_dtype(dec_params):
    return dec_params[0][0].dtype


def top_half(x):
    """The top 14 rows of 28x28 images: x (..., 784) -> (..., 392), the first 392 pixels."""
    x = check_pixels(x, (IMAGE_SIDE**2,), "images")
    return x[..., :TOP_ROWS * IMAGE_SIDE]


def log_likelihood_top(dec_params, x_top, z):
    """log p(x_top|z): Bernoulli terms of the observed top pixels only.

    x_top (N, D/2), z (..., N, Dz) -> (..., N). The bottom pixels are independent given z,
    and each one's probabilities sum to 1, so marginalizing them drops their terms.
    """
    x_top = check_pixels(x_top, (data_dim(dec_params) // 2,), "top halves")
    return bernoulli_log_density(x_top, decoder(dec_params, z)[..., :x_top.shape[-1]])


# ---------------------------------------------------------------- quadrature on grids

def log_joint_on_grid(dec_params, x, z_grid):
    """log p(x, z) for images x (N, P) at all points of a shared grid z_grid (G, 2) -> (N, G).

    P = D (whole images) or D // 2 (top halves: only the first P pixels are observed).
    Through integrate.grid_log_likelihood: all images meet all grid points in one matrix
    product after one decoder call. The grid runs in
    the decoder's dtype (float32: 3x faster than float64, and its rounding, ~1e-5 nats
    on log p(x, z) ~ -100, is far below any Monte Carlo error here); the result is float64.
    """
    x = check_pixels(x, (data_dim(dec_params), data_dim(dec_params) // 2), "images")
    z_grid = numpy.asarray(z_grid, dtype=decoder_dtype(dec_params))
    logits = decoder(dec_params, z_grid)[:, :x.shape[-1]]
    log_joint = grid_log_likelihood(logits, x.astype(logits.dtype)) + log_prior(z_grid)
    return log_joint.astype(numpy.float64)


def log_joint_on_windows(dec_params, x, z_grids):
    """log p(x_n, z) for each image x_n (N, P) on its own grid z_grids (N, G, 2) -> (N, G).

    One decoder call for all windows (in its dtype, as in log_joint_on_grid); memory
    grows as N * G * D, so pass a few images.
    """
    x = check_pixels(x, (data_dim(dec_params), data_dim(dec_params) // 2), "images")
    z_grids = numpy.asarray(z_grids, dtype=decoder_dtype(dec_params))
    logits = decoder(dec_params, z_grids)[..., :x.shape[-1]]
    log_lik = (logits @ x.astype(logits.dtype)[:, :, None])[..., 0] - np.sum(softplus(logits), axis=-1)
    return (log_lik + log_prior(z_grids)).astype(numpy.float64)


def log_posterior_on_grid(dec_params, x, z_grid, dz):
    """log p(z|x) on z_grid (G, 2) of spacing dz for images x (N, P) -> (N, G).

    Normalized by the grid's own quadrature, so log_integrate_grid of each row is 0.
    """
    log_joint = log_joint_on_grid(dec_params, x, z_grid)
    return log_joint - log_integrate_grid(log_joint, dz)[:, None]


def grid_moments(z_grid, log_f):
    """Mean and std (..., 2) of the density proportional to exp(log_f) (..., G) on z_grid (..., G, 2)."""
    weights = np.exp(log_f - logsumexp(log_f, axis=-1, keepdims=True))[..., None]
    mean = np.sum(weights * z_grid, axis=-2)
    var = np.sum(weights * (z_grid - mean[..., None, :])**2, axis=-2)
    return mean, np.sqrt(var)


def covering_grids(means, stds, num_points, num_stds):
    """Square grids (N, num_points**2, 2) and spacings (N,) covering mean +- num_stds * std.

    means, stds: (N, M, 2), M Gaussians per grid. Square so contours keep their shape.
    """
    low = np.min(means - num_stds * stds, axis=1)
    high = np.max(means + num_stds * stds, axis=1)
    center, half_width = (low + high) / 2, np.max(high - low, axis=1) / 2
    dz = 2 * half_width / (num_points - 1)
    unit_grid, _ = latent_grid(-1.0, 1.0, 2.0 / (num_points - 1))
    return center[:, None, :] + half_width[:, None, None] * unit_grid, dz


def posterior_windows(dec_params, x, extra_means=None, extra_stds=None, num_points=101,
                      num_stds=5.0, bound=5.0, coarse_spacing=0.125):
    """Square grids fitted to each image's true posterior p(z|x), and log p(x, z) on them.

    x (N, P) (whole images or top halves); extra_means, extra_stds (N, 2): a Gaussian per
    image (e.g. q) that the windows must cover too. p(z|x) is located on a coarse shared
    grid over [-bound, bound]^2, then twice on windows at mean +- num_stds * std.
    Returns z_grids (N, G, 2), dz (N,), log_joint (N, G), G = num_points**2.
    """
    x = numpy.atleast_2d(x)
    z_grid, _ = latent_grid(-bound, bound, coarse_spacing)
    mean, std = grid_moments(z_grid, log_joint_on_grid(dec_params, x, z_grid))
    spacing = numpy.full(len(x), coarse_spacing)
    for points in (41, num_points):
        # A posterior narrower than a grid cell shows up as a single point: floor its std.
        means, stds = mean[:, None], numpy.maximum(std, spacing[:, None])[:, None]
        if extra_means is not None:
            means = numpy.concatenate([means, numpy.reshape(extra_means, (-1, 1, 2))], axis=1)
            stds = numpy.concatenate([stds, numpy.reshape(extra_stds, (-1, 1, 2))], axis=1)
        z_grids, spacing = covering_grids(means, stds, points, num_stds)
        log_joint = log_joint_on_windows(dec_params, x, z_grids)
        mean, std = grid_moments(z_grids, log_joint)
    return z_grids, spacing, log_joint


def log_integrate_windows(log_f, dz):
    """log of the Riemann sums of exp(log_f) (N, G) on windows of spacings dz (N,) -> (N,)."""
    return logsumexp(log_f, axis=-1) + 2.0 * np.log(dz)


def quadrature_kl(log_q, log_p, dz):
    """KL(q || p) = sum q (log q - log p) dz^2 for normalized log-densities (N, G) on windows."""
    return np.sum(np.exp(log_q) * (log_q - log_p), axis=-1) * dz**2


# ---------------------------------------------------------------- SVI for a top half

def svi_log_weights(dec_params, x_top, mu, log_std, eps):
    """log p(z) + log p(x_top|z) - log q(z) at z = mu + exp(log_std) * eps.

    x_top (..., D/2), mu and log_std (..., 2), eps (K, ..., 2) -> (K, ...).
    """
    z = mu + np.exp(log_std) * eps
    return log_prior(z) + log_likelihood_top(dec_params, x_top, z) - diag_gaussian_log_density(z, mu, log_std)


def convergence_report(elbo_trace, tol=0.05):
    """Is the noisy trace (T, ...) flat? Compares the means of its last two fifths.

    converged: they differ by less than tol nats plus 3 standard errors of the difference
    (from the spread of the trace within the two windows), i.e. any remaining climb is
    below tol or lost in the Monte Carlo noise; steps_to_converge: the end of the first
    window (a fifth long) from which every window mean stays within tol of the last.
    """
    width = max(len(elbo_trace) // 5, 1)
    cumsum = numpy.concatenate([numpy.zeros((1,) + elbo_trace.shape[1:]), numpy.cumsum(elbo_trace, axis=0)])
    window_means = (cumsum[width:] - cumsum[:-width]) / width  # window_means[t]: steps t .. t+width-1
    change = window_means[-1] - window_means[max(len(window_means) - 1 - width, 0)]
    last_two = elbo_trace[-2 * width:].reshape((2, -1) + elbo_trace.shape[1:])
    change_se = numpy.sqrt(numpy.sum(numpy.var(last_two, axis=1, ddof=1), axis=0) / last_two.shape[1])
    off = numpy.abs(window_means - window_means[-1]) >= tol
    first_good = numpy.where(off.any(axis=0), len(off) - numpy.argmax(off[::-1], axis=0), 0)
    return {"elbo_trace": elbo_trace, "window": width, "change": change, "change_se": change_se,
            "tol": tol, "converged": numpy.abs(change) < tol + 3 * change_se,
            "steps_to_converge": first_good + width}


def svi_top_half(dec_params, x_top, rng, num_samples=20, num_steps=1000, lr=0.05,
                 num_eval_samples=4000):
    """Fit q(z) = N(mu, diag exp(log_std)^2) to p(z|x_top) by Adam on a K-sample ELBO.

    x_top (..., D/2): each image gets its own q, all optimized together (their ELBOs are
    summed; the parameters do not interact). Starts deterministically at the prior
    (mu = 0, log_std = 0); rng draws only the reparameterization noise. The step size
    stays lr, so a flat ELBO trace means a stationary point, not steps decayed to nothing
    (a decaying step also measured slower on sharp posteriors); the jitter a constant step
    leaves is removed by returning the mean of the iterates over the last fifth of the
    steps (Polyak averaging).
    Returns a dict: mu, log_std (..., 2), elbo_trace (num_steps, ...), elbo and elbo_se
    (...) from num_eval_samples fresh samples, and convergence_report's entries.
    """
    dtype = decoder_dtype(dec_params)  # float32 steps run 3x faster; the final mean is float64
    x_top = check_pixels(x_top, (data_dim(dec_params) // 2,), "top halves").astype(dtype)
    if num_samples < 1 or num_steps < 2:
        raise ValueError(f"need num_samples >= 1 and num_steps >= 2, got {num_samples} and {num_steps}")
    shape = x_top.shape[:-1] + (2,)
    params = numpy.zeros((2,) + shape, dtype)  # params[0] = mu, params[1] = log_std
    moment1, moment2 = numpy.zeros_like(params), numpy.zeros_like(params)
    b1, b2 = 0.9, 0.999
    elbo_trace, iterates = [], []
    for step in range(1, num_steps + 1):
        eps = rng.standard_normal((num_samples,) + shape, dtype)
        vjp, elbo = make_vjp(lambda p, eps=eps: np.mean(svi_log_weights(dec_params, x_top, p[0], p[1], eps),
                                                       axis=0))(params)
        gradient = vjp(numpy.ones_like(elbo))  # the gradient of each image's ELBO w.r.t. its own q
        elbo_trace.append(elbo)
        moment1 = b1 * moment1 + (1 - b1) * gradient  # Adam, ascending
        moment2 = b2 * moment2 + (1 - b2) * gradient**2
        params = params + lr * (moment1 / (1 - b1**step)) / (numpy.sqrt(moment2 / (1 - b2**step)) + 1e-8)
        iterates.append(params)
    report = convergence_report(numpy.array(elbo_trace, dtype=numpy.float64))
    params = numpy.mean(iterates[-report["window"]:], axis=0)
    log_w = numpy.concatenate([  # fresh samples in blocks of 1000 to bound memory
        svi_log_weights(dec_params, x_top, params[0], params[1],
                        rng.standard_normal((min(1000, num_eval_samples - start),) + shape, dtype))
        for start in range(0, num_eval_samples, 1000)]).astype(numpy.float64)
    return {"mu": params[0], "log_std": params[1], "elbo": log_w.mean(axis=0),
            "elbo_se": log_w.std(axis=0, ddof=1) / numpy.sqrt(len(log_w)), "num_steps": num_steps, **report}


def svi_study(dec_params, x, rng, num_samples=20, num_steps=1000, lr=0.05, num_points=81):
    """SVI on the top halves of images x (N, 784) set against quadrature: a JSON-ready dict.

    Per image (lists of length N): the SVI q's mu and sigma, its ELBO (+- MC standard
    error), log p(x_top) by quadrature on a window fitted to p(z|x_top) and q, their
    difference kl = KL(q || p(z|x_top)), the same KL computed directly on the grid, the
    posterior's mean and std, and |mu - posterior mean| in posterior stds.
    """
    x_top = top_half(numpy.atleast_2d(x))
    fit = svi_top_half(dec_params, x_top, rng, num_samples, num_steps, lr)
    sigma = numpy.exp(fit["log_std"])
    z_grids, dz, log_joint = posterior_windows(dec_params, x_top, fit["mu"], sigma, num_points)
    log_p_x_top = log_integrate_windows(log_joint, dz)
    log_q = diag_gaussian_log_density(z_grids, fit["mu"][:, None], fit["log_std"][:, None])
    post_mean, post_std = grid_moments(z_grids, log_joint)
    numbers = {
        "mu": fit["mu"], "log_std": fit["log_std"], "sigma": sigma,
        "svi_elbo": fit["elbo"], "svi_elbo_se": fit["elbo_se"],
        "log_p_x_top": log_p_x_top, "kl": log_p_x_top - fit["elbo"],
        "kl_quadrature": quadrature_kl(log_q, log_joint - log_p_x_top[:, None], dz),
        "posterior_mean": post_mean, "posterior_std": post_std,
        "mu_error_in_posterior_stds": numpy.abs(fit["mu"] - post_mean) / post_std,
        "num_steps": fit["num_steps"], "num_samples": num_samples, "lr": lr,
        "converged": fit["converged"], "elbo_change_last_window": fit["change"],
        "elbo_change_se": fit["change_se"], "convergence_tol": fit["tol"],
        "steps_to_converge": fit["steps_to_converge"], "quadrature_points_per_axis": num_points}
    return {key: numpy.asarray(value).tolist() for key, value in numbers.items()}


# ---------------------------------------------------------------- figures

def hdr_log_levels(log_density, masses=MASSES):
    """Increasing log-density levels whose superlevel sets hold the given masses. (G,) on a grid."""
    ordered = numpy.sort(log_density)[::-1]
    mass = numpy.cumsum(numpy.exp(ordered - logsumexp(ordered)))
    levels = ordered[numpy.minimum(numpy.searchsorted(mass, masses), len(ordered) - 1)]
    return numpy.unique(levels)


def contour_density(ax, z_grid, log_density, color, linestyle):
    """HDR contours (50/90/99%; thicker = more central) of a density on a square grid (G, 2)."""
    side = int(round(numpy.sqrt(len(z_grid))))
    z1, z2 = z_grid[:side, 0], z_grid[::side, 1]
    levels = hdr_log_levels(log_density)
    ax.contour(z1, z2, log_density.reshape(side, side), levels, colors=color,
               linestyles=linestyle, linewidths=numpy.linspace(0.7, 1.8, len(levels)))


def show_digit(ax, image):
    """A flattened digit, or its first rows only: the pixels not given are shaded blue-gray."""
    pixels = numpy.full(IMAGE_SIDE**2, numpy.nan)
    pixels[:len(image)] = image
    ax.imshow(numpy.ma.masked_invalid(pixels.reshape(IMAGE_SIDE, IMAGE_SIDE)),
              cmap=colormaps["gray_r"].with_extremes(bad="#cfd8e3"), vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def posterior_panels(panels, titles, styles, suptitle):
    """One panel per image: contours of several densities on its window, digit as an inset.

    panels: per image (z_grid (G, 2), [log_density (G,) per style], image (784,) or (392,)).
    styles: [(label, color, linestyle)] matching the densities.
    """
    fig = Figure(figsize=(3.2 * len(panels), 3.6), layout="constrained")
    axes = numpy.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
    for ax, (z_grid, log_densities, image), title in zip(axes, panels, titles):
        for log_density, (_, color, linestyle) in zip(log_densities, styles):
            contour_density(ax, z_grid, log_density, color, linestyle)
        show_digit(ax.inset_axes([0.0, 0.78, 0.22, 0.22]), image)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("$z_1$")
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("$z_2$")
    handles = [Line2D([], [], color=color, linestyle=linestyle, label=label) for label, color, linestyle in styles]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(styles), fontsize=9)
    fig.suptitle(suptitle + "\ncontours: highest-density regions holding 50 / 90 / 99% of the mass "
                 "(thick to thin); each window zoomed to fit; inset: the data (shaded: unobserved)",
                 fontsize=10)
    return fig


def gaussian_against_posterior(dec_params, x, mean, log_std, num_points, styles, suptitle):
    """Contours of a Gaussian q (mean, log_std (N, 2)) over the quadrature p(z|x), x (N, P).

    Each window covers both; each panel's title gives KL(q || p) on its grid.
    """
    z_grids, dz, log_joint = posterior_windows(dec_params, x, mean, numpy.exp(log_std), num_points,
                                               num_stds=4.0)
    log_post = log_joint - log_integrate_windows(log_joint, dz)[:, None]
    log_q = diag_gaussian_log_density(z_grids, mean[:, None], log_std[:, None])
    kl = quadrature_kl(log_q, log_post, dz)
    panels = [(z_grids[n], [log_post[n], log_q[n]], x[n]) for n in range(len(x))]
    return posterior_panels(panels, [f"KL(q || p) = {k:.3f} nats" for k in kl], styles, suptitle)


def fig_true_vs_approx_posterior(enc_params, dec_params, x, num_points=101):
    """True p(z|x) (solid) against the encoder's q(z|x) (dashed) for a few images x (N, 784)."""
    x = check_pixels(numpy.atleast_2d(x), (IMAGE_SIDE**2,), "images")
    q_mean, q_log_std = (numpy.asarray(a, dtype=float) for a in encoder(enc_params, x))
    return gaussian_against_posterior(dec_params, x, q_mean, q_log_std, num_points,
                                      [("true posterior p(z|x)", "black", "solid"),
                                       ("encoder q(z|x)", "tab:red", "dashed")],
                                      "True posterior vs the encoder's approximation")


def fig_top_half_posterior(dec_params, x, num_points=101):
    """p(z|x_top) (solid) beside p(z|x) of the whole image (dotted) for images x (N, 784)."""
    x = check_pixels(numpy.atleast_2d(x), (IMAGE_SIDE**2,), "images")
    x_top = top_half(x)
    z_full, dz_full, log_joint_full = posterior_windows(dec_params, x, num_points=41)
    full_mean, full_std = grid_moments(z_full, log_joint_full)
    z_grids, dz, log_joint_top = posterior_windows(dec_params, x_top, full_mean, full_std, num_points, num_stds=4.0)
    log_post_top = log_joint_top - log_integrate_windows(log_joint_top, dz)[:, None]
    log_joint = log_joint_on_windows(dec_params, x, z_grids)
    log_post = log_joint - log_integrate_windows(log_joint, dz)[:, None]
    panels = [(z_grids[n], [log_post_top[n], log_post[n]], x_top[n]) for n in range(len(x))]
    _, top_std = grid_moments(z_grids, log_joint_top)
    return posterior_panels(panels, [f"std of p(z|x_top): {s[0]:.2f}, {s[1]:.2f}" for s in top_std],
                            [("p(z | top half)", "tab:blue", "solid"),
                             ("p(z | whole image)", "gray", "dotted")],
                            "Posterior given only the top half of the digit")


def fig_svi_posterior(dec_params, x, svi_result, num_points=101):
    """The SVI q (dashed) on p(z|x_top) (solid); x (N, 784), svi_result from svi_top_half(top_half(x))."""
    mu, log_std = (numpy.reshape(svi_result[k], (-1, 2)) for k in ("mu", "log_std"))
    return gaussian_against_posterior(dec_params, top_half(numpy.atleast_2d(x)), mu, log_std,
                                      num_points, [("true p(z | top half)", "black", "solid"),
                                                   ("SVI q(z)", "tab:orange", "dashed")],
                                      "SVI fit to the posterior given the top half")


def fig_svi_prediction(dec_params, x, svi_result, rng, num_shown=4, num_average=1000, num_points=81):
    """Completing the bottom halves: rows are images x (N, 784); svi_result for top_half(x).

    Columns: the original; num_shown completions sigmoid(logits(z)) for z ~ q; the
    posterior predictive mean of the bottom, averaged over num_average z ~ q; the same
    averaged over the true p(z|x_top) with quadrature weights. Red line: observed above.
    """
    x = check_pixels(numpy.atleast_2d(x), (IMAGE_SIDE**2,), "images")
    x_top = top_half(x)
    mu, log_std = (numpy.reshape(svi_result[k], (-1, 2)) for k in ("mu", "log_std"))
    shown = sigmoid(decoder(dec_params, sample_diag_gaussian(mu, log_std, rng, num_shown)))
    q_mean = numpy.mean(sigmoid(decoder(dec_params, sample_diag_gaussian(mu, log_std, rng, num_average))), axis=0)
    z_grids, _, log_joint = posterior_windows(dec_params, x_top, mu, numpy.exp(log_std), num_points)
    weights = numpy.exp(log_joint - logsumexp(log_joint, axis=-1, keepdims=True))
    true_mean = numpy.einsum("ng,ngd->nd", weights, sigmoid(decoder(dec_params, z_grids)))
    columns = ([("original", x)] + [(f"z ~ q, #{s + 1}", shown[s]) for s in range(num_shown)]
               + [(f"mean over\n{num_average} z ~ q", q_mean), ("mean over\ntrue p(z|x_top)", true_mean)])
    fig = Figure(figsize=(1.3 * len(columns), 1.45 * len(x) + 0.6), layout="constrained")
    axes = fig.subplots(len(x), len(columns), squeeze=False)
    split = TOP_ROWS * IMAGE_SIDE
    for n, row in enumerate(axes):
        for c, (ax, (title, images)) in enumerate(zip(row, columns)):
            completed = images[n] if c == 0 else numpy.concatenate([x_top[n], images[n][split:]])
            show_digit(ax, completed)
            if c > 0:
                ax.axhline(TOP_ROWS - 0.5, color="tab:red", linewidth=0.8)
            if n == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle("Bottom halves predicted from the top half (above the red line: observed;\n"
                 "below: Bernoulli means sigmoid(logits))", fontsize=9)
    return fig
